/*
 * report.h - what auditors read: for one run, what was seen, what was
 * decided and by which rule, what was written, what could not be done.
 * Everything comes from the state file; nothing here talks to a system.
 */
#ifndef DF_REPORT_H
#define DF_REPORT_H

#include <stdio.h>

#include "../core/err.h"
#include "../state/state.h"

enum report_format { REPORT_TEXT, REPORT_JSON };

int report_print(struct state *st, long long run, enum report_format fmt, FILE *out,
		 struct df_err *err);
/* Why a person's values are what they are: records, agreed values with
 * provenance, opt-outs, lists, conflicts, writes, deliveries. */
int report_explain(struct state *st, long long person, enum report_format fmt, FILE *out,
		   struct df_err *err);
/* Cursors, recent runs, writes waiting: the admin's view. */
int report_status(struct state *st, FILE *out, struct df_err *err);

#endif
