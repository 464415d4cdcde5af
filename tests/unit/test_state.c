/*
 * test_state.c - the SQLite journal (state/state.c) on real temporary files.
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

#include <cmocka.h>
#include <sqlite3.h>

#include "../../state/schema.h"
#include "../../state/state.h"
#include "../../core/str.h"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

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

	assert_int_equal(SCHEMA_VERSION, 3);
	assert_int_equal(state_schema_version(fx->st), SCHEMA_VERSION);
	expect_peek(fx->path, "PRAGMA user_version", "3");
	expect_peek(fx->path, "PRAGMA journal_mode", "wal");
	expect_peek(fx->path, "SELECT group_concat(name, ' ') FROM (SELECT name FROM sqlite_master "
		    "WHERE type = 'table' ORDER BY name)",
		    "conflict cursor delivery event field_value link list_member notice observed "
		    "optout optout_log outbox outbox_field person quarantine run run_system snapshot");
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

static void test_newer_version_refused(void **state)
{
	struct fixture *fx = *state;
	char want[256];

	raw_exec(fx->path, "CREATE TABLE future (x); PRAGMA user_version = 4");
	fx->st = state_open(fx->path, &fx->err);
	assert_null(fx->st);
	assert_int_equal(fx->err.fail, DF_FAIL_STATE);
	snprintf(want, sizeof(want), "%s: state: schema version 4 is newer than this dfreconcile knows (3)",
		 fx->path);
	assert_string_equal(fx->err.msg, want);
	/* The file is left as it was. */
	expect_peek(fx->path, "PRAGMA user_version", "4");
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

	OK(state_snapshot_seen(fx->st, "ghl", "c1", 1709647700000LL, 3, &fx->err));
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
	assert_true((ids[0] == p1 && ids[1] == p3) || (ids[0] == p3 && ids[1] == p1));
	OK(state_match(fx->st, "phone", "+15550102030", ids, 1, &n, &fx->err));
	assert_int_equal(n, 1);
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

	w1 = state_outbox_add(fx->st, fx->run, p1, "ghl", "c1", "update", &fx->err);
	w2 = state_outbox_add(fx->st, fx->run, p2, "verity", NULL, "create", &fx->err);
	assert_true(w1 == 1 && w2 == 2);
	OK(state_outbox_field_add(fx->st, w1, "first_name", "Ann", "Anne", "two-way",
				  "changed in one system", &fx->err));
	OK(state_outbox_field_add(fx->st, w1, "phone", NULL, "+15550102030", "prefer-valid",
				  "changed in one system", &fx->err));
	OK(state_outbox_field_add(fx->st, w1, "retired_field", "x", "y", "two-way", "unchanged", &fx->err));
	assert_int_equal(state_outbox_field_add(fx->st, w1, "phone", NULL, "+15550109999", "prefer-valid",
						"again", &fx->err), -1);
	assert_int_equal(fx->err.fail, DF_FAIL_STATE);

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
	long long w3 = state_outbox_add(fx->st, fx->run, p1, "aloware", "a1", "update", &fx->err);
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
	long long old = state_outbox_add(fx->st, fx->run, p1, "ghl", "c1", "update", &fx->err);
	long long other_sys = state_outbox_add(fx->st, fx->run, p1, "aloware", "a1", "update", &fx->err);
	long long other_person = state_outbox_add(fx->st, fx->run, p2, "ghl", "c2", "update", &fx->err);
	long long done = state_outbox_add(fx->st, fx->run, p1, "ghl", "c1", "update", &fx->err);
	long long failed = state_outbox_add(fx->st, fx->run, p1, "ghl", "c1", "update", &fx->err);

	assert_true(old == 1 && other_sys == 2 && other_person == 3 && done == 4 && failed == 5);
	OK(state_outbox_done(fx->st, done, fx->run, NULL, &fx->err));
	OK(state_outbox_failed(fx->st, failed, 0, true, "HTTP 400", &fx->err));
	OK(state_outbox_supersede(fx->st, p1, "ghl", &fx->err));
	expect_peek(fx->path, "SELECT group_concat(id || '=' || status, ' ') FROM (SELECT id, status FROM outbox "
		    "ORDER BY id)", "1=superseded 2=pending 3=pending 4=done 5=failed");
	expect_count(fx, "superseded", 1);
	expect_due(fx, 0, 0, 8, (long long[]){ other_sys, other_person }, 2);
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

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_open, teardown)
#define T_FILE(f) cmocka_unit_test_setup_teardown(f, setup_file, teardown)
	const struct CMUnitTest tests[] = {
		T(test_open_creates_schema),
		T_FILE(test_migrate_from_version_1),
		T_FILE(test_newer_version_refused),
		T_FILE(test_open_fails_on_missing_directory),
		T(test_cursor_round_trip),
		T(test_snapshot_round_trip),
		T(test_snapshot_matching_columns),
		T(test_match_needs_link),
		T(test_links),
		T(test_dirty_batch),
		T(test_outbox),
		T(test_outbox_supersede),
		T(test_nested_transactions),
		T(test_agreed_values),
	};

	return cmocka_run_group_tests_name("state", tests, NULL, NULL);
}
