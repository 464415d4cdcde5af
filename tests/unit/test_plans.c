/*
 * test_plans.c - no statement of the state scans a table that grows with
 * the contacts (issue 9): each lookup a record makes must be an index
 * search, or the first sync turns quadratic.
 *
 * Every statement state/sql.c holds (state_statement_sql) and every query
 * of the report layer (report_query_at) is put through
 * EXPLAIN QUERY PLAN on a freshly migrated file, with no ANALYZE data, as
 * the binary itself sees it. A "SCAN" of a growing table fails the test,
 * unless the statement is one of the exceptions below, each with its
 * reason; so does a batch reader that sorts the rows it pages through,
 * and a statement of a run (state/sql.c) that searches a growing table by
 * its system alone through an index that is not partial: that walks every
 * record of the system, which an idle run must not (the rows it wants are
 * few: a partial index holds only them).
 * Set PLANS_VERBOSE=1 to print every plan.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include <sqlite3.h>

#include "../../state/state.h"
#include "../../report/queries.h"
#include "../../core/str.h"

/* Tables whose rows grow with the contacts, their writes and events, or
 * with the runs (one a minute, for years). */
static const char *const growing[] = {
	"snapshot", "link", "person", "agreed", "field_value", "observed", "conflict", "outbox",
	"outbox_field", "quarantine", "notice", "optout", "optout_log", "event", "delivery",
	"list_member", "run", "run_system",
};

/* The statements allowed a full scan, by a piece of their text, and why. */
static const struct { const char *sql; const char *why; } allowed[] = {
	{ "FROM person WHERE dirty = 1",
	  "walks the partial index person_dirty, which holds only the persons waiting to be merged" },
	{ "WHERE p.dirty = 1",
	  "the safety valve's count of what each source changed: walks the partial index person_dirty "
	  "(the persons waiting to be merged), then their observations by person" },
	{ "GROUP BY status",
	  "the totals of `dfreconcile status`, asked by an auditor, not by a run: one pass over the "
	  "covering index delivery_status" },
	{ "WHERE s.gone_run IS NOT NULL ORDER BY s.system, s.remote_id LIMIT 1",
	  "the next record to unlink: reads the first row of the partial index snapshot_gone, which "
	  "holds only the records found gone" },
	{ "ORDER BY id DESC LIMIT 10",
	  "the last ten runs: reads backwards along the rowid and stops after ten rows" },
};

/* The run's statements allowed to walk all of a system's rows, and why. */
static const struct { const char *sql; const char *why; } per_system[] = {
	{ "SET missing_run = ?2 WHERE system = ?1 AND seen_run < ?2",
	  "a --full run's mark of what its listing did not return: once per full run, which lists "
	  "every record of the system anyway" },
};

/* The growing table name stands for in sql: itself, or the alias sql gives
 * it ("snapshot s"); NULL for another table. */
static const char *growing_table(const char *name, const char *sql)
{
	static char table[64];

	for (int i = 0; i < N(growing); i++) {
		if (strcmp(name, growing[i]) == 0)
			return growing[i];
		/* The alias ends with a space, or a comma before a table-valued
		 * function ("outbox o, json_each(o.fields) f"). */
		for (const char *end = " ,"; *end; end++) {
			char alias[80];
			snprintf(alias, sizeof(alias), "%s %s%c", growing[i], name, *end);
			if (strstr(sql, alias) != NULL) {
				snprintf(table, sizeof(table), "%s", growing[i]);
				return table;
			}
		}
	}
	return NULL;
}

/* True when index name of db has a WHERE clause: it holds only the rows
 * that match it. */
static bool partial_index(sqlite3 *db, const char *name)
{
	sqlite3_stmt *s;
	bool partial = false;

	if (sqlite3_prepare_v2(db, "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?1", -1, &s,
			       NULL) != SQLITE_OK)
		return false;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0) != NULL)
		partial = strstr((const char *)sqlite3_column_text(s, 0), " WHERE ") != NULL;
	sqlite3_finalize(s);
	return partial;
}

/* "SEARCH t USING ... (system=?)" of a growing table through an index
 * that is not partial: every row of a system. */
static bool walks_system(sqlite3 *db, const char *detail, const char *sql)
{
	static const char tail[] = "(system=?)";
	const char *using = strstr(detail, "INDEX ");
	char name[64], index[64] = "";
	size_t n = strlen(detail);

	if (using != NULL)
		sscanf(using + 6, "%63s", index);
	return strncmp(detail, "SEARCH ", 7) == 0 && sscanf(detail + 7, "%63s", name) == 1 &&
	       n >= sizeof(tail) - 1 && strcmp(detail + n - (sizeof(tail) - 1), tail) == 0 &&
	       growing_table(name, sql) != NULL && !partial_index(db, index);
}

static bool is_per_system(const char *sql)
{
	for (int i = 0; i < N(per_system); i++)
		if (strstr(sql, per_system[i].sql) != NULL)
			return true;
	return false;
}

static const char *scanned_table(const char *detail, const char *sql)
{
	/* "SCAN t", "SCAN t USING [COVERING] INDEX i", where t is a table or
	 * the alias the statement gives it ("snapshot s"). */
	char name[64];

	if (strncmp(detail, "SCAN ", 5) != 0 || sscanf(detail + 5, "%63s", name) != 1)
		return NULL;
	return growing_table(name, sql);
}

static bool is_allowed(const char *sql)
{
	for (int i = 0; i < N(allowed); i++)
		if (allowed[i].sql != NULL && strstr(sql, allowed[i].sql) != NULL)
			return true;
	return false;
}

/* The text of every view (field_value, outbox_field: schema 11), whose
 * tables a statement reading a view scans under the view's aliases. */
static char *views_sql(sqlite3 *db)
{
	sqlite3_stmt *s;
	char *text = NULL;

	assert_int_equal(sqlite3_prepare_v2(db, "SELECT group_concat(sql, ' ') FROM sqlite_master "
					    "WHERE type = 'view'", -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0) != NULL)
		text = xstrdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	return text ? text : xstrdup("");
}

/* The state's statements, then the report layer's queries. */
static int statement_count(void)
{
	return state_statement_count() + report_query_count();
}

static const char *statement_sql(int i)
{
	return i < state_statement_count() ? state_statement_sql(i) : report_query_at(i - state_statement_count());
}

static void no_scans(void **state)
{
	char path[64];
	struct df_err err = { 0 };
	struct state *st;
	sqlite3 *db;
	int bad = 0, fd;
	char *views;
	bool verbose = getenv("PLANS_VERBOSE") != NULL;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/test_plans-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	/* A unique name only: an empty file is refused as a state file. */
	unlink(path);
	st = state_open(path, &err);
	if (st == NULL)
		fail_msg("state_open: %s", err.msg);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_true(state_statement_count() > 0 && report_query_count() > 0);
	views = views_sql(db);
	for (int i = 0; i < statement_count(); i++) {
		const char *text = statement_sql(i);
		char *q, *named;
		sqlite3_stmt *s;

		assert_non_null(text);
		q = xasprintf("EXPLAIN QUERY PLAN %s", text);
		if (sqlite3_prepare_v2(db, q, -1, &s, NULL) != SQLITE_OK)
			fail_msg("statement %d: %s: %s", i, sqlite3_errmsg(db), text);
		if (verbose)
			print_message("%d: %s\n", i, text);
		/* A view's tables are named by the view's own aliases. */
		named = xasprintf("%s %s", text, views);
		while (sqlite3_step(s) == SQLITE_ROW) {
			const char *detail = (const char *)sqlite3_column_text(s, 3);
			const char *table = scanned_table(detail, named);
			if (verbose)
				print_message("    %s\n", detail);
			if (table != NULL && !is_allowed(text)) {
				print_error("statement %d scans %s (%s): %s\n", i, table, detail, text);
				bad++;
			}
			if (i < state_statement_count() && walks_system(db, detail, text) && !is_per_system(text)) {
				print_error("statement %d walks every row of a system (%s): %s\n", i, detail, text);
				bad++;
			}
			/* A batch reader (the dirty persons, the due writes and
			 * deliveries) takes the next rows by id: sorting them
			 * reads every open row again for each batch. */
			if (strstr(text, "ORDER BY id LIMIT") != NULL &&
			    strstr(detail, "TEMP B-TREE FOR ORDER BY") != NULL) {
				print_error("statement %d sorts its batch (%s): %s\n", i, detail, text);
				bad++;
			}
		}
		sqlite3_finalize(s);
		free(named);
		free(q);
	}
	free(views);
	assert_null(state_statement_sql(state_statement_count()));
	assert_null(report_query_at(report_query_count()));
	sqlite3_close(db);
	state_close(st);
	unlink(path);
	{
		char side[80];
		snprintf(side, sizeof(side), "%s-wal", path);
		unlink(side);
		snprintf(side, sizeof(side), "%s-shm", path);
		unlink(side);
		snprintf(side, sizeof(side), "%s-checked", path);
		unlink(side);
	}
	assert_int_equal(bad, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(no_scans),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
