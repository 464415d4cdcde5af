/*
 * test_state.c - the SQLite journal (state/) on real temporary files.
 *
 * Every test gets a fresh file from mkstemp in /tmp (the fixture), opened
 * with state_open unless the test is about opening. What the state API
 * cannot show (schema version of a raw file, provenance columns, matching
 * columns, outbox status) is read with a second sqlite3 connection, the way
 * an auditor would.
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

/* A time after every first sighting: every record counts as old. */
#define ALL_OLD (1LL << 62)

#include "../../state/schema.h"
#include "../../state/state.h"
#include "../../core/str.h"


struct fixture {
	char path[64];
	struct state *st;
	long long run;
	struct df_err err;
};

/* Fails the test with the state layer's message when a call fails. */
#define OK(call) do { \
		if ((call) != 0) \
			fail_msg("%s: %s", #call, fx->err.msg); \
	} while (0)

static int setup_file(void **state)
{
	struct fixture *fx = xcalloc(1, sizeof(*fx));
	int fd;

	snprintf(fx->path, sizeof(fx->path), "/tmp/test_state-XXXXXX");
	fd = mkstemp(fx->path);
	if (fd < 0)
		return -1;
	close(fd);
	unlink(fx->path);       /* a unique name; an existing empty file is refused */
	fields_reset();
	*state = fx;
	return 0;
}

static int setup_open(void **state)
{
	struct fixture *fx;

	if (setup_file(state))
		return -1;
	fx = *state;
	fx->st = state_open(fx->path, &fx->err);
	if (fx->st == NULL) {
		print_error("state_open: %s\n", fx->err.msg);
		return -1;
	}
	fx->run = state_run_start(fx->st, "run", &fx->err);
	return fx->run > 0 ? 0 : -1;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	char side[80];

	state_close(fx->st);
	unlink(fx->path);
	snprintf(side, sizeof(side), "%s-wal", fx->path);
	unlink(side);
	snprintf(side, sizeof(side), "%s-shm", fx->path);
	unlink(side);
	snprintf(side, sizeof(side), "%s-checked", fx->path);
	unlink(side);
	free(fx);
	return 0;
}

/* The first column of the first row of sql on a second connection to path,
 * as text (caller frees), NULL for no row or SQL NULL. */
static char *peek(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	char *out = NULL;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		fail_msg("peek: cannot open %s", path);
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		fail_msg("peek: %s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		out = xstrdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	sqlite3_close(db);
	return out;
}

/* Asserts that peek(path, sql) is want (NULL: no row or SQL NULL). */
static void expect_peek(const char *path, const char *sql, const char *want)
{
	char *got = peek(path, sql);
	bool same = got == NULL ? want == NULL : want != NULL && strcmp(got, want) == 0;

	if (!same)
		print_error("%s: got %s, want %s\n", sql, got ? got : "NULL", want ? want : "NULL");
	free(got);
	assert_true(same);
}

/* Runs sql on a fresh raw connection (building old or foreign files). */
static void raw_exec(const char *path, const char *sql)
{
	sqlite3 *db;
	char *msg = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("raw_exec: %s", msg);
	sqlite3_close(db);
}

/* Opening and migrating */

static void test_open_creates_schema(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(SCHEMA_VERSION, 11);
	assert_int_equal(state_schema_version(fx->st), SCHEMA_VERSION);
	expect_peek(fx->path, "PRAGMA user_version", "11");
	expect_peek(fx->path, "PRAGMA journal_mode", "wal");
	expect_peek(fx->path, "SELECT group_concat(name, ' ') FROM (SELECT name FROM sqlite_master "
		    "WHERE type = 'table' ORDER BY name)",
		    "admin_action agreed conflict cursor delivery event hold link list_member notice "
		    "observed optout optout_log outbox person pin quarantine run run_system snapshot "
		    "snapshot_count wording");
	assert_int_equal(fx->run, 1);
	assert_int_equal(state_last_run(fx->st), 1);

	/* Reopening an existing file migrates nothing and keeps its rows. */
	state_close(fx->st);
	fx->st = state_open(fx->path, &fx->err);
	assert_non_null(fx->st);
	assert_int_equal(state_schema_version(fx->st), SCHEMA_VERSION);
	assert_int_equal(state_last_run(fx->st), 1);
}

static void test_migrate_from_version_1(void **state)
{
	struct fixture *fx = *state;
	long long pos = 0;

	raw_exec(fx->path, migrations[0]);
	raw_exec(fx->path, "PRAGMA user_version = 1;"
		 "INSERT INTO cursor (system, stream, position_ms, run_id) VALUES ('ghl', 'contacts', 42, 7)");
	expect_peek(fx->path, "SELECT count(*) FROM sqlite_master WHERE name = 'notice'", "0");

	fx->st = state_open(fx->path, &fx->err);
	if (fx->st == NULL)
		fail_msg("state_open: %s", fx->err.msg);
	assert_int_equal(state_schema_version(fx->st), SCHEMA_VERSION);
	expect_peek(fx->path, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'notice'", "1");
	expect_peek(fx->path, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'notice_run'",
		    "1");
	/* The rows of version 1 survive; the new table is usable. */
	OK(state_cursor_get(fx->st, "ghl", "contacts", &pos, &fx->err));
	assert_int_equal(pos, 42);
	OK(state_notice_add(fx->st, 7, 1, "verity", "v1", "cannot-write", "field timezone", &fx->err));
	expect_peek(fx->path, "SELECT kind || ' ' || message FROM notice", "cannot-write field timezone");
}

/* Migration 4 counts the snapshots a version 3 file already holds, and the
 * triggers keep counting. */
static void test_migrate_counts_snapshots(void **state)
{
	struct fixture *fx = *state;
	long long n = -1;

	for (int v = 0; v < 3; v++)
		raw_exec(fx->path, migrations[v]);
	raw_exec(fx->path, "PRAGMA user_version = 3;"
		 "INSERT INTO snapshot (system, remote_id, fields, seen_run) VALUES "
		 "('ghl', 'g1', '{}', 1), ('ghl', 'g2', '{}', 1), ('verity', 'v1', '{}', 1)");
	fx->st = state_open(fx->path, &fx->err);
	if (fx->st == NULL)
		fail_msg("state_open: %s", fx->err.msg);
	OK(state_snapshot_count(fx->st, "ghl", &n, &fx->err));
	assert_int_equal(n, 2);
	OK(state_snapshot_count(fx->st, "aloware", &n, &fx->err));
	assert_int_equal(n, 0);
	OK(state_unlink(fx->st, "ghl", "g1", 1, &fx->err));
	OK(state_snapshot_count(fx->st, "ghl", &n, &fx->err));
	assert_int_equal(n, 1);
	OK(state_snapshot_count(fx->st, "verity", &n, &fx->err));
	assert_int_equal(n, 1);
}

/* Migration 10 (a smaller file) keeps every row a version 8 file holds: a
 * merged copy equal to the fields becomes 'same', the others stay; agreed
 * values and a write's fields move to WITHOUT ROWID tables whole (in the
 * same order), and still match. */
static void test_migrate_9_keeps_rows(void **state)
{
	struct fixture *fx = *state;
	struct record prev;
	long long ids[4], person = 0;
	bool known = false;
	int n = -1;

	for (int v = 0; v < 8; v++)
		raw_exec(fx->path, migrations[v]);
	raw_exec(fx->path, "PRAGMA user_version = 8;"
		 "INSERT INTO run (id, started_at, mode, status) VALUES (1, 'x', 'run', 'ok');"
		 "INSERT INTO person (id, created_run) VALUES (1, 1), (2, 1);"
		 "INSERT INTO snapshot (system, remote_id, fields, phone, email, seen_run, merged) VALUES "
		 "('ghl', 'g1', '{\"first_name\":\"Ann\",\"phone\":\"+15550102030\"}', '+15550102030', '', 1, "
		 " '{\"first_name\":\"Ann\",\"phone\":\"+15550102030\"}'),"
		 "('ghl', 'g2', '{\"first_name\":\"Bob\"}', '', '', 1, '{\"first_name\":\"Rob\"}'),"
		 "('ghl', 'g3', '{\"first_name\":\"Cy\"}', '', '', 1, NULL);"
		 "INSERT INTO link (system, remote_id, person_id, how, run_id, deleted_run) VALUES "
		 "('ghl', 'g1', 1, 'new', 1, NULL), ('ghl', 'g2', 2, 'new', 1, NULL), ('verity', 'old', 2, 'new', 1, 1);"
		 "INSERT INTO field_value (person_id, field, value, system, rule, reason, run_id, beaten) VALUES "
		 "(1, 'phone', '+15550102030', 'ghl', 'prefer-valid', 'changed in one system', 1, NULL),"
		 "(1, 'first_name', 'Ann', 'ghl', 'two-way', 'changed in one system', 1, '{\"verity\":\"\"}'),"
		 "(2, 'email', 'bob@example.com', NULL, 'two-way', 'unchanged', 1, NULL);"
		 "INSERT INTO outbox (id, run_id, person_id, system, remote_id, op) VALUES "
		 "(1, 1, 1, 'ghl', 'g1', 'update'), (2, 1, 2, 'ghl', 'g2', 'update');"
		 "INSERT INTO outbox_field (outbox_id, field, old_value, new_value, rule, reason) VALUES "
		 "(1, 'tags', NULL, 'vip', 'union', NULL), (2, 'city', 'A', 'B', 'two-way', NULL),"
		 "(1, 'city', 'Austin', 'Dallas', 'two-way', 'why');");
	fx->st = state_open(fx->path, &fx->err);
	if (fx->st == NULL)
		fail_msg("state_open: %s", fx->err.msg);
	assert_int_equal(state_schema_version(fx->st), SCHEMA_VERSION);
	/* The old tables' pages went back to the file system (VACUUM). */
	expect_peek(fx->path, "PRAGMA freelist_count", "0");
	expect_peek(fx->path, "SELECT group_concat(remote_id || '=' || coalesce(merged, 'NULL'), ' ') FROM "
		    "(SELECT * FROM snapshot ORDER BY remote_id)",
		    "g1=same g2={\"first_name\":\"Rob\"} g3=NULL");
	expect_peek(fx->path, "SELECT group_concat(x, ' ') FROM (SELECT person_id || ':' || field || '=' || value "
		    "|| ':' || coalesce(system, '-') || ':' || rule || ':' || reason || ':' || run_id || ':' || "
		    "coalesce(beaten, '-') AS x FROM field_value ORDER BY person_id, field)",
		    "1:first_name=Ann:ghl:two-way:changed in one system:1:{\"verity\":\"\"} "
		    "1:phone=+15550102030:ghl:prefer-valid:changed in one system:1:- "
		    "2:email=bob@example.com:-:two-way:unchanged:1:-");
	expect_peek(fx->path, "SELECT group_concat(x, ' ') FROM (SELECT system || ':' || remote_id || '=' || person_id "
		    "|| ':' || how || ':' || run_id || ':' || coalesce(deleted_run, '-') AS x FROM link ORDER BY remote_id)",
		    "ghl:g1=1:new:1:- ghl:g2=2:new:1:- verity:old=2:new:1:1");
	expect_peek(fx->path, "SELECT group_concat(x, ' ') FROM (SELECT outbox_id || ':' || seq || ':' || field || "
		    "':' || coalesce(old_value, '-') || ':' || new_value || ':' || rule || ':' || coalesce(reason, '-') "
		    "AS x FROM outbox_field ORDER BY outbox_id, seq)",
		    "1:1:tags:-:vip:union:- 1:2:city:Austin:Dallas:two-way:why 2:1:city:A:B:two-way:-");
	/* The merged copy reads as before. */
	record_init(&prev);
	OK(state_snapshot_merged(fx->st, "ghl", "g1", &prev, &known, &fx->err));
	assert_true(known);
	assert_string_equal(prev.value[F_FIRST_NAME], "Ann");
	record_clear(&prev);
	record_init(&prev);
	OK(state_snapshot_merged(fx->st, "ghl", "g2", &prev, &known, &fx->err));
	assert_true(known);
	assert_string_equal(prev.value[F_FIRST_NAME], "Rob");
	record_clear(&prev);
	record_init(&prev);
	OK(state_snapshot_merged(fx->st, "ghl", "g3", &prev, &known, &fx->err));
	assert_false(known);
	record_clear(&prev);
	/* Links and agreed values still find their persons. */
	OK(state_link_get(fx->st, "ghl", "g2", &person, &fx->err));
	assert_int_equal(person, 2);
	OK(state_match(fx->st, "email", "bob@example.com", ids, N(ids), &n, &fx->err));
	assert_true(n == 1 && ids[0] == 2);
	OK(state_match(fx->st, "phone", "+15550102030", ids, N(ids), &n, &fx->err));
	assert_true(n == 1 && ids[0] == 1);
}

/* Issue 9 (<= 2 kB a contact, fewer statements): a person's agreed values
 * are one row, indexed by its phone and e-mail for matching; a write's
 * fields are packed in its outbox row. field_value and outbox_field are
 * their views (with a trigger each, the views take an auditor's update of
 * a value and insert of a write field). */
static void test_compact_tables(void **state)
{
	struct fixture *fx = *state;

	expect_peek(fx->path, "SELECT group_concat(type || ':' || name, ' ') FROM (SELECT type, name FROM sqlite_master "
		    "WHERE tbl_name IN ('field_value', 'outbox_field', 'agreed') ORDER BY name)",
		    "table:agreed index:agreed_email index:agreed_phone view:field_value trigger:field_value_set "
		    "view:outbox_field trigger:outbox_field_add");
}

/* Migration 11 packs a version 10 file's write fields into their outbox
 * rows, in the order planned (seq), nulls kept; the view reads them back
 * as the table held them, and an insert into the view appends. */
static void test_migrate_10_packs_write_fields(void **state)
{
	struct fixture *fx = *state;
	struct outbox_item it;

	for (int v = 0; v < 10; v++)
		raw_exec(fx->path, migrations[v]);
	raw_exec(fx->path, "PRAGMA user_version = 10;"
		 "INSERT INTO run (id, started_at, mode, status) VALUES (1, 'x', 'run', 'ok');"
		 "INSERT INTO person (id, created_run) VALUES (1, 1);"
		 "INSERT INTO outbox (id, run_id, person_id, system, remote_id, op) VALUES "
		 "(1, 1, 1, 'ghl', 'g1', 'update'), (2, 1, 1, 'verity', NULL, 'create'), "
		 "(3, 1, 1, 'aloware', 'a1', 'delete');"
		 "INSERT INTO outbox_field (outbox_id, field, old_value, new_value, rule, reason, seq) VALUES "
		 "(1, 'tags', NULL, 'vip', 'union', NULL, 7), (2, 'city', NULL, 'B\"/', 'two-way', NULL, 8),"
		 "(1, 'city', 'Austin', NULL, 'two-way', 'why', 9), (1, 'email', '', 'a@b.c', NULL, NULL, 10);"
		 "INSERT INTO person (id, created_run) VALUES (2, 1);"
		 "INSERT INTO field_value (person_id, field, value, system, rule, reason, run_id, beaten) VALUES "
		 "(1, 'phone', '+15550102030', 'ghl', 'prefer-valid', 'changed in one system', 1, NULL),"
		 "(1, 'first_name', 'A\"n/n', 'ghl', 'two-way', 'conflict: source order', 3, '{\"verity\":\"x/y\"}'),"
		 "(2, 'email', 'bob@example.com', NULL, 'two-way', 'unchanged', 1, NULL),"
		 "(2, 'city', '', NULL, 'two-way', 'unchanged', 2, NULL);");
	fx->st = state_open(fx->path, &fx->err);
	if (fx->st == NULL)
		fail_msg("state_open: %s", fx->err.msg);
	assert_int_equal(state_schema_version(fx->st), SCHEMA_VERSION);
	expect_peek(fx->path, "PRAGMA freelist_count", "0");
	expect_peek(fx->path, "SELECT group_concat(x, ' ') FROM (SELECT outbox_id || ':' || seq || ':' || field || "
		    "':' || coalesce(old_value, '-') || ':' || coalesce(new_value, '-') || ':' || coalesce(rule, '-') "
		    "|| ':' || coalesce(reason, '-') AS x FROM outbox_field ORDER BY outbox_id, seq)",
		    "1:1:tags:-:vip:union:- 1:2:city:Austin:-:two-way:why 1:3:email::a@b.c:-:- "
		    "2:1:city:-:B\"/:two-way:-");
	expect_peek(fx->path, "SELECT coalesce(fields, 'NULL') FROM outbox WHERE id = 3", "NULL");
	OK(state_outbox_load(fx->st, 1, &it, &fx->err));
	assert_int_equal(it.nfields, 3);
	assert_string_equal(it.f[0].name, "tags");
	assert_string_equal(it.f[1].name, "city");
	assert_null(it.f[1].new_value);
	assert_string_equal(it.f[2].old_value, "");
	outbox_item_clear(&it);
	raw_exec(fx->path, "INSERT INTO outbox_field (outbox_id, field, old_value, new_value) "
		 "VALUES (3, 'phone', 'x', NULL), (1, 'state', NULL, 'TX');");
	expect_peek(fx->path, "SELECT group_concat(outbox_id || ':' || seq || ':' || field, ' ') FROM "
		    "(SELECT * FROM outbox_field WHERE outbox_id <> 2 ORDER BY outbox_id, seq)",
		    "1:1:tags 1:2:city 1:3:email 1:4:state 3:1:phone");
	/* The agreed values: one row per person, every column kept. */
	expect_peek(fx->path, "SELECT group_concat(x, ' ') FROM (SELECT person_id || ':' || field || '=' || value "
		    "|| ':' || coalesce(system, '-') || ':' || rule || ':' || reason || ':' || run_id || ':' || "
		    "coalesce(beaten, '-') || ':' || typeof(run_id) AS x FROM field_value ORDER BY person_id, field)",
		    "1:first_name=A\"n/n:ghl:two-way:conflict: source order:3:{\"verity\":\"x/y\"}:integer "
		    "1:phone=+15550102030:ghl:prefer-valid:changed in one system:1:-:integer "
		    "2:city=:-:two-way:unchanged:2:-:integer "
		    "2:email=bob@example.com:-:two-way:unchanged:1:-:integer");
	expect_peek(fx->path, "SELECT group_concat(person_id || ':' || coalesce(phone, '-') || ':' || "
		    "coalesce(email, '-'), ' ') FROM agreed", "1:+15550102030:- 2:-:bob@example.com");
	{
		long long ids[4];
		int n = -1;
		OK(state_match(fx->st, "email", "bob@example.com", ids, N(ids), &n, &fx->err));
		assert_true(n == 1 && ids[0] == 2);
		OK(state_match(fx->st, "phone", "+15550102030", ids, N(ids), &n, &fx->err));
		assert_true(n == 1 && ids[0] == 1);
	}
}

/* A write's fields load in the order they were planned, not by name. */
static void test_outbox_fields_keep_their_order(void **state)
{
	struct fixture *fx = *state;
	struct outbox_item it;
	long long p1 = state_person_new(fx->st, fx->run, &fx->err);
	static const struct write_field f1[] = {
		{ "tags", NULL, "vip", "union", NULL },
		{ "city", "Austin", "Dallas", "two-way", NULL },
		{ "email", NULL, "a@example.com", "two-way", NULL },
	}, f2[] = { { "email", NULL, "a@example.com", "two-way", NULL } };
	long long w1 = state_outbox_add(fx->st, fx->run, p1, "ghl", "c1", "update", f1, N(f1), &fx->err);
	long long w2 = state_outbox_add(fx->st, fx->run, p1, "verity", "v1", "update", f2, N(f2), &fx->err);

	assert_true(w1 == 1 && w2 == 2);
	/* Trailing nulls are left out of a field's array. */
	expect_peek(fx->path, "SELECT fields FROM outbox WHERE id = 1",
		    "[[\"tags\",null,\"vip\",1],[\"city\",\"Austin\",\"Dallas\",2],"
		    "[\"email\",null,\"a@example.com\",2]]");
	OK(state_outbox_load(fx->st, w1, &it, &fx->err));
	assert_int_equal(it.nfields, 3);
	assert_string_equal(it.f[0].name, "tags");
	assert_string_equal(it.f[1].name, "city");
	assert_string_equal(it.f[2].name, "email");
	outbox_item_clear(&it);
	expect_peek(fx->path, "SELECT group_concat(outbox_id || ':' || seq || ':' || field, ' ') FROM "
		    "(SELECT * FROM outbox_field ORDER BY outbox_id, seq)",
		    "1:1:tags 1:2:city 1:3:email 2:1:email");
}

/* The merge's view of a record: snapshot and merged copy in one read,
 * and whether the copy is already 'same' (nothing to mark then). */
static void test_snapshot_view(void **state)
{
	struct fixture *fx = *state;
	struct record rec, got, prev;
	bool found, known, same;

	record_init(&got);
	record_init(&prev);
	OK(state_snapshot_view(fx->st, "ghl", "none", &got, &found, &prev, &known, &same, &fx->err));
	assert_false(found || known || same);
	record_clear(&got);
	record_clear(&prev);
	record_init(&rec);
	rec.remote_id = xstrdup("g1");
	rec.updated_ms = 42;
	record_set(&rec, F_FIRST_NAME, "Ann");
	record_set(&rec, F_CITY, "");
	OK(state_snapshot_put(fx->st, "ghl", &rec, fx->run, &fx->err));
	/* Never merged: fresh. */
	record_init(&got);
	record_init(&prev);
	OK(state_snapshot_view(fx->st, "ghl", "g1", &got, &found, &prev, &known, &same, &fx->err));
	assert_true(found && !known && !same);
	assert_string_equal(got.remote_id, "g1");
	assert_int_equal(got.updated_ms, 42);
	assert_string_equal(got.value[F_FIRST_NAME], "Ann");
	assert_null(prev.value[F_FIRST_NAME]);
	record_clear(&got);
	record_clear(&prev);
	/* Merged as it is: 'same', the copy is the fields. */
	OK(state_snapshot_mark_merged(fx->st, "ghl", "g1", &fx->err));
	record_init(&got);
	record_init(&prev);
	OK(state_snapshot_view(fx->st, "ghl", "g1", &got, &found, &prev, &known, &same, &fx->err));
	assert_true(found && known && same);
	assert_string_equal(prev.value[F_FIRST_NAME], "Ann");
	assert_string_equal(prev.value[F_CITY], "");
	assert_null(prev.value[F_PHONE]);
	record_clear(&got);
	record_clear(&prev);
	/* Changed since: the merged copy is what was merged. */
	record_set(&rec, F_FIRST_NAME, "Anna");
	OK(state_snapshot_put(fx->st, "ghl", &rec, 2, &fx->err));
	record_init(&got);
	record_init(&prev);
	OK(state_snapshot_view(fx->st, "ghl", "g1", &got, &found, &prev, &known, &same, &fx->err));
	assert_true(found && known && !same);
	assert_string_equal(got.value[F_FIRST_NAME], "Anna");
	assert_string_equal(prev.value[F_FIRST_NAME], "Ann");
	record_clear(&got);
	record_clear(&prev);
	record_clear(&rec);
}

/* A record's merged copy is stored once when it is its fields ('same'),
 * and keeps the values merged when the fields change. */
static void test_merged_copy_once(void **state)
{
	struct fixture *fx = *state;
	struct record rec, prev;
	bool known = true;

	record_init(&rec);
	rec.remote_id = xstrdup("g1");
	record_set(&rec, F_FIRST_NAME, "Ann");
	OK(state_snapshot_put(fx->st, "ghl", &rec, fx->run, &fx->err));
	record_init(&prev);
	OK(state_snapshot_merged(fx->st, "ghl", "g1", &prev, &known, &fx->err));
	assert_false(known);
	expect_peek(fx->path, "SELECT merged FROM snapshot WHERE remote_id = 'g1'", NULL);

	OK(state_snapshot_mark_merged(fx->st, "ghl", "g1", &fx->err));
	expect_peek(fx->path, "SELECT merged FROM snapshot WHERE remote_id = 'g1'", "same");
	OK(state_snapshot_merged(fx->st, "ghl", "g1", &prev, &known, &fx->err));
	assert_true(known);
	assert_string_equal(prev.value[F_FIRST_NAME], "Ann");
	record_clear(&prev);

	/* An edit read: the merged copy keeps what was merged. */
	record_set(&rec, F_FIRST_NAME, "Anna");
	OK(state_snapshot_put(fx->st, "ghl", &rec, 2, &fx->err));
	expect_peek(fx->path, "SELECT merged FROM snapshot WHERE remote_id = 'g1'", "{\"first_name\":\"Ann\"}");
	expect_peek(fx->path, "SELECT fields FROM snapshot WHERE remote_id = 'g1'", "{\"first_name\":\"Anna\"}");
	record_init(&prev);
	OK(state_snapshot_merged(fx->st, "ghl", "g1", &prev, &known, &fx->err));
	assert_true(known);
	assert_string_equal(prev.value[F_FIRST_NAME], "Ann");
	record_clear(&prev);
	/* The same put again changes nothing. */
	OK(state_snapshot_put(fx->st, "ghl", &rec, 3, &fx->err));
	expect_peek(fx->path, "SELECT merged FROM snapshot WHERE remote_id = 'g1'", "{\"first_name\":\"Ann\"}");

	/* A merge base set to the fields is 'same'; another is kept whole. */
	OK(state_snapshot_set_merged(fx->st, "ghl", "g1", &rec, &fx->err));
	expect_peek(fx->path, "SELECT merged FROM snapshot WHERE remote_id = 'g1'", "same");
	record_init(&prev);
	record_set(&prev, F_FIRST_NAME, "Annie");
	OK(state_snapshot_set_merged(fx->st, "ghl", "g1", &prev, &fx->err));
	expect_peek(fx->path, "SELECT merged FROM snapshot WHERE remote_id = 'g1'", "{\"first_name\":\"Annie\"}");
	record_clear(&prev);
	OK(state_snapshot_mark_merged(fx->st, "ghl", "g1", &fx->err));
	expect_peek(fx->path, "SELECT merged FROM snapshot WHERE remote_id = 'g1'", "same");
	record_clear(&rec);
}

static void test_newer_version_refused(void **state)
{
	struct fixture *fx = *state;
	char want[256];

	char sql[160], future[16];

	snprintf(future, sizeof(future), "%d", SCHEMA_VERSION + 1);
	snprintf(sql, sizeof(sql), "CREATE TABLE future (x); PRAGMA user_version = %s; PRAGMA application_id = 1684435555", future);
	raw_exec(fx->path, sql);
	fx->st = state_open(fx->path, &fx->err);
	assert_null(fx->st);
	assert_int_equal(fx->err.fail, DF_FAIL_STATE);
	snprintf(want, sizeof(want), "%s: state: schema version %s is newer than this dfreconcile knows (%d)",
		 fx->path, future, SCHEMA_VERSION);
	assert_string_equal(fx->err.msg, want);
	/* The file is left as it was. */
	expect_peek(fx->path, "PRAGMA user_version", future);
	expect_peek(fx->path, "SELECT count(*) FROM sqlite_master WHERE name = 'run'", "0");
}

static void test_open_fails_on_missing_directory(void **state)
{
	struct fixture *fx = *state;

	fx->st = state_open("/tmp/test_state-no-such-dir/state.db", &fx->err);
	assert_null(fx->st);
	assert_int_equal(fx->err.fail, DF_FAIL_STATE);
	assert_string_equal(fx->err.msg, "state: cannot open /tmp/test_state-no-such-dir/state.db: "
			    "unable to open database file");
}

/* Cursors */

static void test_cursor_round_trip(void **state)
{
	struct fixture *fx = *state;
	long long pos = -5;

	OK(state_cursor_get(fx->st, "ghl", "contacts", &pos, &fx->err));
	assert_int_equal(pos, 0);
	OK(state_cursor_set(fx->st, "ghl", "contacts", 1709647629123LL, fx->run, &fx->err));
	OK(state_cursor_set(fx->st, "aloware", "contacts", 5, fx->run, &fx->err));
	OK(state_cursor_get(fx->st, "ghl", "contacts", &pos, &fx->err));
	assert_int_equal(pos, 1709647629123LL);
	OK(state_cursor_set(fx->st, "ghl", "contacts", 1709647630000LL, 2, &fx->err));
	OK(state_cursor_get(fx->st, "ghl", "contacts", &pos, &fx->err));
	assert_int_equal(pos, 1709647630000LL);
	OK(state_cursor_get(fx->st, "aloware", "contacts", &pos, &fx->err));
	assert_int_equal(pos, 5);
	OK(state_cursor_get(fx->st, "ghl", "calls", &pos, &fx->err));
	assert_int_equal(pos, 0);
	expect_peek(fx->path, "SELECT count(*) || ' ' || max(run_id) FROM cursor WHERE system = 'ghl'", "1 2");
}

/* Snapshots, links and matching */

static void fill_record(struct record *r, const char *id, long long updated, const char *phone,
			const char *email)
{
	record_init(r);
	r->remote_id = xstrdup(id);
	r->updated_ms = updated;
	record_set(r, F_FIRST_NAME, "Ann");
	record_set(r, F_PHONE, phone);
	record_set(r, F_EMAIL, email);
	record_set(r, F_ADDRESS1, "");
	record_set(r, F_TAGS, "SYS:x\nvip");
}

static void test_snapshot_round_trip(void **state)
{
	struct fixture *fx = *state;
	struct record put, got;
	long long n = -1;
	bool found = true;
	char *want_json, *got_json;

	fill_record(&put, "c1", 1709647629123LL, "+15550102030", "ann@example.com");
	OK(state_snapshot_put(fx->st, "ghl", &put, fx->run, &fx->err));

	record_init(&got);
	OK(state_snapshot_get(fx->st, "ghl", "c1", &got, &found, &fx->err));
	assert_true(found);
	assert_string_equal(got.remote_id, "c1");
	assert_int_equal(got.updated_ms, 1709647629123LL);
	want_json = record_to_json(&put);
	got_json = record_to_json(&got);
	assert_string_equal(want_json, "{\"first_name\":\"Ann\",\"phone\":\"+15550102030\","
			    "\"email\":\"ann@example.com\",\"address1\":\"\",\"tags\":\"SYS:x\\nvip\"}");
	assert_string_equal(got_json, want_json);
	assert_null(got.value[F_LAST_NAME]);
	free(got_json);
	record_clear(&got);

	/* A put without an update time keeps the known one; fields are replaced. */
	record_clear(&put);
	record_init(&put);
	put.remote_id = xstrdup("c1");
	record_set(&put, F_LAST_NAME, "Smith");
	OK(state_snapshot_put(fx->st, "ghl", &put, 2, &fx->err));
	OK(state_snapshot_get(fx->st, "ghl", "c1", &got, &found, &fx->err));
	assert_true(found);
	assert_int_equal(got.updated_ms, 1709647629123LL);
	got_json = record_to_json(&got);
	assert_string_equal(got_json, "{\"last_name\":\"Smith\"}");
	free(got_json);
	record_clear(&got);

	OK(state_snapshot_seen(fx->st, "ghl", "c1", 1709647700000LL, NULL, 3, &fx->err));
	OK(state_snapshot_get(fx->st, "ghl", "c1", &got, &found, &fx->err));
	assert_int_equal(got.updated_ms, 1709647700000LL);
	record_clear(&got);
	expect_peek(fx->path, "SELECT seen_run FROM snapshot WHERE remote_id = 'c1'", "3");

	OK(state_snapshot_get(fx->st, "ghl", "nope", &got, &found, &fx->err));
	assert_false(found);
	assert_null(got.remote_id);
	OK(state_snapshot_get(fx->st, "aloware", "c1", &got, &found, &fx->err));
	assert_false(found);
	OK(state_snapshot_count(fx->st, "ghl", &n, &fx->err));
	assert_int_equal(n, 1);
	OK(state_snapshot_count(fx->st, "verity", &n, &fx->err));
	assert_int_equal(n, 0);
	free(want_json);
	record_clear(&put);
}

/* Only a valid E.164 phone and a well-formed email become matching keys. */
/* The listed digest: what tells a record listed again unchanged
 * (engine/observe.c). Seen stores it, a put (a write's answer) forgets it,
 * and the quick read gives it with the record's person and marks. */
static void test_snapshot_listed_digest(void **state)
{
	struct fixture *fx = *state;
	struct snapshot_quick q;
	struct record put;
	unsigned char d1[STATE_DIGEST], d2[STATE_DIGEST];
	long long person;

	memset(d1, 0xa5, sizeof(d1));
	memset(d2, 0x5a, sizeof(d2));
	OK(state_snapshot_quick(fx->st, "ghl", "c1", &q, &fx->err));
	assert_false(q.found);

	record_init(&put);
	put.remote_id = xstrdup("c1");
	put.updated_ms = 1000;
	record_set(&put, F_FIRST_NAME, "Ann");
	OK(state_snapshot_put(fx->st, "ghl", &put, fx->run, &fx->err));
	OK(state_snapshot_quick(fx->st, "ghl", "c1", &q, &fx->err));
	assert_true(q.found && q.present);
	assert_false(q.has_digest);
	assert_int_equal(q.person, 0);

	/* Seen unchanged with its digest, then linked. */
	OK(state_snapshot_seen(fx->st, "ghl", "c1", 1000, d1, fx->run, &fx->err));
	person = state_person_new(fx->st, fx->run, &fx->err);
	assert_true(person > 0);
	OK(state_link_put(fx->st, "ghl", "c1", person, "new", fx->run, &fx->err));
	OK(state_snapshot_quick(fx->st, "ghl", "c1", &q, &fx->err));
	assert_true(q.found && q.present && q.has_digest);
	assert_memory_equal(q.digest, d1, STATE_DIGEST);
	assert_int_equal(q.person, person);

	/* A changed record's new digest replaces it. */
	OK(state_snapshot_digest(fx->st, "ghl", "c1", d2, &fx->err));
	OK(state_snapshot_quick(fx->st, "ghl", "c1", &q, &fx->err));
	assert_memory_equal(q.digest, d2, STATE_DIGEST);

	/* Missing or gone is not present: such a record goes the long way. */
	OK(state_mark_gone(fx->st, "ghl", "c1", fx->run, 2000, &fx->err));
	OK(state_snapshot_quick(fx->st, "ghl", "c1", &q, &fx->err));
	assert_false(q.present);

	/* A write's answer stored: the digest is unknown again. */
	OK(state_snapshot_put(fx->st, "ghl", &put, fx->run, &fx->err));
	OK(state_snapshot_quick(fx->st, "ghl", "c1", &q, &fx->err));
	assert_true(q.present);
	assert_false(q.has_digest);
	record_clear(&put);
}

static void test_snapshot_matching_columns(void **state)
{
	struct fixture *fx = *state;
	struct record good, bad, none;

	fill_record(&good, "g1", -1, "+15550102030", "ann@example.com");
	fill_record(&bad, "b1", -1, "call me", "ann at example");
	record_init(&none);
	none.remote_id = xstrdup("n1");
	OK(state_snapshot_put(fx->st, "ghl", &good, fx->run, &fx->err));
	OK(state_snapshot_put(fx->st, "ghl", &bad, fx->run, &fx->err));
	OK(state_snapshot_put(fx->st, "ghl", &none, fx->run, &fx->err));
	expect_peek(fx->path, "SELECT phone || '|' || email FROM snapshot WHERE remote_id = 'g1'",
		    "+15550102030|ann@example.com");
	expect_peek(fx->path, "SELECT phone || '|' || email FROM snapshot WHERE remote_id = 'b1'", "|");
	expect_peek(fx->path, "SELECT phone || '|' || email FROM snapshot WHERE remote_id = 'n1'", "|");
	expect_peek(fx->path, "SELECT remote_updated_ms FROM snapshot WHERE remote_id = 'g1'", NULL);
	record_clear(&good);
	record_clear(&bad);
	record_clear(&none);
}

static void test_match_needs_link(void **state)
{
	struct fixture *fx = *state;
	struct record good, bad;
	long long ids[4], p1, p2, p3;
	int n = -1;

	p1 = state_person_new(fx->st, fx->run, &fx->err);
	p2 = state_person_new(fx->st, fx->run, &fx->err);
	p3 = state_person_new(fx->st, fx->run, &fx->err);
	assert_true(p1 == 1 && p2 == 2 && p3 == 3);
	fill_record(&good, "g1", -1, "+15550102030", "ann@example.com");
	fill_record(&bad, "b1", -1, "call me", "ann at example");
	OK(state_snapshot_put(fx->st, "ghl", &good, fx->run, &fx->err));
	OK(state_snapshot_put(fx->st, "aloware", &bad, fx->run, &fx->err));

	/* A snapshot alone matches nobody. */
	OK(state_match(fx->st, "phone", "+15550102030", ids, N(ids), &n, &fx->err));
	assert_int_equal(n, 0);

	OK(state_link_put(fx->st, "ghl", "g1", p1, "new", fx->run, &fx->err));
	OK(state_link_put(fx->st, "aloware", "b1", p2, "new", fx->run, &fx->err));
	OK(state_match(fx->st, "phone", "+15550102030", ids, N(ids), &n, &fx->err));
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], p1);
	OK(state_match(fx->st, "email", "ann@example.com", ids, N(ids), &n, &fx->err));
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], p1);
	/* An invalid phone or email is never a key, even when linked. */
	OK(state_match(fx->st, "phone", "call me", ids, N(ids), &n, &fx->err));
	assert_int_equal(n, 0);
	OK(state_match(fx->st, "email", "ann at example", ids, N(ids), &n, &fx->err));
	assert_int_equal(n, 0);

	/* An agreed value matches too, once per person, up to max. */
	OK(state_agreed_put(fx->st, p3, "phone", "+15550102030",
			    &(struct provenance){ "verity", "prefer-valid", "changed in one system", NULL },
			    fx->run, &fx->err));
	OK(state_agreed_put(fx->st, p1, "phone", "+15550102030",
			    &(struct provenance){ "ghl", "prefer-valid", "changed in one system", NULL },
			    fx->run, &fx->err));
	OK(state_match(fx->st, "phone", "+15550102030", ids, N(ids), &n, &fx->err));
	assert_int_equal(n, 2);
	assert_true(ids[0] == p1 && ids[1] == p3);   /* distinct, ascending */
	/* Past max, the smallest ids: a message naming candidates names the
	 * same ones whatever order the rows come in. */
	OK(state_agreed_put(fx->st, p2, "phone", "+15550102030",
			    &(struct provenance){ "verity", "prefer-valid", "changed in one system", NULL },
			    fx->run, &fx->err));
	OK(state_match(fx->st, "phone", "+15550102030", ids, 2, &n, &fx->err));
	assert_int_equal(n, 2);
	assert_true(ids[0] == p1 && ids[1] == p2);
	OK(state_match(fx->st, "phone", "+15550102030", ids, 1, &n, &fx->err));
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], p1);
	record_clear(&good);
	record_clear(&bad);
}

static void test_links(void **state)
{
	struct fixture *fx = *state;
	long long p1 = state_person_new(fx->st, fx->run, &fx->err);
	long long p2 = state_person_new(fx->st, fx->run, &fx->err);
	long long person = -1;
	char *rid = NULL;

	OK(state_link_put(fx->st, "ghl", "c1", p1, "new", fx->run, &fx->err));
	OK(state_link_put(fx->st, "aloware", "a1", p1, "phone", fx->run, &fx->err));
	OK(state_link_get(fx->st, "ghl", "c1", &person, &fx->err));
	assert_int_equal(person, p1);
	OK(state_link_get(fx->st, "verity", "c1", &person, &fx->err));
	assert_int_equal(person, 0);
	OK(state_link_of(fx->st, p1, "aloware", &rid, &fx->err));
	assert_string_equal(rid, "a1");
	free(rid);
	OK(state_link_of(fx->st, p1, "verity", &rid, &fx->err));
	assert_null(rid);
	expect_peek(fx->path, "SELECT how FROM link WHERE system = 'aloware'", "phone");

	/* UNIQUE (person_id, system): one record per system per person. */
	assert_int_equal(state_link_put(fx->st, "ghl", "c2", p1, "email", fx->run, &fx->err), -1);
	assert_int_equal(fx->err.fail, DF_FAIL_STATE);
	assert_string_equal(fx->err.msg, "state: write link: UNIQUE constraint failed: "
			    "link.person_id, link.system");
	/* PRIMARY KEY (system, remote_id): one person per record. */
	df_err_clear(&fx->err);
	assert_int_equal(state_link_put(fx->st, "ghl", "c1", p2, "new", fx->run, &fx->err), -1);
	assert_int_equal(fx->err.fail, DF_FAIL_STATE);
	assert_string_equal(fx->err.msg, "state: write link: UNIQUE constraint failed: "
			    "link.system, link.remote_id");
	/* A link needs its person. */
	assert_int_equal(state_link_put(fx->st, "verity", "v1", 99, "new", fx->run, &fx->err), -1);
	assert_string_equal(fx->err.msg, "state: write link: FOREIGN KEY constraint failed");

	/* The statement is still usable and nothing of the refused links stayed. */
	OK(state_link_put(fx->st, "ghl", "c2", p2, "new", fx->run, &fx->err));
	OK(state_link_of(fx->st, p1, "ghl", &rid, &fx->err));
	assert_string_equal(rid, "c1");
	free(rid);
	expect_peek(fx->path, "SELECT count(*) FROM link", "3");

	/* All of a person's live links in one read, by the systems asked. */
	{
		static const char *const systems[] = { "verity", "ghl", "aloware", "texting" };
		char *ids[N(systems)];
		OK(state_link_put(fx->st, "verity", "v9", p1, "new", fx->run, &fx->err));
		OK(state_unlink(fx->st, "verity", "v9", fx->run, &fx->err));
		OK(state_links_of(fx->st, p1, systems, N(systems), ids, &fx->err));
		assert_null(ids[0]);    /* a tombstone is no link */
		assert_string_equal(ids[1], "c1");
		assert_string_equal(ids[2], "a1");
		assert_null(ids[3]);
		for (int i = 0; i < N(systems); i++)
			free(ids[i]);
		OK(state_links_of(fx->st, p2, systems, 2, ids, &fx->err));
		assert_null(ids[0]);
		assert_string_equal(ids[1], "c2");
		free(ids[1]);
	}
}

static void test_dirty_batch(void **state)
{
	struct fixture *fx = *state;
	long long ids[8];
	int n = -1;

	for (int i = 0; i < 5; i++)
		assert_int_equal(state_person_new(fx->st, fx->run, &fx->err), i + 1);
	OK(state_person_dirty(fx->st, 2, false, &fx->err));
	OK(state_person_dirty(fx->st, 4, false, &fx->err));
	OK(state_dirty_batch(fx->st, ids, N(ids), &n, &fx->err));
	assert_int_equal(n, 3);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 3);
	assert_int_equal(ids[2], 5);
	OK(state_dirty_batch(fx->st, ids, 2, &n, &fx->err));
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 3);
	OK(state_person_dirty(fx->st, 4, true, &fx->err));
	for (long long p = 1; p <= 3; p++)
		OK(state_person_dirty(fx->st, p, false, &fx->err));
	OK(state_dirty_batch(fx->st, ids, N(ids), &n, &fx->err));
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], 4);
	assert_int_equal(ids[1], 5);
	OK(state_person_dirty(fx->st, 4, false, &fx->err));
	OK(state_person_dirty(fx->st, 5, false, &fx->err));
	OK(state_dirty_batch(fx->st, ids, N(ids), &n, &fx->err));
	assert_int_equal(n, 0);
}

/* Outbox */

static void expect_due(struct fixture *fx, long long now, long long after, int max,
		       const long long *want, int nwant)
{
	long long ids[8];
	int n = -1;

	OK(state_outbox_due(fx->st, now, after, ids, max, &n, &fx->err));
	if (n != nwant)
		fail_msg("due at %lld after %lld: %d ids, want %d", now, after, n, nwant);
	for (int i = 0; i < n; i++)
		if (ids[i] != want[i])
			fail_msg("due at %lld after %lld: id %d is %lld, want %lld", now, after, i,
				 ids[i], want[i]);
}

static void expect_count(struct fixture *fx, const char *status, long long want)
{
	long long n = -1;

	OK(state_outbox_count(fx->st, status, &n, &fx->err));
	if (n != want)
		fail_msg("outbox %s: %lld, want %lld", status, n, want);
}

static void test_outbox(void **state)
{
	struct fixture *fx = *state;
	struct outbox_item it;
	long long p1 = state_person_new(fx->st, fx->run, &fx->err);
	long long p2 = state_person_new(fx->st, fx->run, &fx->err);
	long long w1, w2;

	/* A write and its fields are journalled as one row. */
	static const struct write_field f1[] = {
		{ "first_name", "Ann", "Anne", "two-way", "changed in one system" },
		{ "phone", NULL, "+15550102030", "prefer-valid", "changed in one system" },
		{ "retired_field", "x", "y", "two-way", "unchanged" },
	};
	w1 = state_outbox_add(fx->st, fx->run, p1, "ghl", "c1", "update", f1, N(f1), &fx->err);
	w2 = state_outbox_add(fx->st, fx->run, p2, "verity", NULL, "create", NULL, 0, &fx->err);
	assert_true(w1 == 1 && w2 == 2);
	/* Rule and reason by their id in wording. */
	expect_peek(fx->path, "SELECT fields FROM outbox WHERE id = 1",
		    "[[\"first_name\",\"Ann\",\"Anne\",1,2],[\"phone\",null,\"+15550102030\",3,2],"
		    "[\"retired_field\",\"x\",\"y\",1,4]]");
	expect_peek(fx->path, "SELECT group_concat(id || '=' || text, '|') FROM wording",
		    "1=two-way|2=changed in one system|3=prefer-valid|4=unchanged");
	expect_peek(fx->path, "SELECT group_concat(field || ':' || rule || ':' || reason, '|') FROM "
		    "(SELECT * FROM outbox_field WHERE outbox_id = 1 ORDER BY seq)",
		    "first_name:two-way:changed in one system|phone:prefer-valid:changed in one system|"
		    "retired_field:two-way:unchanged");
	expect_peek(fx->path, "SELECT coalesce(fields, 'NULL') FROM outbox WHERE id = 2", "NULL");

	expect_due(fx, 0, 0, 8, (long long[]){ w1, w2 }, 2);
	expect_due(fx, 0, w1, 8, (long long[]){ w2 }, 1);
	expect_due(fx, 0, 0, 1, (long long[]){ w1 }, 1);
	expect_count(fx, "pending", 2);

	OK(state_outbox_load(fx->st, w1, &it, &fx->err));
	assert_int_equal(it.id, w1);
	assert_int_equal(it.person, p1);
	assert_string_equal(it.system, "ghl");
	assert_string_equal(it.remote_id, "c1");
	assert_string_equal(it.op, "update");
	assert_int_equal(it.attempts, 0);
	assert_int_equal(it.nfields, 3);
	assert_int_equal(it.f[0].field, F_FIRST_NAME);
	assert_string_equal(it.f[0].old_value, "Ann");
	assert_string_equal(it.f[0].new_value, "Anne");
	assert_int_equal(it.f[1].field, F_PHONE);
	assert_null(it.f[1].old_value);
	assert_string_equal(it.f[1].new_value, "+15550102030");
	assert_int_equal(it.f[2].field, -1);
	outbox_item_clear(&it);
	OK(state_outbox_load(fx->st, w2, &it, &fx->err));
	assert_null(it.remote_id);
	assert_string_equal(it.op, "create");
	assert_int_equal(it.nfields, 0);
	outbox_item_clear(&it);

	/* A failed attempt waits for its backoff. */
	OK(state_outbox_failed(fx->st, w1, 61000, false, "HTTP 503", &fx->err));
	expect_due(fx, 60999, 0, 8, (long long[]){ w2 }, 1);
	expect_due(fx, 61000, 0, 8, (long long[]){ w1, w2 }, 2);
	expect_count(fx, "pending", 2);
	expect_peek(fx->path, "SELECT status || ' ' || attempts || ' ' || next_attempt_ms || ' ' || last_error "
		    "FROM outbox WHERE id = 1", "pending 1 61000 HTTP 503");

	/* A final failure is given up with its reason and never due again. */
	OK(state_outbox_failed(fx->st, w1, 0, true, "HTTP 422: phone invalid", &fx->err));
	expect_due(fx, 1LL << 62, 0, 8, (long long[]){ w2 }, 1);
	expect_count(fx, "failed", 1);
	expect_count(fx, "pending", 1);
	expect_peek(fx->path, "SELECT status || ' ' || attempts || ' ' || last_error FROM outbox WHERE id = 1",
		    "failed 2 HTTP 422: phone invalid");

	/* Done: counts the attempt, records the created id and the run. */
	OK(state_outbox_failed(fx->st, w2, 0, false, "timeout", &fx->err));
	OK(state_outbox_done(fx->st, w2, 5, "v9", &fx->err));
	expect_due(fx, 1LL << 62, 0, 8, NULL, 0);
	expect_count(fx, "done", 1);
	expect_count(fx, "pending", 0);
	expect_peek(fx->path, "SELECT status || ' ' || attempts || ' ' || remote_id || ' ' || done_run || ' ' || "
		    "coalesce(last_error, 'none') FROM outbox WHERE id = 2", "done 2 v9 5 none");
	OK(state_outbox_load(fx->st, w2, &it, &fx->err));
	assert_string_equal(it.remote_id, "v9");
	assert_int_equal(it.attempts, 2);
	outbox_item_clear(&it);

	/* An update's done keeps the remote id it already had. */
	long long w3 = state_outbox_add(fx->st, fx->run, p1, "aloware", "a1", "update", NULL, 0, &fx->err);
	OK(state_outbox_done(fx->st, w3, 5, NULL, &fx->err));
	expect_peek(fx->path, "SELECT remote_id FROM outbox WHERE id = 3", "a1");

	assert_int_equal(state_outbox_load(fx->st, 99, &it, &fx->err), -1);
	assert_int_equal(fx->err.fail, DF_FAIL_STATE);
	outbox_item_clear(&it);
}

static void test_outbox_supersede(void **state)
{
	struct fixture *fx = *state;
	long long p1 = state_person_new(fx->st, fx->run, &fx->err);
	long long p2 = state_person_new(fx->st, fx->run, &fx->err);
	long long old = state_outbox_add(fx->st, fx->run, p1, "ghl", "c1", "update", NULL, 0, &fx->err);
	long long other_sys = state_outbox_add(fx->st, fx->run, p1, "aloware", "a1", "update", NULL, 0, &fx->err);
	long long other_person = state_outbox_add(fx->st, fx->run, p2, "ghl", "c2", "update", NULL, 0, &fx->err);
	long long done = state_outbox_add(fx->st, fx->run, p1, "ghl", "c1", "update", NULL, 0, &fx->err);
	long long failed = state_outbox_add(fx->st, fx->run, p1, "ghl", "c1", "update", NULL, 0, &fx->err);

	assert_true(old == 1 && other_sys == 2 && other_person == 3 && done == 4 && failed == 5);
	OK(state_outbox_done(fx->st, done, fx->run, NULL, &fx->err));
	OK(state_outbox_failed(fx->st, failed, 0, true, "HTTP 400", &fx->err));
	OK(state_outbox_supersede(fx->st, p1, "ghl", &fx->err));
	expect_peek(fx->path, "SELECT group_concat(id || '=' || status, ' ') FROM (SELECT id, status FROM outbox "
		    "ORDER BY id)", "1=superseded 2=pending 3=pending 4=done 5=superseded");
	expect_count(fx, "superseded", 2);
	expect_due(fx, 0, 0, 8, (long long[]){ other_sys, other_person }, 2);
}

/* I11: unknown writes are due; refused ones wait for a newer plan, another
 * configuration or retry; retry also reopens given-up writes. */
/* The fields come back in the order they were journalled, whatever their
 * names (the write and the dry run's plan list them so). */
static void test_outbox_field_order(void **state)
{
	struct fixture *fx = *state;
	struct outbox_item it;
	long long p = state_person_new(fx->st, fx->run, &fx->err);
	static const char *const names[] = { "phone", "city", "last_name", "email", "first_name" };
	struct write_field f[N(names)];
	long long w;

	for (int i = 0; i < N(names); i++)
		f[i] = (struct write_field){ names[i], NULL, names[i], "two-way", "new" };
	w = state_outbox_add(fx->st, fx->run, p, "ghl", "c1", "update", f, N(f), &fx->err);
	OK(state_outbox_load(fx->st, w, &it, &fx->err));
	assert_int_equal(it.nfields, N(names));
	for (int i = 0; i < N(names); i++) {
		assert_string_equal(it.f[i].name, names[i]);
		assert_string_equal(it.f[i].new_value, names[i]);
	}
	outbox_item_clear(&it);

	/* Fields as the state does not write them (edited by hand: spaces, a
	 * boolean, an escape) are still read, by SQLite, in their order. */
	raw_exec(fx->path, "UPDATE outbox SET fields = '[ [\"tags\" , null,\"vip\",true] ,"
		 "[\"city\",\"\\u00e9\", \"x\"]]' WHERE id = 1");
	OK(state_outbox_load(fx->st, w, &it, &fx->err));
	assert_int_equal(it.nfields, 2);
	assert_string_equal(it.f[0].name, "tags");
	assert_null(it.f[0].old_value);
	assert_string_equal(it.f[0].new_value, "vip");
	assert_int_equal(it.f[1].field, F_CITY);
	assert_string_equal(it.f[1].old_value, "\xc3\xa9");
	outbox_item_clear(&it);
}

/* I2: a batch's intents are journalled before it is sent (pending ->
 * unknown, due rows of the id range only); a row nothing was recorded for
 * is pending again, any recorded outcome stands. */
static void test_outbox_mark(void **state)
{
	struct fixture *fx = *state;
	long long p = state_person_new(fx->st, fx->run, &fx->err);
	long long w1 = state_outbox_add(fx->st, fx->run, p, "ghl", "c1", "update", NULL, 0, &fx->err);
	long long w2 = state_outbox_add(fx->st, fx->run, p, "verity", "v1", "update", NULL, 0, &fx->err);
	long long w3 = state_outbox_add(fx->st, fx->run, p, "aloware", NULL, "create", NULL, 0, &fx->err);
	long long w4 = state_outbox_add(fx->st, fx->run, p, "texting", NULL, "create", NULL, 0, &fx->err);
	long long w5 = state_outbox_add(fx->st, fx->run, p, "ghl", "c2", "update", NULL, 0, &fx->err);
	long long ids[8];
	int attempts[8], n = -1;

	OK(state_outbox_failed(fx->st, w2, 5000, false, "HTTP 503", &fx->err));   /* not due */
	OK(state_outbox_set(fx->st, w3, "unknown", true, 0, "no answer", &fx->err)); /* not pending */
	OK(state_outbox_mark(fx->st, 1000, 0, w4, ids, attempts, N(ids), &n, &fx->err));
	assert_int_equal(n, 2);
	assert_true((ids[0] == w1 && ids[1] == w4) || (ids[0] == w4 && ids[1] == w1));
	assert_true(attempts[0] == 0 && attempts[1] == 0);
	expect_peek(fx->path, "SELECT group_concat(status || ' ' || attempts, ', ') FROM (SELECT * FROM outbox "
		    "ORDER BY id)", "unknown 0, pending 1, unknown 1, unknown 0, pending 0");
	/* w1 sent and answered, w4 not sent: w4 is pending again. */
	OK(state_outbox_done(fx->st, w1, fx->run, NULL, &fx->err));
	OK(state_outbox_unmark(fx->st, w1, 0, &fx->err));
	OK(state_outbox_unmark(fx->st, w4, 0, &fx->err));
	/* A marked write sent without an answer stays unknown. */
	OK(state_outbox_mark(fx->st, 1000, w4, w5, ids, attempts, N(ids), &n, &fx->err));
	assert_true(n == 1 && ids[0] == w5 && attempts[0] == 0);
	OK(state_outbox_set(fx->st, w5, "unknown", true, 0, "no answer", &fx->err));
	OK(state_outbox_unmark(fx->st, w5, 0, &fx->err));
	expect_peek(fx->path, "SELECT group_concat(status || ' ' || attempts, ', ') FROM (SELECT * FROM outbox "
		    "ORDER BY id)", "done 1, pending 1, unknown 1, pending 0, unknown 1");
}

static void test_outbox_failure_classes(void **state)
{
	struct fixture *fx = *state;
	long long p1 = state_person_new(fx->st, fx->run, &fx->err);
	long long p2 = state_person_new(fx->st, fx->run, &fx->err);
	long long unknown = state_outbox_add(fx->st, fx->run, p1, "ghl", NULL, "create", NULL, 0, &fx->err);
	long long refused = state_outbox_add(fx->st, fx->run, p1, "aloware", "a1", "update", NULL, 0, &fx->err);
	long long failed = state_outbox_add(fx->st, fx->run, p2, "ghl", "c2", "update", NULL, 0, &fx->err);
	long long w = -1, d = -1;

	OK(state_link_put(fx->st, "ghl", "c2", p2, "created", fx->run, &fx->err));
	OK(state_outbox_set(fx->st, unknown, "unknown", true, 1000, "no answer", &fx->err));
	OK(state_outbox_refused(fx->st, refused, "HTTP 422: bad", "cfg-a", &fx->err));
	OK(state_outbox_failed(fx->st, failed, 0, true, "HTTP 500", &fx->err));
	expect_due(fx, 999, 0, 8, NULL, 0);
	expect_due(fx, 1000, 0, 8, (long long[]){ unknown }, 1);
	expect_peek(fx->path, "SELECT attempts || ' ' || last_error || ' ' || config FROM outbox WHERE id = 2",
		    "1 HTTP 422: bad cfg-a");
	/* The same configuration: still refused; another: due again. */
	OK(state_refused_reopen(fx->st, "cfg-a", &w, &fx->err));
	assert_int_equal(w, 0);
	OK(state_refused_reopen(fx->st, "cfg-b", &w, &fx->err));
	assert_int_equal(w, 1);
	expect_due(fx, 1000, 0, 8, (long long[]){ unknown, refused }, 2);
	/* retry SYSTEM:ID names the record; its person's given-up write. */
	OK(state_retry(fx->st, "aloware", "a1", &w, &d, &fx->err));
	assert_true(w == 0 && d == 0);
	OK(state_retry(fx->st, "ghl", "c2", &w, &d, &fx->err));
	assert_true(w == 1 && d == 0);
	expect_peek(fx->path, "SELECT status || ' ' || attempts FROM outbox WHERE id = 3", "pending 0");
	OK(state_retry(fx->st, NULL, NULL, &w, &d, &fx->err));
	assert_true(w == 0 && d == 0);
}

/* Transactions nest as savepoints. */

static long long count_persons(struct fixture *fx)
{
	long long ids[16];
	int n = -1;

	OK(state_dirty_batch(fx->st, ids, N(ids), &n, &fx->err));
	return n;
}

static void test_nested_transactions(void **state)
{
	struct fixture *fx = *state;
	long long pos = -1;

	/* A rolled back inner savepoint leaves no rows; the outer keeps its own. */
	OK(state_begin(fx->st, &fx->err));
	assert_int_equal(state_person_new(fx->st, fx->run, &fx->err), 1);
	OK(state_begin(fx->st, &fx->err));
	assert_int_equal(state_person_new(fx->st, fx->run, &fx->err), 2);
	OK(state_cursor_set(fx->st, "ghl", "contacts", 99, fx->run, &fx->err));
	assert_int_equal(count_persons(fx), 2);
	assert_int_equal(state_rollback(fx->st), 0);
	assert_int_equal(count_persons(fx), 1);
	OK(state_commit(fx->st, &fx->err));
	expect_peek(fx->path, "SELECT group_concat(id) FROM person", "1");
	OK(state_cursor_get(fx->st, "ghl", "contacts", &pos, &fx->err));
	assert_int_equal(pos, 0);

	/* A committed inner savepoint still goes when the outer rolls back. */
	OK(state_begin(fx->st, &fx->err));
	OK(state_begin(fx->st, &fx->err));
	OK(state_cursor_set(fx->st, "ghl", "contacts", 77, fx->run, &fx->err));
	OK(state_commit(fx->st, &fx->err));
	assert_int_equal(state_rollback(fx->st), 0);
	OK(state_cursor_get(fx->st, "ghl", "contacts", &pos, &fx->err));
	assert_int_equal(pos, 0);

	/* Committed work is visible to other connections; rollback at depth 0
	 * is a no-op. */
	OK(state_begin(fx->st, &fx->err));
	OK(state_cursor_set(fx->st, "ghl", "contacts", 55, fx->run, &fx->err));
	expect_peek(fx->path, "SELECT count(*) FROM cursor", "0");
	OK(state_commit(fx->st, &fx->err));
	expect_peek(fx->path, "SELECT position_ms FROM cursor", "55");
	assert_int_equal(state_rollback(fx->st), 0);
	expect_peek(fx->path, "SELECT position_ms FROM cursor", "55");
	assert_int_equal(state_commit(fx->st, &fx->err), -1);
	assert_int_equal(fx->err.fail, DF_FAIL_STATE);
}

/* Agreed values and their provenance */

static void test_agreed_values(void **state)
{
	struct fixture *fx = *state;
	struct record agreed;
	long long p1 = state_person_new(fx->st, fx->run, &fx->err);
	long long p2 = state_person_new(fx->st, fx->run, &fx->err);

	OK(state_agreed_put(fx->st, p1, "first_name", "Ann",
			    &(struct provenance){ "ghl", "two-way", "conflict: source order",
						  "{\"aloware\":\"Anne\"}" }, fx->run, &fx->err));
	OK(state_agreed_put(fx->st, p1, "tags", "SYS:x\nvip",
			    &(struct provenance){ NULL, "union", "union", NULL }, fx->run, &fx->err));
	OK(state_agreed_put(fx->st, p1, "retired_field", "x",
			    &(struct provenance){ "ghl", "two-way", "changed in one system", NULL },
			    fx->run, &fx->err));
	OK(state_agreed_put(fx->st, p2, "first_name", "Bob",
			    &(struct provenance){ "verity", "two-way", "changed in one system", NULL },
			    fx->run, &fx->err));

	record_init(&agreed);
	OK(state_agreed_get(fx->st, p1, &agreed, &fx->err));
	assert_string_equal(agreed.value[F_FIRST_NAME], "Ann");
	assert_string_equal(agreed.value[F_TAGS], "SYS:x\nvip");
	for (int f = 0; f < fields_count(); f++)
		if (f != F_FIRST_NAME && f != F_TAGS && agreed.value[f] != NULL)
			fail_msg("field %s: unexpected agreed value %s", field_get(f)->name, agreed.value[f]);
	record_clear(&agreed);
	expect_peek(fx->path, "SELECT value || '|' || system || '|' || rule || '|' || reason || '|' || run_id "
		    "|| '|' || beaten FROM field_value WHERE person_id = 1 AND field = 'first_name'",
		    "Ann|ghl|two-way|conflict: source order|1|{\"aloware\":\"Anne\"}");
	expect_peek(fx->path, "SELECT coalesce(system, 'NULL') || '|' || rule || '|' || coalesce(beaten, 'NULL') "
		    "FROM field_value WHERE person_id = 1 AND field = 'tags'", "NULL|union|NULL");

	/* A new decision replaces value and provenance. */
	OK(state_agreed_put(fx->st, p1, "first_name", "Anne",
			    &(struct provenance){ "aloware", "newest", "conflict: newest update", NULL },
			    7, &fx->err));
	record_init(&agreed);
	OK(state_agreed_get(fx->st, p1, &agreed, &fx->err));
	assert_string_equal(agreed.value[F_FIRST_NAME], "Anne");
	record_clear(&agreed);
	expect_peek(fx->path, "SELECT count(*) || '|' || value || '|' || system || '|' || rule || '|' || reason "
		    "|| '|' || run_id || '|' || coalesce(beaten, 'NULL') FROM field_value "
		    "WHERE person_id = 1 AND field = 'first_name'",
		    "1|Anne|aloware|newest|conflict: newest update|7|NULL");

	record_init(&agreed);
	OK(state_agreed_get(fx->st, 42, &agreed, &fx->err));
	for (int f = 0; f < fields_count(); f++)
		assert_null(agreed.value[f]);
	record_clear(&agreed);
}

/* A merge's changed values are one patch, written in one statement over
 * the person's row: the fields it names replace theirs, the others keep
 * value and provenance; phone and e-mail follow for matching; rule and
 * reason are named once in wording. */
static void test_agreed_patch(void **state)
{
	struct fixture *fx = *state;
	struct agreed_patch patch;
	struct record agreed;
	long long p1 = state_person_new(fx->st, fx->run, &fx->err), ids[4];
	int n = -1;

	state_patch_init(&patch);
	OK(state_patch_add(fx->st, &patch, "phone", "+15550102030",
			   &(struct provenance){ "ghl", "prefer-valid", "changed in one system", NULL }, 1, &fx->err));
	OK(state_patch_add(fx->st, &patch, "email", "ann@example.com",
			   &(struct provenance){ "ghl", "two-way", "changed in one system", NULL }, 1, &fx->err));
	OK(state_patch_add(fx->st, &patch, "city", "Austin \"TX\"/",
			   &(struct provenance){ NULL, "two-way", "unchanged", "{\"verity\":\"a/b\"}" }, 1, &fx->err));
	OK(state_agreed_write(fx->st, p1, &patch, &fx->err));
	assert_int_equal(patch.n, 0);
	expect_peek(fx->path, "SELECT fields FROM agreed WHERE person_id = 1",
		    "{\"phone\":[\"+15550102030\",\"ghl\",1,2,1],\"email\":[\"ann@example.com\",\"ghl\",3,2,1],"
		    "\"city\":[\"Austin \\\"TX\\\"\\/\",null,3,4,1,\"{\\\"verity\\\":\\\"a\\/b\\\"}\"]}");
	expect_peek(fx->path, "SELECT group_concat(id || '=' || text, '|') FROM wording",
		    "1=prefer-valid|2=changed in one system|3=two-way|4=unchanged");
	expect_peek(fx->path, "SELECT group_concat(x, ' ') FROM (SELECT field || '=' || value || ':' || "
		    "coalesce(system, '-') || ':' || rule || ':' || reason || ':' || run_id || ':' || coalesce(beaten, '-') "
		    "AS x FROM field_value WHERE person_id = 1 ORDER BY field)",
		    "city=Austin \"TX\"/:-:two-way:unchanged:1:{\"verity\":\"a/b\"} "
		    "email=ann@example.com:ghl:two-way:changed in one system:1:- "
		    "phone=+15550102030:ghl:prefer-valid:changed in one system:1:-");

	/* A later patch replaces only what it names. The written patch is
	 * empty and serves again; it is freed once, at the end. */
	OK(state_patch_add(fx->st, &patch, "phone", "+15550109999",
			   &(struct provenance){ "verity", "prefer-valid", "conflict: newest update", NULL }, 4,
			   &fx->err));
	OK(state_agreed_write(fx->st, p1, &patch, &fx->err));
	state_patch_free(&patch);
	expect_peek(fx->path, "SELECT phone || ' ' || email FROM agreed WHERE person_id = 1",
		    "+15550109999 ann@example.com");
	expect_peek(fx->path, "SELECT group_concat(field || '=' || value || ':' || run_id || ':' || reason, ' ') "
		    "FROM (SELECT * FROM field_value WHERE person_id = 1 ORDER BY field)",
		    "city=Austin \"TX\"/:1:unchanged email=ann@example.com:1:changed in one system "
		    "phone=+15550109999:4:conflict: newest update");
	OK(state_match(fx->st, "phone", "+15550109999", ids, N(ids), &n, &fx->err));
	assert_true(n == 1 && ids[0] == p1);
	OK(state_match(fx->st, "phone", "+15550102030", ids, N(ids), &n, &fx->err));
	assert_int_equal(n, 0);
	record_init(&agreed);
	OK(state_agreed_get(fx->st, p1, &agreed, &fx->err));
	assert_string_equal(agreed.value[F_CITY], "Austin \"TX\"/");
	assert_string_equal(agreed.value[F_PHONE], "+15550109999");
	record_clear(&agreed);

	/* A key is written as SQLite writes it ('/' unescaped, as in a row
	 * the migration made), so a later patch replaces it, not adds a
	 * second one; undo's path finds it. */
	raw_exec(fx->path, "UPDATE agreed SET fields = json_set(fields, '$.\"a/b\"', json_array('1', NULL, 3, 4, 1)) "
		 "WHERE person_id = 1");
	OK(state_agreed_put(fx->st, p1, "a/b", "2",
			    &(struct provenance){ NULL, "two-way", "unchanged", NULL }, 6, &fx->err));
	OK(state_agreed_put(fx->st, p1, "c\"d\n", "3",
			    &(struct provenance){ NULL, "two-way", "unchanged", NULL }, 6, &fx->err));
	OK(state_agreed_put(fx->st, p1, "c\"d\n", "4",
			    &(struct provenance){ NULL, "two-way", "unchanged", NULL }, 6, &fx->err));
	expect_peek(fx->path, "SELECT group_concat(field || '=' || value, ' ') FROM field_value "
		    "WHERE person_id = 1 AND field IN ('a/b', 'c\"d' || char(10))", "a/b=2 c\"d\n=4");
	expect_peek(fx->path, "SELECT fields ->> ('$.' || json_quote('a/b') || '[0]') FROM agreed WHERE person_id = 1", "2");

	/* An empty patch writes nothing. */
	state_patch_init(&patch);
	OK(state_agreed_write(fx->st, 99, &patch, &fx->err));
	state_patch_free(&patch);
	expect_peek(fx->path, "SELECT count(*) FROM agreed", "1");

	/* A wording added in a transaction rolled back is not named after it. */
	OK(state_begin(fx->st, &fx->err));
	OK(state_agreed_put(fx->st, p1, "state", "TX",
			    &(struct provenance){ NULL, "two-way", "taken back", NULL }, 5, &fx->err));
	assert_int_equal(state_rollback(fx->st), 0);
	OK(state_agreed_put(fx->st, p1, "country", "US",
			    &(struct provenance){ NULL, "two-way", "said again", NULL }, 5, &fx->err));
	OK(state_agreed_put(fx->st, p1, "state", "TX",
			    &(struct provenance){ NULL, "two-way", "taken back", NULL }, 5, &fx->err));
	expect_peek(fx->path, "SELECT group_concat(field || ':' || reason, ' ') FROM "
		    "(SELECT * FROM field_value WHERE person_id = 1 AND field IN ('country', 'state') ORDER BY field)",
		    "country:said again state:taken back");

	/* A row as the state does not write it (edited by hand: spaces, a
	 * boolean, an escape) is still read, by SQLite. */
	raw_exec(fx->path, "UPDATE agreed SET fields = '{ \"city\" : [\"Dallas\", true, 3, 4, 1] , "
		 "\"country\":[\"\\u00e9\"], \"gone_field\":[\"x\"]}' WHERE person_id = 1");
	record_init(&agreed);
	OK(state_agreed_get(fx->st, p1, &agreed, &fx->err));
	assert_string_equal(agreed.value[F_CITY], "Dallas");
	assert_string_equal(agreed.value[F_COUNTRY], "\xc3\xa9");
	assert_null(agreed.value[F_PHONE]);
	record_clear(&agreed);
	raw_exec(fx->path, "UPDATE agreed SET fields = '{\"city\":[\"Houston\",null,3,4,1],"
		 "\"gone_field\":[\"x\",null,3,4,1]}' WHERE person_id = 1");
	record_init(&agreed);
	OK(state_agreed_get(fx->st, p1, &agreed, &fx->err));
	assert_string_equal(agreed.value[F_CITY], "Houston");
	assert_null(agreed.value[F_COUNTRY]);
	record_clear(&agreed);
	raw_exec(fx->path, "UPDATE agreed SET fields = '{\"email\":[\"ann@example.com\",null,3,4,1]}' "
		 "WHERE person_id = 1");

	/* An auditor's update of a value through the view changes the row. */
	raw_exec(fx->path, "UPDATE field_value SET value = 'x@example.com' WHERE person_id = 1 AND field = 'email'");
	expect_peek(fx->path, "SELECT email || ' ' || (fields ->> '$.email[0]') || ' ' || (fields ->> '$.email[2]') "
		    "FROM agreed", "x@example.com x@example.com 3");
}

/* The sweep's scheduling, deletes and tombstones */

/* A linked record of system: a person, a snapshot put in run and a link,
 * last swept at swept_ms. Returns the person. */
static long long add_linked(struct fixture *fx, const char *system, const char *id, long long run,
			    long long swept_ms)
{
	struct record rec;
	long long person = state_person_new(fx->st, run, &fx->err);

	if (person <= 0)
		fail_msg("state_person_new: %s", fx->err.msg);
	record_init(&rec);
	rec.remote_id = xstrdup(id);
	record_set(&rec, F_FIRST_NAME, id);
	OK(state_snapshot_put(fx->st, system, &rec, run, &fx->err));
	OK(state_link_put(fx->st, system, id, person, "new", run, &fx->err));
	OK(state_snapshot_swept(fx->st, system, id, swept_ms, &fx->err));
	record_clear(&rec);
	return person;
}

/* Asserts the sweep batch of system (max, before_ms) is want, in order
 * (want NULL-terminated). */
static void expect_sweep(struct fixture *fx, const char *system, int max, long long before_ms,
			 const char *const *want)
{
	char **ids = NULL, got[256] = "", exp[256] = "";
	int n = -1;

	OK(state_sweep_batch(fx->st, system, max, before_ms, &ids, &n, &fx->err));
	for (int i = 0; i < n; i++) {
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", i ? " " : "", ids[i]);
		free(ids[i]);
	}
	free(ids);
	for (int i = 0; want[i] != NULL; i++)
		snprintf(exp + strlen(exp), sizeof(exp) - strlen(exp), "%s%s", i ? " " : "", want[i]);
	if (strcmp(got, exp) != 0)
		fail_msg("sweep %s max %d before %lld: got [%s], want [%s]", system, max, before_ms, got, exp);
}

#define IDS(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define NO_IDS ((const char *const[]){ NULL })

static void test_sweep_batch(void **state)
{
	struct fixture *fx = *state;
	struct record rec;

	add_linked(fx, "ghl", "r1", fx->run, 300);
	add_linked(fx, "ghl", "r2", fx->run, 100);
	add_linked(fx, "ghl", "r3", fx->run, 200);
	add_linked(fx, "ghl", "r4", fx->run, 100);
	add_linked(fx, "ghl", "r5", fx->run, 500);
	add_linked(fx, "aloware", "a1", fx->run, 10);
	/* A snapshot without a link is not the sweep's. */
	record_init(&rec);
	rec.remote_id = xstrdup("u1");
	OK(state_snapshot_put(fx->st, "ghl", &rec, fx->run, &fx->err));
	OK(state_snapshot_swept(fx->st, "ghl", "u1", 50, &fx->err));
	record_clear(&rec);

	/* Least recently swept first; ties by id. */
	expect_sweep(fx, "ghl", 10, 1000, IDS("r2", "r4", "r3", "r1", "r5"));
	/* The budget. */
	expect_sweep(fx, "ghl", 2, 1000, IDS("r2", "r4"));
	expect_sweep(fx, "ghl", 1, 1000, IDS("r2"));
	expect_sweep(fx, "ghl", 0, 1000, NO_IDS);
	/* The interval: swept at or before before_ms only. */
	expect_sweep(fx, "ghl", 10, 200, IDS("r2", "r4", "r3"));
	expect_sweep(fx, "ghl", 10, 199, IDS("r2", "r4"));
	expect_sweep(fx, "ghl", 10, 99, NO_IDS);
	expect_sweep(fx, "ghl", 2, 300, IDS("r2", "r4"));
	/* Per system. */
	expect_sweep(fx, "aloware", 10, 1000, IDS("a1"));
	expect_sweep(fx, "verity", 10, 1000, NO_IDS);

	/* Sweeping a record moves it to the back. */
	OK(state_snapshot_swept(fx->st, "ghl", "r2", 600, &fx->err));
	expect_sweep(fx, "ghl", 10, 1000, IDS("r4", "r3", "r1", "r5", "r2"));
	expect_sweep(fx, "ghl", 10, 599, IDS("r4", "r3", "r1", "r5"));

	/* A record marked gone is not swept again. */
	OK(state_mark_gone(fx->st, "ghl", "r4", fx->run, ALL_OLD, &fx->err));
	expect_sweep(fx, "ghl", 10, 1000, IDS("r3", "r1", "r5", "r2"));
	/* Nor a tombstoned one, even should a snapshot of it come back. */
	OK(state_unlink(fx->st, "ghl", "r3", fx->run, &fx->err));
	expect_sweep(fx, "ghl", 10, 1000, IDS("r1", "r5", "r2"));
	record_init(&rec);
	rec.remote_id = xstrdup("r3");
	OK(state_snapshot_put(fx->st, "ghl", &rec, fx->run, &fx->err));
	OK(state_snapshot_swept(fx->st, "ghl", "r3", 1, &fx->err));
	record_clear(&rec);
	expect_sweep(fx, "ghl", 10, 1000, IDS("r1", "r5", "r2"));
	/* A record read again is not gone: due again. */
	OK(state_snapshot_seen(fx->st, "ghl", "r4", 1, NULL, fx->run, &fx->err));
	expect_sweep(fx, "ghl", 10, 1000, IDS("r4", "r1", "r5", "r2"));
}

/* Runs of the sweep against a fake clock: each run takes a batch within the
 * budget and interval and marks what it swept. Every record must come up
 * within ceil(n / budget) runs of its last sweep, every run. */
static void test_sweep_rotation(void **state)
{
	static const struct { int n, budget; } cases[] = {
		{ 7, 3 }, { 6, 3 }, { 1, 1 }, { 10, 4 }, { 5, 10 }, { 9, 1 }, { 12, 5 },
	};
	struct fixture *fx = *state;
	long long clock = 10000;

	for (int c = 0; c < N(cases); c++) {
		int n = cases[c].n, budget = cases[c].budget, window = (n + budget - 1) / budget;
		int last[16] = { 0 };
		char system[32];

		assert_true(n <= N(last));
		snprintf(system, sizeof(system), "rot%d", c);
		/* Initial sweep times against id order: r(i) swept at n - 1 - i. */
		for (int i = 0; i < n; i++) {
			char id[16];
			snprintf(id, sizeof(id), "r%02d", i);
			add_linked(fx, system, id, fx->run, n - 1 - i);
		}
		for (int run = 1; run <= 3 * window + 1; run++) {
			char **ids = NULL;
			int got = -1;

			clock += 10;
			OK(state_sweep_batch(fx->st, system, budget, clock, &ids, &got, &fx->err));
			if (got != (n < budget ? n : budget))
				fail_msg("n %d budget %d run %d: %d records, want %d", n, budget, run, got,
					 n < budget ? n : budget);
			for (int i = 0; i < got; i++) {
				int k = atoi(ids[i] + 1);
				/* The first run takes the least recently swept. */
				if (run == 1 && n - 1 - k >= got)
					fail_msg("n %d budget %d: first run took %s (swept at %d)", n, budget,
						 ids[i], n - 1 - k);
				for (int j = 0; j < i; j++)
					if (strcmp(ids[i], ids[j]) == 0)
						fail_msg("n %d budget %d run %d: %s twice", n, budget, run, ids[i]);
				last[k] = run;
				OK(state_snapshot_swept(fx->st, system, ids[i], clock + i, &fx->err));
			}
			for (int i = 0; i < got; i++)
				free(ids[i]);
			free(ids);
			for (int k = 0; k < n; k++)
				if (run - last[k] >= window)
					fail_msg("n %d budget %d: r%02d not swept in runs %d..%d (window %d)", n,
						 budget, k, last[k] + 1, run, window);
		}
	}
}

/* The interval keeps a record swept recently out of the next batches. */
static void test_sweep_interval(void **state)
{
	struct fixture *fx = *state;
	const long long interval = 100;
	char **ids = NULL;
	int n = -1;

	add_linked(fx, "ghl", "r1", fx->run, 0);
	add_linked(fx, "ghl", "r2", fx->run, 1);
	add_linked(fx, "ghl", "r3", fx->run, 2);

	OK(state_sweep_batch(fx->st, "ghl", 10, 1000 - interval, &ids, &n, &fx->err));
	assert_int_equal(n, 3);
	for (int i = 0; i < n; i++) {
		OK(state_snapshot_swept(fx->st, "ghl", ids[i], 1000, &fx->err));
		free(ids[i]);
	}
	free(ids);
	expect_sweep(fx, "ghl", 10, 1050 - interval, NO_IDS);
	expect_sweep(fx, "ghl", 10, 1099 - interval, NO_IDS);
	expect_sweep(fx, "ghl", 10, 1100 - interval, IDS("r1", "r2", "r3"));
}

/* A full listing marks missing what it did not list: a candidate that
 * counts for the valve once older than the lookback, never gone (I10). */
static void test_mark_unseen(void **state)
{
	struct fixture *fx = *state;
	long long run2, n = -1;
	struct record rec;
	char **ids = NULL;
	int nids = -1;

	add_linked(fx, "ghl", "g1", fx->run, 0);
	add_linked(fx, "ghl", "g2", fx->run, 0);
	add_linked(fx, "ghl", "g3", fx->run, 0);
	add_linked(fx, "ghl", "g4", fx->run, 0);
	add_linked(fx, "aloware", "a1", fx->run, 0);

	run2 = state_run_start(fx->st, "full", &fx->err);
	assert_int_equal(run2, fx->run + 1);
	/* Run 2 lists g1 unchanged and g2 changed; the sweep found g3 gone. */
	OK(state_snapshot_seen(fx->st, "ghl", "g1", 5000, NULL, run2, &fx->err));
	record_init(&rec);
	rec.remote_id = xstrdup("g2");
	record_set(&rec, F_FIRST_NAME, "changed");
	OK(state_snapshot_put(fx->st, "ghl", &rec, run2, &fx->err));
	record_clear(&rec);
	OK(state_mark_gone(fx->st, "ghl", "g3", run2, ALL_OLD, &fx->err));

	OK(state_mark_unseen(fx->st, "ghl", run2, &n, &fx->err));
	assert_int_equal(n, 1);                 /* g4; g3 was marked already */
	OK(state_gone_count(fx->st, "ghl", ALL_OLD, &n, &fx->err));
	assert_int_equal(n, 2);
	/* g4 was first seen now: younger than any lookback, it does not count. */
	OK(state_gone_count(fx->st, "ghl", 0, &n, &fx->err));
	assert_int_equal(n, 1);
	OK(state_gone_count(fx->st, "aloware", ALL_OLD, &n, &fx->err));
	assert_int_equal(n, 0);
	expect_peek(fx->path, "SELECT group_concat(remote_id, ' ') FROM (SELECT remote_id FROM snapshot "
		    "WHERE gone_run IS NOT NULL ORDER BY remote_id)", "g3");
	expect_peek(fx->path, "SELECT group_concat(remote_id, ' ') FROM (SELECT remote_id FROM snapshot "
		    "WHERE missing_run IS NOT NULL ORDER BY remote_id)", "g4");
	OK(state_missing_batch(fx->st, "ghl", 10, ALL_OLD, &ids, &nids, &fx->err));
	assert_int_equal(nids, 1);
	assert_string_equal(ids[0], "g4");
	free(ids[0]);
	free(ids);
	OK(state_missing_batch(fx->st, "ghl", 10, 0, &ids, &nids, &fx->err));
	assert_int_equal(nids, 0);
	free(ids);
	/* Again in the same run: nothing new. */
	OK(state_mark_unseen(fx->st, "ghl", run2, &n, &fx->err));
	assert_int_equal(n, 0);

	/* Its endpoint still has it: no longer missing. */
	OK(state_snapshot_seen(fx->st, "ghl", "g4", 5000, NULL, run2, &fx->err));
	OK(state_gone_count(fx->st, "ghl", ALL_OLD, &n, &fx->err));
	assert_int_equal(n, 1);
	/* A young record its endpoint calls gone is only missing. */
	OK(state_mark_gone(fx->st, "ghl", "g1", run2, 0, &fx->err));
	expect_peek(fx->path, "SELECT group_concat(remote_id, ' ') FROM (SELECT remote_id FROM snapshot "
		    "WHERE gone_run IS NOT NULL ORDER BY remote_id)", "g3");
	expect_peek(fx->path, "SELECT group_concat(remote_id, ' ') FROM (SELECT remote_id FROM snapshot "
		    "WHERE missing_run IS NOT NULL ORDER BY remote_id)", "g1");
}

/* The safety valve's count (I6): changes to known records of dirty persons
 * made after their last merge; new records and opt-outs do not count. */
static void expect_valve(struct fixture *fx, const char *system, long long changed,
			 long long cleared_records, long long cleared_fields)
{
	struct valve_changes vc;

	OK(state_valve_changes(fx->st, system, &vc, &fx->err));
	if (vc.changed != changed || vc.cleared_records != cleared_records ||
	    vc.cleared_fields != cleared_fields)
		fail_msg("%s: changed %lld, cleared %lld fields in %lld records; want %lld, %lld in %lld",
			 system, vc.changed, vc.cleared_fields, vc.cleared_records, changed, cleared_fields,
			 cleared_records);
}

static void test_valve_changes(void **state)
{
	struct fixture *fx = *state;
	long long p1 = add_linked(fx, "verity", "v1", fx->run, 0);
	long long p2 = add_linked(fx, "verity", "v2", fx->run, 0);
	long long p3 = add_linked(fx, "verity", "v3", fx->run, 0);
	long long run2;

	/* Run 1 linked them: first sightings (no old value) do not count. */
	OK(state_observed_add(fx->st, fx->run, "verity", "v1", p1, "first_name", NULL, "v1", &fx->err));
	expect_valve(fx, "verity", 0, 0, 0);
	OK(state_person_merged(fx->st, p1, fx->run, &fx->err));
	OK(state_person_merged(fx->st, p2, fx->run, &fx->err));
	OK(state_person_merged(fx->st, p3, fx->run, &fx->err));
	expect_valve(fx, "verity", 0, 0, 0);

	/* Run 2: v1 loses both names, v2 is renamed, v3 opts out. */
	run2 = state_run_start(fx->st, "run", &fx->err);
	OK(state_observed_add(fx->st, run2, "verity", "v1", p1, "first_name", "Ann", "", &fx->err));
	OK(state_observed_add(fx->st, run2, "verity", "v1", p1, "last_name", "Lee", "", &fx->err));
	OK(state_observed_add(fx->st, run2, "verity", "v2", p2, "first_name", "Bob", "Rob", &fx->err));
	OK(state_observed_add(fx->st, run2, "verity", "v3", p3, "optout_sms", "false", "true", &fx->err));
	OK(state_person_dirty(fx->st, p1, true, &fx->err));
	OK(state_person_dirty(fx->st, p2, true, &fx->err));
	OK(state_person_dirty(fx->st, p3, true, &fx->err));
	expect_valve(fx, "verity", 2, 1, 2);
	expect_valve(fx, "ghl", 0, 0, 0);
	/* Still counted while not merged (a tripped valve); not once merged. */
	OK(state_person_merged(fx->st, p1, run2, &fx->err));
	expect_valve(fx, "verity", 1, 0, 0);
	/* Dirty again later: only what came after the merge counts. */
	OK(state_person_dirty(fx->st, p1, true, &fx->err));
	expect_valve(fx, "verity", 1, 0, 0);
}

/* Gone records are unlinked one by one; the link stays as a tombstone. */
static void test_unlink_tombstone(void **state)
{
	struct fixture *fx = *state;
	long long p1 = add_linked(fx, "ghl", "c1", fx->run, 0);
	long long p2 = add_linked(fx, "ghl", "c2", fx->run, 0);
	long long pa = add_linked(fx, "aloware", "a1", fx->run, 0);
	long long person = -1, n = -1;
	char *sys = NULL, *id = NULL;
	bool found = false, deleted = true;
	struct record got;

	assert_true(p1 > 0 && p2 > 0 && pa > 0);
	OK(state_link_put(fx->st, "aloware", "a2", p1, "phone", fx->run, &fx->err));
	OK(state_link_deleted(fx->st, p1, "ghl", &deleted, &fx->err));
	assert_false(deleted);

	OK(state_mark_gone(fx->st, "ghl", "c1", fx->run, ALL_OLD, &fx->err));
	OK(state_gone_next(fx->st, &sys, &id, &person, &found, &fx->err));
	assert_true(found);
	assert_string_equal(sys, "ghl");
	assert_string_equal(id, "c1");
	assert_int_equal(person, p1);
	free(sys);
	free(id);
	OK(state_unlink(fx->st, "ghl", "c1", fx->run, &fx->err));
	OK(state_gone_next(fx->st, &sys, &id, &person, &found, &fx->err));
	assert_false(found);

	/* The tombstone: no link, no snapshot, but the delete is known. */
	OK(state_link_get(fx->st, "ghl", "c1", &person, &fx->err));
	assert_int_equal(person, 0);
	OK(state_link_of(fx->st, p1, "ghl", &id, &fx->err));
	assert_null(id);
	OK(state_link_deleted(fx->st, p1, "ghl", &deleted, &fx->err));
	assert_true(deleted);
	OK(state_link_deleted(fx->st, p1, "aloware", &deleted, &fx->err));
	assert_false(deleted);
	OK(state_link_deleted(fx->st, p2, "ghl", &deleted, &fx->err));
	assert_false(deleted);
	record_init(&got);
	OK(state_snapshot_get(fx->st, "ghl", "c1", &got, &found, &fx->err));
	assert_false(found);
	record_clear(&got);
	OK(state_snapshot_count(fx->st, "ghl", &n, &fx->err));
	assert_int_equal(n, 1);
	expect_peek(fx->path, "SELECT person_id || ' ' || deleted_run FROM link WHERE remote_id = 'c1'", "1 1");
	/* The other systems keep their links. */
	OK(state_link_get(fx->st, "aloware", "a2", &person, &fx->err));
	assert_int_equal(person, p1);

	/* A new record of the same person and system replaces the tombstone. */
	OK(state_link_put(fx->st, "ghl", "c9", p1, "created", 2, &fx->err));
	OK(state_link_deleted(fx->st, p1, "ghl", &deleted, &fx->err));
	assert_false(deleted);
	OK(state_link_get(fx->st, "ghl", "c9", &person, &fx->err));
	assert_int_equal(person, p1);
	OK(state_link_of(fx->st, p1, "ghl", &id, &fx->err));
	assert_string_equal(id, "c9");
	free(id);
	expect_peek(fx->path, "SELECT count(*) FROM link WHERE system = 'ghl' AND person_id = 1", "1");

	/* A tombstoned record id that comes back links again (to anyone). */
	OK(state_mark_gone(fx->st, "ghl", "c2", fx->run, ALL_OLD, &fx->err));
	OK(state_unlink(fx->st, "ghl", "c2", fx->run, &fx->err));
	OK(state_link_get(fx->st, "ghl", "c2", &person, &fx->err));
	assert_int_equal(person, 0);
	long long p3 = state_person_new(fx->st, fx->run, &fx->err);
	OK(state_link_put(fx->st, "ghl", "c2", p3, "new", 2, &fx->err));
	OK(state_link_get(fx->st, "ghl", "c2", &person, &fx->err));
	assert_int_equal(person, p3);
	OK(state_link_deleted(fx->st, p2, "ghl", &deleted, &fx->err));
	assert_false(deleted);

	/* A live link is not replaced: the constraint still holds. */
	assert_int_equal(state_link_put(fx->st, "ghl", "c10", p1, "new", 2, &fx->err), -1);
	assert_int_equal(fx->err.fail, DF_FAIL_STATE);
}

/* Calls and messages: stored once per source id; deliveries once per target. */
static void test_events_and_deliveries(void **state)
{
	struct fixture *fx = *state;
	long long e1 = -1, e2 = -1, again = -1, other = -1, ids[8];
	struct delivery_item it;
	int n = -1;

	OK(state_event_add(fx->st, "message", "texting", "m1", "t1", "+15550102030", "{\"body\":\"hi\"}",
			   1000, fx->run, &e1, &fx->err));
	assert_true(e1 > 0);
	/* Another write in between: the duplicate must not report its count. */
	OK(state_optout_set(fx->st, "+15550102030", "sms", true, "texting", "STOP", fx->run, &fx->err));
	OK(state_event_add(fx->st, "message", "texting", "m1", "t1", "+15550102030", "{\"body\":\"changed\"}",
			   2000, fx->run, &again, &fx->err));
	assert_int_equal(again, 0);
	/* The same id from another source is another event. */
	OK(state_event_add(fx->st, "call", "aloware", "m1", "a1", NULL, "{}", 3000, fx->run, &other, &fx->err));
	assert_true(other > e1);
	OK(state_event_add(fx->st, "call", "aloware", "c2", NULL, NULL, "{}", 4000, fx->run, &e2, &fx->err));
	assert_true(e2 > other);
	expect_peek(fx->path, "SELECT count(*) || ' ' || max(payload) FROM event WHERE source_id = 'm1' "
		    "AND source = 'texting'", "1 {\"body\":\"hi\"}");

	OK(state_delivery_add(fx->st, e1, "ghl", fx->run, &fx->err));
	OK(state_delivery_add(fx->st, e1, "ghl", fx->run, &fx->err));
	OK(state_delivery_add(fx->st, e2, "ghl", fx->run, &fx->err));
	expect_peek(fx->path, "SELECT count(*) FROM delivery", "2");
	OK(state_delivery_due(fx->st, 0, 0, ids, N(ids), &n, &fx->err));
	assert_int_equal(n, 2);

	OK(state_delivery_load(fx->st, ids[0], &it, &fx->err));
	assert_string_equal(it.target, "ghl");
	assert_string_equal(it.status, "waiting");
	assert_int_equal(it.attempts, 0);
	assert_int_equal(it.ev.id, e1);
	assert_string_equal(it.ev.kind, "message");
	assert_string_equal(it.ev.source_contact, "t1");
	assert_string_equal(it.ev.phone, "+15550102030");
	assert_string_equal(it.ev.payload, "{\"body\":\"hi\"}");
	assert_int_equal(it.ev.occurred_ms, 1000);
	assert_int_equal(it.ev.person, 0);
	delivery_item_clear(&it);

	OK(state_event_person(fx->st, e1, 7, &fx->err));
	OK(state_delivery_set(fx->st, ids[1], "pending", true, 5000, NULL, "HTTP 503", fx->run, &fx->err));
	OK(state_delivery_set(fx->st, ids[0], "done", true, 0, "note-1", NULL, 3, &fx->err));
	OK(state_delivery_due(fx->st, 4999, 0, ids, N(ids), &n, &fx->err));
	assert_int_equal(n, 0);
	OK(state_delivery_due(fx->st, 5000, 0, ids, N(ids), &n, &fx->err));
	assert_int_equal(n, 1);
	OK(state_delivery_load(fx->st, ids[0], &it, &fx->err));
	assert_int_equal(it.ev.id, e2);
	assert_string_equal(it.status, "pending");
	assert_int_equal(it.attempts, 1);
	delivery_item_clear(&it);
	expect_peek(fx->path, "SELECT status || ' ' || attempts || ' ' || remote_id || ' ' || done_run || ' ' || "
		    "coalesce(last_error, 'none') FROM delivery WHERE event_id = 1", "done 1 note-1 3 none");
	expect_peek(fx->path, "SELECT person_id FROM event WHERE id = 1", "7");

	/* Journalling a done delivery again (the event re-read within the
	 * lookback) does not open it again. */
	OK(state_delivery_add(fx->st, e1, "ghl", 4, &fx->err));
	OK(state_delivery_due(fx->st, 1LL << 62, 0, ids, N(ids), &n, &fx->err));
	assert_int_equal(n, 1);
	expect_peek(fx->path, "SELECT status || ' ' || run_id FROM delivery WHERE event_id = 1", "done 1");
}

/* Waiting and pending deliveries come out together, by id, a batch at a
 * time after the last id taken; done ones and those not yet due do not. */
static void test_delivery_due_order(void **state)
{
	struct fixture *fx = *state;
	long long ev, ids[8];
	int n;

	for (int i = 1; i <= 6; i++) {
		char sid[8];
		snprintf(sid, sizeof(sid), "c%d", i);
		OK(state_event_add(fx->st, "call", "aloware", sid, NULL, NULL, "{}", i, fx->run, &ev, &fx->err));
		OK(state_delivery_add(fx->st, ev, "ghl", fx->run, &fx->err));
	}
	OK(state_delivery_set(fx->st, 2, "pending", true, 10, NULL, "HTTP 503", fx->run, &fx->err));
	OK(state_delivery_set(fx->st, 3, "done", true, 0, "n3", NULL, fx->run, &fx->err));
	OK(state_delivery_set(fx->st, 4, "pending", true, 10, NULL, "HTTP 503", fx->run, &fx->err));
	OK(state_delivery_set(fx->st, 5, "pending", true, 99, NULL, "HTTP 503", fx->run, &fx->err));
	OK(state_delivery_due(fx->st, 10, 0, ids, 3, &n, &fx->err));
	assert_int_equal(n, 3);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 2);
	assert_int_equal(ids[2], 4);
	OK(state_delivery_due(fx->st, 10, 4, ids, 3, &n, &fx->err));
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], 6);
	OK(state_delivery_due(fx->st, 99, 1, ids, N(ids), &n, &fx->err));
	assert_int_equal(n, 4);
	assert_int_equal(ids[0], 2);
	assert_int_equal(ids[3], 6);
}

/* The opt-out registry by phone and channel. */
static void test_optout_registry(void **state)
{
	static const char PHONE[] = "+15550102030";
	struct fixture *fx = *state;
	bool out = true;
	char *source = (char *)"x";

	OK(state_optout_get(fx->st, PHONE, "sms", &out, &source, &fx->err));
	assert_false(out);
	assert_null(source);

	OK(state_optout_set(fx->st, PHONE, "sms", true, "texting", "STOP keyword", fx->run, &fx->err));
	OK(state_optout_get(fx->st, PHONE, "sms", &out, &source, &fx->err));
	assert_true(out);
	assert_string_equal(source, "texting");
	free(source);
	/* Per channel and per number. */
	OK(state_optout_get(fx->st, PHONE, "call", &out, &source, &fx->err));
	assert_false(out);
	assert_null(source);
	OK(state_optout_get(fx->st, "+15550102031", "sms", &out, &source, &fx->err));
	assert_false(out);
	assert_null(source);

	/* An opt-in replaces it, keeping who did it. */
	OK(state_optout_set(fx->st, PHONE, "sms", false, "ghl", "opt-in", 2, &fx->err));
	OK(state_optout_get(fx->st, PHONE, "sms", &out, &source, &fx->err));
	assert_false(out);
	assert_string_equal(source, "ghl");
	free(source);
	expect_peek(fx->path, "SELECT count(*) || ' ' || status || ' ' || reason || ' ' || run_id FROM optout",
		    "1 opted-in opt-in 2");

	OK(state_optout_set(fx->st, PHONE, "sms", true, "verity", "flag", 3, &fx->err));
	OK(state_optout_get(fx->st, PHONE, "sms", &out, &source, &fx->err));
	assert_true(out);
	assert_string_equal(source, "verity");
	free(source);

	OK(state_optout_log(fx->st, fx->run, PHONE, "sms", 4, "opt-out", "texting", "STOP", &fx->err));
	OK(state_optout_log(fx->st, fx->run, NULL, "email", 4, "opt-in-refused", "aloware", "no", &fx->err));
	expect_peek(fx->path, "SELECT group_concat(coalesce(phone, '-') || ' ' || channel || ' ' || action, '; ') "
		    "FROM optout_log", "+15550102030 sms opt-out; - email opt-in-refused");
}

/* Call-list membership as last made. */
static void test_list_members(void **state)
{
	struct fixture *fx = *state;
	char **lists = NULL;
	int n = -1;

	OK(state_list_members(fx->st, 1, &lists, &n, &fx->err));
	assert_int_equal(n, 0);
	free(lists);
	OK(state_list_member_set(fx->st, 1, "L2", true, fx->run, &fx->err));
	OK(state_list_member_set(fx->st, 1, "L1", true, fx->run, &fx->err));
	OK(state_list_member_set(fx->st, 1, "L3", true, fx->run, &fx->err));
	OK(state_list_member_set(fx->st, 2, "L9", true, fx->run, &fx->err));
	OK(state_list_member_set(fx->st, 1, "L3", false, 2, &fx->err));
	OK(state_list_members(fx->st, 1, &lists, &n, &fx->err));
	assert_int_equal(n, 2);
	assert_string_equal(lists[0], "L1");
	assert_string_equal(lists[1], "L2");
	for (int i = 0; i < n; i++)
		free(lists[i]);
	free(lists);
	expect_peek(fx->path, "SELECT status || ' ' || run_id FROM list_member WHERE list_id = 'L3'", "removed 2");
	OK(state_list_member_set(fx->st, 1, "L3", true, 3, &fx->err));
	OK(state_list_members(fx->st, 1, &lists, &n, &fx->err));
	assert_int_equal(n, 3);
	for (int i = 0; i < n; i++)
		free(lists[i]);
	free(lists);
}

/* A held record's keys make others with the same key ambiguous, but never
 * itself; an admin's unlink leaves no tombstone; actions are journalled. */
static void test_holds_and_admin_actions(void **state)
{
	struct fixture *fx = *state;
	struct record a, b;
	char *kind = NULL, *first = NULL;
	long long p1 = state_person_new(fx->st, fx->run, &fx->err), owner = -1;

	fill_record(&a, "g1", -1, "+15550102030", "ann@example.com");
	fill_record(&b, "g2", -1, "+15550102030", "bob@example.com");
	OK(state_snapshot_put(fx->st, "ghl", &a, fx->run, &fx->err));
	OK(state_link_put(fx->st, "ghl", "g1", p1, "new", fx->run, &fx->err));
	OK(state_snapshot_put(fx->st, "ghl", &b, fx->run, &fx->err));
	OK(state_hold_put(fx->st, "ghl", "g2", "ambiguous", "phone shared", fx->run, &fx->err));

	OK(state_hold_get(fx->st, "ghl", "g2", &kind, &fx->err));
	assert_string_equal(kind, "ambiguous");
	free(kind);
	OK(state_held_other(fx->st, "phone", "+15550102030", "aloware", "7", &first, &fx->err));
	assert_string_equal(first, "ghl:g2");
	free(first);
	OK(state_held_other(fx->st, "phone", "+15550102030", "ghl", "g2", &first, &fx->err));
	assert_null(first);
	OK(state_held_other(fx->st, "email", "bob@example.com", "", "", &first, &fx->err));
	assert_string_equal(first, "ghl:g2");
	free(first);
	OK(state_held_other(fx->st, "email", "ann@example.com", "", "", &first, &fx->err));
	assert_null(first);

	OK(state_link_drop(fx->st, "ghl", "g1", &fx->err));
	OK(state_link_get(fx->st, "ghl", "g1", &owner, &fx->err));
	assert_int_equal(owner, 0);
	expect_peek(fx->path, "SELECT count(*) FROM link", "0");
	OK(state_hold_drop(fx->st, "ghl", "g2", &fx->err));
	OK(state_hold_get(fx->st, "ghl", "g2", &kind, &fx->err));
	assert_null(kind);
	OK(state_admin_log(fx->st, "unlink", "ann", "ghl", "g1", p1, 0, "linked to person 1", "held (unlinked)",
			   &fx->err));
	expect_peek(fx->path, "SELECT action || ' ' || who || ' ' || person_before || ' ' || "
		    "coalesce(person_after, '-') || ' ' || after FROM admin_action",
		    "unlink ann 1 - held (unlinked)");
	record_clear(&a);
	record_clear(&b);
}

/* The report layer's one way in (state_query): rows come typed, params
 * bind as integers or text, and a statement that writes is refused. */
struct typed_rows { int n; enum state_type type[4]; char text[4][32]; };

static int keep_row(void *arg, int n, const struct state_cell *cells)
{
	struct typed_rows *r = arg;

	for (int i = 0; i < n && i < 4; i++) {
		r->type[i] = cells[i].type;
		snprintf(r->text[i], sizeof(r->text[i]), "%s", cells[i].text ? cells[i].text : "(null)");
	}
	r->n++;
	return 0;
}

static void test_query_is_typed_and_read_only(void **state)
{
	struct fixture *fx = *state;
	struct typed_rows r = { 0 };
	const char *params[2] = { "42", "abc" };
	long long n = -1;

	OK(state_query(fx->st, "SELECT ?1 + 1, ?2, 1.5, NULL", params, 2, keep_row, &r, &fx->err));
	assert_int_equal(r.n, 1);
	assert_int_equal(r.type[0], STATE_INTEGER);
	assert_string_equal(r.text[0], "43");
	assert_int_equal(r.type[1], STATE_TEXT);
	assert_string_equal(r.text[1], "abc");
	assert_int_equal(r.type[2], STATE_REAL);
	assert_int_equal(r.type[3], STATE_NULL);
	assert_int_equal(state_query(fx->st, "DELETE FROM run", NULL, 0, keep_row, &r, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg, "must not write"));
	assert_int_equal(state_query(fx->st, "SELECT nonsense FROM nowhere", NULL, 0, keep_row, &r, &fx->err), -1);
	OK(state_outbox_count(fx->st, "pending", &n, &fx->err));
	assert_int_equal(n, 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_open, teardown)
#define T_FILE(f) cmocka_unit_test_setup_teardown(f, setup_file, teardown)
	const struct CMUnitTest tests[] = {
		T(test_open_creates_schema),
		T_FILE(test_migrate_from_version_1),
		T_FILE(test_migrate_counts_snapshots),
		T_FILE(test_migrate_9_keeps_rows),
		T_FILE(test_migrate_10_packs_write_fields),
		T(test_compact_tables),
		T(test_merged_copy_once),
		T(test_outbox_fields_keep_their_order),
		T_FILE(test_newer_version_refused),
		T_FILE(test_open_fails_on_missing_directory),
		T(test_cursor_round_trip),
		T(test_query_is_typed_and_read_only),
		T(test_snapshot_round_trip),
		T(test_snapshot_listed_digest),
		T(test_snapshot_matching_columns),
		T(test_match_needs_link),
		T(test_links),
		T(test_dirty_batch),
		T(test_outbox),
		T(test_outbox_supersede),
		T(test_outbox_field_order),
		T(test_outbox_mark),
		T(test_outbox_failure_classes),
		T(test_nested_transactions),
		T(test_agreed_values),
		T(test_agreed_patch),
		T(test_snapshot_view),
		T(test_sweep_batch),
		T(test_sweep_rotation),
		T(test_sweep_interval),
		T(test_mark_unseen),
		T(test_valve_changes),
		T(test_unlink_tombstone),
		T(test_events_and_deliveries),
		T(test_delivery_due_order),
		T(test_optout_registry),
		T(test_list_members),
		T(test_holds_and_admin_actions),
	};

	return cmocka_run_group_tests_name("state", tests, NULL, NULL);
}
