/*
 * report.h - what auditors read: for a run or a range of runs, the answer
 * first (a summary per system and one line per problem with its cause),
 * then what was seen, decided, written and could not be done, filterable;
 * as text, typed JSON, CSV per section or one self-contained HTML page.
 * Everything comes from the state file (report/queries.c); nothing here
 * talks to a system.
 */
#ifndef DF_REPORT_H
#define DF_REPORT_H

#include <stdio.h>

#include "../core/err.h"
#include "../state/state.h"

enum report_format { REPORT_TEXT, REPORT_JSON, REPORT_CSV, REPORT_HTML };

/* What a report covers. run_from..run_to inclusive (0, 0: the last run);
 * system, person (0: all), section (a name of report_sections, NULL: all)
 * narrow the details, never the summary's range; limit (0: none) caps
 * each section, the report says how many rows it left out. */
struct report_filter {
	long long run_from, run_to;
	const char *system;
	long long person;
	const char *section;
	long limit;
};

/* Is name a section --section accepts (changes, conflicts, writes,
 * opt-outs, deliveries, quarantine, notices)? */
int report_section_known(const char *name);
/* The first run that started at or after since (ISO time), or 0. */
int report_first_run_since(struct state *st, const char *since, long long *run, struct df_err *err);
/* The report. CSV needs f->section (one table per file). */
int report_print(struct state *st, const struct report_filter *f, enum report_format fmt, FILE *out,
		 struct df_err *err);
/* Why a person's values are what they are: for each field the agreed
 * value, every system's current value and when it was read, the rule and
 * reason, the conflict history; records, links and the admin actions on
 * them, opt-outs, lists, writes, deliveries. Text or JSON. */
int report_explain(struct state *st, long long person, enum report_format fmt, FILE *out,
		   struct df_err *err);
/* The admin's and the monitor's view across runs (report/status.c): age
 * of each system's and stream's data, writes waiting, quarantine, held
 * records, admin actions. */
int report_status(struct state *st, enum report_format fmt, FILE *out, struct df_err *err);

#endif
