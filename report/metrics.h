/*
 * metrics.h - a Prometheus textfile (node_exporter's textfile collector
 * format) written after every run, for monitoring: what the run did (from
 * the engine, passed in as plain numbers) and what waits (from the state
 * file). Written atomically: a temporary file in the same directory,
 * renamed over the old one, mode 0644.
 */
#ifndef DF_METRICS_H
#define DF_METRICS_H

#include <stdbool.h>

#include "../core/err.h"
#include "../core/record.h"
#include "../state/state.h"

struct metrics_system {
	const char *name;                       /* borrowed */
	long long read, changed, written, write_failures, quarantined, requests;
	long long budget;                       /* request budget per run; 0: none */
	bool read_failed;                       /* a stream could not be read */
	bool credentials_refused;
	long long failures[DF_FAIL_BUDGET + 1]; /* by class (core/err.h) */
	long long quota_left, quota_limit;      /* the system's daily quota; -1: not stated */
};

struct metrics_run {
	long long run_id;                       /* 0: no run was recorded */
	int exit_code;
	double duration_s;
	double finished_s;                      /* epoch seconds */
	long long quarantined_new;
	int nsys;
	struct metrics_system sys[DF_MAX_SYSTEMS];
};

/* Writes the metrics of m, and those read from st (NULL when the state file
 * could not be opened: then only the run's own), to path. */
int metrics_write(struct state *st, const struct metrics_run *m, const char *path,
		  struct df_err *err);

#endif
