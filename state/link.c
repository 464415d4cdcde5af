/*
 * link.c - who is who: persons, the links from each system's record to a
 * person, matching by phone and email, pins, held records, and the
 * journal of admin actions (link, unlink, pin) that change them.
 */
#include "internal.h"

int state_link_get(struct state *st, const char *system, const char *remote_id,
		   long long *person, struct df_err *err)
{
	return query_int(st, S_LINK_GET, system, remote_id, person, NULL, err);
}

int state_link_of(struct state *st, long long person, const char *system, char **remote_id,
		  struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_LINK_OF, err);
	int rc;

	*remote_id = NULL;
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, person);
	bind_text(s, 2, system);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*remote_id = column_dup(s, 0);
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(st, err, "read link");
	return 0;
}

int state_links_of(struct state *st, long long person, const char *const *systems, int n, char **ids,
		   struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_LINKS_OF, err);
	int rc;

	for (int i = 0; i < n; i++)
		ids[i] = NULL;
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, person);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *system = (const char *)sqlite3_column_text(s, 0);
		for (int i = 0; i < n; i++)
			if (ids[i] == NULL && strcmp(systems[i], system) == 0)
				ids[i] = column_dup(s, 1);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		for (int i = 0; i < n; i++) {
			free(ids[i]);
			ids[i] = NULL;
		}
		return db_fail(st, err, "read links");
	}
	return 0;
}

int state_link_put(struct state *st, const char *system, const char *remote_id,
		   long long person, const char *how, long long run, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_LINK_UNBURY, err);

	if (s == NULL)
		return -1;
	bind_text(s, 1, system);
	sqlite3_bind_int64(s, 2, person);
	bind_text(s, 3, remote_id);
	if (step_done(st, s, err, "clear tombstone") || (s = stmt(st, S_LINK_PUT, err)) == NULL)
		return -1;
	bind_text(s, 1, system);
	bind_text(s, 2, remote_id);
	sqlite3_bind_int64(s, 3, person);
	bind_text(s, 4, how);
	sqlite3_bind_int64(s, 5, run);
	return step_done(st, s, err, "write link");
}

long long state_person_new(struct state *st, long long run, struct df_err *err)
{
	if (write_stmt(st, S_PERSON_NEW, err, "new person", "i", run))
		return -1;
	return sqlite3_last_insert_rowid(st->db);
}

int state_person_dirty(struct state *st, long long person, bool dirty, struct df_err *err)
{
	return write_stmt(st, S_PERSON_DIRTY, err, "mark person", "ib", person, dirty);
}

int state_person_merged(struct state *st, long long person, long long run, struct df_err *err)
{
	return write_stmt(st, S_PERSON_MERGED, err, "mark person merged", "ii", person, run);
}

int state_dirty_batch(struct state *st, long long *ids, int max, int *n, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_DIRTY_BATCH, err);

	return s ? collect_ids(st, s, 1, ids, max, n, err) : -1;
}

int state_dirty_after(struct state *st, long long after, long long *ids, int max, int *n,
		      struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_DIRTY_AFTER, err);

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 2, after);
	return collect_ids(st, s, 1, ids, max, n, err);
}

int state_match(struct state *st, const char *field, const char *value,
		long long *ids, int max, int *n, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, strcmp(field, "phone") == 0 ? S_MATCH_PHONE : S_MATCH_EMAIL, err);
	int rc;

	if (s == NULL)
		return -1;
	bind_text(s, 1, value);
	/* The smallest max distinct ids, ascending: what "UNION ... LIMIT"
	 * gave, so a message naming candidates names the same ones. */
	*n = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		long long id = sqlite3_column_int64(s, 0);
		int at = *n;

		while (at > 0 && ids[at - 1] > id)
			at--;
		if ((at > 0 && ids[at - 1] == id) || at == max)
			continue;
		if (*n < max)
			(*n)++;
		memmove(ids + at + 1, ids + at, (size_t)(*n - 1 - at) * sizeof(*ids));
		ids[at] = id;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return db_fail(st, err, "list");
	return 0;
}

int state_pins_get(struct state *st, long long person, struct record *pins, struct df_err *err)
{
	return person_fields(st, S_PINS_GET, person, pins, "read pins", err);
}

int state_pin_put(struct state *st, long long person, const char *field, const char *value,
		  const char *who, struct df_err *err)
{
	return write_stmt(st, S_PIN_PUT, err, "pin", "ittt", person, field, value, who);
}

int state_pin_drop(struct state *st, long long person, const char *field, bool *dropped,
		   struct df_err *err)
{
	if (write_stmt(st, S_PIN_DROP, err, "unpin", "it", person, field))
		return -1;
	*dropped = sqlite3_changes(st->db) > 0;
	return 0;
}

int state_link_deleted(struct state *st, long long person, const char *system, bool *deleted,
		       struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_LINK_DELETED, err);
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, person);
	bind_text(s, 2, system);
	rc = sqlite3_step(s);
	*deleted = rc == SQLITE_ROW && sqlite3_column_int64(s, 0) > 0;
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 0 : db_fail(st, err, "read tombstone");
}

/* Held records and admin actions */

int state_hold_put(struct state *st, const char *system, const char *remote_id, const char *kind,
		   const char *reason, long long run, struct df_err *err)
{
	return write_stmt(st, S_HOLD_PUT, err, "hold record", "tttti", system, remote_id, kind, reason, run);
}

/* One text column of the first row of id bound with up to three texts. */
static int query_text(struct state *st, enum stmt_id id, const char *a, const char *b, const char *c,
		      char **out, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, id, err);
	int rc;

	*out = NULL;
	if (s == NULL)
		return -1;
	bind_text(s, 1, a);
	bind_text(s, 2, b);
	if (c)
		bind_text(s, 3, c);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = column_dup(s, 0);
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(st, err, "query");
	return 0;
}

int state_hold_get(struct state *st, const char *system, const char *remote_id, char **kind,
		   struct df_err *err)
{
	return query_text(st, S_HOLD_GET, system, remote_id, NULL, kind, err);
}

int state_hold_drop(struct state *st, const char *system, const char *remote_id, struct df_err *err)
{
	return write_stmt(st, S_HOLD_DROP, err, "release held record", "tt", system, remote_id);
}

int state_held_other(struct state *st, const char *field, const char *value, const char *system,
		     const char *remote_id, char **first, struct df_err *err)
{
	return query_text(st, strcmp(field, "phone") == 0 ? S_HELD_PHONE : S_HELD_EMAIL, value, system,
			  remote_id ? remote_id : "", first, err);
}

int state_link_drop(struct state *st, const char *system, const char *remote_id, struct df_err *err)
{
	return write_stmt(st, S_LINK_DROP, err, "drop link", "tt", system, remote_id);
}

int state_snapshot_unmerge(struct state *st, const char *system, const char *remote_id,
			   struct df_err *err)
{
	return write_stmt(st, S_SNAP_UNMERGE, err, "forget merged copy", "tt", system, remote_id);
}

int state_person_exists(struct state *st, long long person, bool *exists, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_PERSON_EXISTS, err);
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, person);
	rc = sqlite3_step(s);
	*exists = rc == SQLITE_ROW && sqlite3_column_int64(s, 0) > 0;
	sqlite3_reset(s);
	if (rc != SQLITE_ROW)
		return db_fail(st, err, "read person");
	return 0;
}

int state_admin_log(struct state *st, const char *action, const char *who, const char *system,
		    const char *remote_id, long long person_before, long long person_after,
		    const char *before, const char *after, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_ADMIN_LOG, err);

	if (s == NULL)
		return -1;
	bind_text(s, 1, action);
	bind_text(s, 2, who);
	bind_text(s, 3, system);
	bind_text(s, 4, remote_id);
	if (person_before > 0)
		sqlite3_bind_int64(s, 5, person_before);
	if (person_after > 0)
		sqlite3_bind_int64(s, 6, person_after);
	bind_text(s, 7, before);
	bind_text(s, 8, after);
	return step_done(st, s, err, "journal admin action");
}
