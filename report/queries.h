/*
 * queries.h - the report layer's SQL, by name. Every query here only
 * reads (state_query refuses one that writes); the state layer keeps the
 * schema, the migrations and the run's own reads and writes.
 *
 * Parameters: run sections take ?1 (first run) and ?2 (last run) of the
 * range asked for; explain sections take ?1 (the person); all-runs
 * queries ignore theirs.
 */
#ifndef DF_REPORT_QUERIES_H
#define DF_REPORT_QUERIES_H

#include "../core/err.h"
#include "../state/state.h"

/* The SQL of a named query, or NULL when there is none. Static. */
const char *report_query_sql(const char *name);
/* Every query, for tests (tests/unit/test_plans.c): the count, and the
 * SQL of query i (NULL past the end). */
int report_query_count(void);
const char *report_query_at(int i);
/* Runs the named query with params (see above); rows go to row. */
int report_query(struct state *st, const char *name, const char *const *params, int nparams,
		 state_row_fn row, void *arg, struct df_err *err);

#endif
