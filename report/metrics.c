/*
 * metrics.c - the Prometheus textfile of a run (metrics.h). One gauge
 * family per name, each with its HELP and TYPE line once, label values
 * escaped as the text format requires. What waits (writes, deliveries,
 * holds) and how far each stream lags is read from the state file with
 * the report layer's own read-only queries, against the same clock the
 * run finished at.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "metrics.h"
#include "../core/str.h"

/* A label value: backslash, double quote and newline escaped. */
static void put_label(FILE *f, const char *v)
{
	for (; v && *v; v++) {
		if (*v == '\\' || *v == '"')
			fputc('\\', f);
		if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

static void family(FILE *f, const char *name, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

static void sample(FILE *f, const char *name, const char *l1, const char *v1, const char *l2,
		   const char *v2, double value)
{
	fputs(name, f);
	if (l1) {
		fprintf(f, "{%s=\"", l1);
		put_label(f, v1);
		if (l2) {
			fprintf(f, "\",%s=\"", l2);
			put_label(f, v2);
		}
		fputs("\"}", f);
	}
	fprintf(f, " %.15g\n", value);
}

/* Per-system gauges: one family, one sample per system. */
#define PER_SYSTEM(f, m, metric, help, expr)                                              \
	do {                                                                              \
		family(f, metric, help);                                                  \
		for (int i_ = 0; i_ < (m)->nsys; i_++) {                                  \
			const struct metrics_system *x = &(m)->sys[i_];                   \
			sample(f, metric, "system", x->name, NULL, NULL, (double)(expr)); \
		}                                                                         \
	} while (0)

static void run_metrics(FILE *f, const struct metrics_run *m)
{
	static const enum df_fail classes[] = { DF_FAIL_TEMP, DF_FAIL_REMOTE, DF_FAIL_UNKNOWN,
						DF_FAIL_AUTH, DF_FAIL_BUDGET, DF_FAIL_INPUT };

	family(f, "dfreconcile_last_run_timestamp_seconds", "When the last run finished (Unix time).");
	sample(f, "dfreconcile_last_run_timestamp_seconds", NULL, NULL, NULL, NULL, m->finished_s);
	family(f, "dfreconcile_last_run_duration_seconds", "How long the last run took.");
	sample(f, "dfreconcile_last_run_duration_seconds", NULL, NULL, NULL, NULL, m->duration_s);
	family(f, "dfreconcile_last_run_exit_status", "The last run's exit status (man dfreconcile, EXIT STATUS).");
	sample(f, "dfreconcile_last_run_exit_status", NULL, NULL, NULL, NULL, m->exit_code);
	family(f, "dfreconcile_last_run_id", "The last run's number in the state file (0: none recorded).");
	sample(f, "dfreconcile_last_run_id", NULL, NULL, NULL, NULL, (double)m->run_id);
	family(f, "dfreconcile_last_run_quarantined_new", "Records the last run quarantined that no earlier run reported.");
	sample(f, "dfreconcile_last_run_quarantined_new", NULL, NULL, NULL, NULL, (double)m->quarantined_new);
	PER_SYSTEM(f, m, "dfreconcile_records_read", "Records the last run read from the system.", x->read);
	PER_SYSTEM(f, m, "dfreconcile_records_changed", "Records the last run found changed in the system.", x->changed);
	PER_SYSTEM(f, m, "dfreconcile_records_written", "Writes the last run completed in the system.", x->written);
	PER_SYSTEM(f, m, "dfreconcile_records_quarantined", "Records of the system the last run quarantined.",
		   x->quarantined);
	PER_SYSTEM(f, m, "dfreconcile_requests", "HTTP requests the last run sent to the system.", x->requests);
	PER_SYSTEM(f, m, "dfreconcile_request_budget_remaining",
		   "Requests left of the run's budget (max_requests) for the system.",
		   x->budget > x->requests ? x->budget - x->requests : 0);
	PER_SYSTEM(f, m, "dfreconcile_system_read_failed", "1 if a stream of the system could not be read in the last run.",
		   x->read_failed);
	PER_SYSTEM(f, m, "dfreconcile_system_credentials_refused",
		   "1 if the system refused the credentials (401/403) in the last run.", x->credentials_refused);
	/* Only for systems whose answers state a daily quota (GHL). */
	family(f, "dfreconcile_quota_remaining", "Requests the system still allows today, as its last answer "
	       "stated (X-RateLimit-Daily-Remaining, less those sent since).");
	for (int i = 0; i < m->nsys; i++)
		if (m->sys[i].quota_left >= 0)
			sample(f, "dfreconcile_quota_remaining", "system", m->sys[i].name, NULL, NULL,
			       (double)m->sys[i].quota_left);
	family(f, "dfreconcile_quota_limit", "The system's daily request quota (X-RateLimit-Limit-Daily).");
	for (int i = 0; i < m->nsys; i++)
		if (m->sys[i].quota_limit >= 0)
			sample(f, "dfreconcile_quota_limit", "system", m->sys[i].name, NULL, NULL,
			       (double)m->sys[i].quota_limit);
	family(f, "dfreconcile_failures", "Failures in the last run by system and class (temporary, refused, "
	       "unknown, credentials, budget, input).");
	for (int i = 0; i < m->nsys; i++)
		for (size_t c = 0; c < sizeof(classes) / sizeof(classes[0]); c++)
			sample(f, "dfreconcile_failures", "system", m->sys[i].name, "class",
			       df_fail_name(classes[c]), (double)m->sys[i].failures[classes[c]]);
}

/* Queries of what waits; ?1 = now in ms. */
static const char lag_sql[] =
	"SELECT system, stream, (?1 - position_ms) / 1000.0 AS lag FROM cursor WHERE position_ms > 0 "
	"ORDER BY system, stream";
static const char writes_sql[] =
	"SELECT s.status, (SELECT count(*) FROM outbox o WHERE o.status = s.status) AS n FROM "
	"(SELECT 'pending' AS status UNION ALL SELECT 'unknown' UNION ALL SELECT 'refused' "
	"UNION ALL SELECT 'failed') s WHERE ?1 = ?1";
static const char deliveries_sql[] =
	"SELECT s.status, (SELECT count(*) FROM delivery d WHERE d.status = s.status) AS n FROM "
	"(SELECT 'waiting' AS status UNION ALL SELECT 'pending' UNION ALL SELECT 'unknown' "
	"UNION ALL SELECT 'refused' UNION ALL SELECT 'failed') s WHERE ?1 = ?1";
static const char oldest_sql[] =
	"SELECT coalesce(max(0, ?1 / 1000.0 - (julianday(min(r.started_at)) - 2440587.5) * 86400), 0) "
	"FROM outbox o JOIN run r ON r.id = o.run_id WHERE o.status IN ('pending', 'unknown')";
static const char holds_sql[] = "SELECT count(*) FROM hold WHERE ?1 = ?1";
static const char last_ok_sql[] =
	"SELECT coalesce((julianday(max(finished_at)) - 2440587.5) * 86400, 0) FROM run WHERE exit_code = 0 AND ?1 = ?1";

struct emit {
	FILE *f;
	const char *name, *l1, *l2;
};

/* Rows (label1 [, label2], value): the value is the last column. */
static int emit_row(void *arg, int n, const struct state_cell *cells)
{
	struct emit *e = arg;
	double v = cells[n - 1].text ? strtod(cells[n - 1].text, NULL) : 0;

	sample(e->f, e->name, e->l1, e->l1 ? cells[0].text : NULL, e->l2, e->l2 ? cells[1].text : NULL, v);
	return 0;
}

static int state_metrics(FILE *f, struct state *st, long long now_ms, struct df_err *err)
{
	char now_s[24];
	const char *params[1] = { now_s };
	static const struct {
		const char *name, *help, *sql, *l1, *l2;
	} q[] = {
		/* A stream never read to the end nor listing a change has no
		 * position to lag. */
		{ "dfreconcile_stream_lag_seconds", "Now minus the stream's cursor: when its last complete listing began.",
		  lag_sql, "system", "stream" },
		{ "dfreconcile_writes", "Writes by status across runs (failed: given up).", writes_sql, "status", NULL },
		{ "dfreconcile_deliveries", "Calls and messages to deliver by status across runs.", deliveries_sql,
		  "status", NULL },
		{ "dfreconcile_oldest_pending_write_age_seconds", "Age of the oldest write pending or unknown (0: none).",
		  oldest_sql, NULL, NULL },
		{ "dfreconcile_held_records", "Records held from linking until an admin links them.", holds_sql, NULL, NULL },
		{ "dfreconcile_last_success_timestamp_seconds", "When the last run that exited 0 finished (0: never).",
		  last_ok_sql, NULL, NULL },
	};

	snprintf(now_s, sizeof(now_s), "%lld", now_ms);
	for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
		struct emit e = { f, q[i].name, q[i].l1, q[i].l2 };
		family(f, q[i].name, q[i].help);
		if (state_query(st, q[i].sql, params, 1, emit_row, &e, err))
			return -1;
	}
	return 0;
}

int metrics_write(struct state *st, const struct metrics_run *m, const char *path,
		  struct df_err *err)
{
	char *tmp = xasprintf("%s.XXXXXX", path);
	int fd = mkstemp(tmp), rc = -1;
	FILE *f;

	if (fd < 0) {
		df_fail(err, DF_FAIL_STATE, "metrics: cannot create a file beside %s: %s", path, strerror(errno));
		free(tmp);
		return -1;
	}
	f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		goto out;
	}
	run_metrics(f, m);
	if (st && state_metrics(f, st, (long long)(m->finished_s * 1000), err)) {
		fclose(f);
		goto out_unlink;
	}
	/* node_exporter reads it as another user. */
	if (fchmod(fileno(f), 0644) || fflush(f) || fsync(fileno(f))) {
		fclose(f);
		goto out;
	}
	if (fclose(f) || rename(tmp, path))
		goto out;
	rc = 0;
	free(tmp);
	return 0;
out:
	df_fail(err, DF_FAIL_STATE, "metrics: cannot write %s: %s", path, strerror(errno));
out_unlink:
	unlink(tmp);
	free(tmp);
	return rc;
}
