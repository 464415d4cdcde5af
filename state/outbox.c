/*
 * outbox.c - the writes planned to each system (outbox and its fields):
 * planning, superseding, loading the due ones, recording each outcome,
 * refused and given-up writes and deliveries reopened or retried.
 */
#include "internal.h"

/* Outbox */

int state_outbox_supersede(struct state *st, long long person, const char *system,
			   struct df_err *err)
{
	return write_stmt(st, S_OUTBOX_SUPERSEDE, err, "supersede writes", "it", person, system);
}

/* A write's fields as one JSON array of [field, old, new, rule, reason],
 * rule and reason by their id in wording, trailing nulls left out (most
 * fields have no reason): one row per write instead of one per field
 * (issue 9). NULL when none (a delete). */
static int fields_json(struct state *st, const struct write_field *f, int n, char **json,
		       struct df_err *err)
{
	struct strbuf sb;

	*json = NULL;
	if (n == 0)
		return 0;
	sb_init(&sb);
	sb_addn(&sb, "[", 1);
	for (int i = 0; i < n; i++) {
		const char *v[3] = { f[i].name, f[i].old_value, f[i].new_value };
		const char *words[2] = { f[i].rule, f[i].reason };
		long long ids[2] = { 0, 0 };
		int last = words[1] ? 4 : words[0] ? 3 : v[2] ? 2 : v[1] ? 1 : 0;
		for (int k = 0; k < 2; k++)
			if (words[k] && wording_id(st, words[k], &ids[k], err)) {
				sb_free(&sb);
				return -1;
			}
		sb_add(&sb, i ? ",[" : "[");
		for (int k = 0; k <= last; k++) {
			if (k)
				sb_addn(&sb, ",", 1);
			if (k >= 3 && words[k - 3])
				sb_addf(&sb, "%lld", ids[k - 3]);
			else if (k < 3 && v[k])
				json_quote(&sb, v[k]);
			else
				sb_add(&sb, "null");
		}
		sb_addn(&sb, "]", 1);
	}
	sb_addn(&sb, "]", 1);
	*json = sb_detach(&sb);
	return 0;
}

long long state_outbox_add(struct state *st, long long run, long long person,
			   const char *system, const char *remote_id, const char *op,
			   const struct write_field *fields, int n, struct df_err *err)
{
	char *json;
	int rc;

	if (fields_json(st, fields, n, &json, err))
		return -1;
	rc = write_stmt(st, S_OUTBOX_ADD, err, "journal write", "iittt" "t", run, person, system,
			remote_id, op, json);
	free(json);
	return rc ? -1 : sqlite3_last_insert_rowid(st->db);
}

int state_outbox_due(struct state *st, long long now_ms, long long after, long long *ids,
		     int max, int *n, struct df_err *err)
{
	return due_ids(st, S_OUTBOX_DUE, now_ms, after, ids, max, n, err);
}

int state_outbox_mark(struct state *st, long long now_ms, long long after, long long last,
		      long long *ids, int *attempts, int max, int *n, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_OUTBOX_MARK, err);
	int rc;

	*n = 0;
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, now_ms);
	sqlite3_bind_int64(s, 2, after);
	sqlite3_bind_int64(s, 3, last);
	/* Stepped to the end: the update is whole only then. */
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (*n < max) {
			ids[*n] = sqlite3_column_int64(s, 0);
			attempts[(*n)++] = sqlite3_column_int(s, 1);
		}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return db_fail(st, err, "journal the intent to send writes");
	return 0;
}

int state_outbox_unmark(struct state *st, long long id, int attempts, struct df_err *err)
{
	return write_stmt(st, S_OUTBOX_UNMARK, err, "unmark an unsent write", "ib", id, attempts);
}

void outbox_item_clear(struct outbox_item *it)
{
	free(it->system);
	free(it->remote_id);
	free(it->op);
	for (int i = 0; i < it->nfields; i++) {
		free(it->f[i].name);
		free(it->f[i].old_value);
		free(it->f[i].new_value);
	}
	memset(it, 0, sizeof(*it));
}

static void take_field(struct outbox_item *it, char *name, char *old_value, char *new_value)
{
	int i = it->nfields++;

	it->f[i].field = field_find(name);
	it->f[i].name = name;
	it->f[i].old_value = old_value;
	it->f[i].new_value = new_value;
}

/* The packed fields [[field, old, new, rule, reason], ...] read in C;
 * false (nothing taken) for a text flat_array does not read. */
static bool fields_read(struct outbox_item *it, const char *json)
{
	size_t cap = strlen(json) + 1;
	char *buf = xmalloc(cap), *v[5];
	const char *p = json_skip_space(json);
	int n;
	bool ok = false;

	if (*p++ == '[') {
		p = json_skip_space(p);
		ok = *p == ']';
		while (!ok && it->nfields < DF_MAX_FIELDS && flat_array(&p, v, 5, &n, buf, cap)) {
			if (n < 1 || v[0] == NULL) {
				for (int i = 0; i < n; i++)
					free(v[i]);
				break;
			}
			take_field(it, v[0], n > 1 ? v[1] : NULL, n > 2 ? v[2] : NULL);
			for (int i = 3; i < n; i++)
				free(v[i]);
			p = json_skip_space(p);
			if (*p == ']')
				ok = true;
			else if (*p++ != ',')
				break;
		}
	}
	free(buf);
	if (!ok) {
		for (int i = 0; i < it->nfields; i++) {
			free(it->f[i].name);
			free(it->f[i].old_value);
			free(it->f[i].new_value);
		}
		it->nfields = 0;
	}
	return ok;
}

int state_outbox_load(struct state *st, long long id, struct outbox_item *it, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_OUTBOX_GET, err);
	bool packed;
	int rc;

	memset(it, 0, sizeof(*it));
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	if (sqlite3_step(s) != SQLITE_ROW) {
		sqlite3_reset(s);
		return db_fail(st, err, "read journalled write");
	}
	it->id = id;
	it->person = sqlite3_column_int64(s, 0);
	it->system = column_dup(s, 1);
	it->remote_id = column_dup(s, 2);
	it->op = column_dup(s, 3);
	it->attempts = sqlite3_column_int(s, 4);
	packed = sqlite3_column_type(s, 5) == SQLITE_NULL ||
		 fields_read(it, (const char *)sqlite3_column_text(s, 5));
	sqlite3_reset(s);
	if (packed)
		return 0;
	/* Not as the state writes it (edited by hand): SQLite reads it. */
	if ((s = stmt(st, S_OUTBOX_FIELDS, err)) == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && it->nfields < DF_MAX_FIELDS)
		take_field(it, column_dup(s, 0), column_dup(s, 1), column_dup(s, 2));
	sqlite3_reset(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return db_fail(st, err, "read journalled fields");
	return 0;
}

int state_outbox_done(struct state *st, long long id, long long run, const char *remote_id,
		      struct df_err *err)
{
	return write_stmt(st, S_OUTBOX_DONE, err, "mark write done", "iit", id, run, remote_id);
}

int state_outbox_failed(struct state *st, long long id, long long next_ms, bool final,
			const char *error, struct df_err *err)
{
	return write_stmt(st, S_OUTBOX_FAILED, err, "mark write failed", "iibt", id, next_ms,
			  final, error);
}

int state_outbox_set(struct state *st, long long id, const char *status, bool attempt,
		     long long next_ms, const char *error, struct df_err *err)
{
	return write_stmt(st, S_OUTBOX_SET, err, "record write attempt", "itbit", id, status, attempt,
			  next_ms, error);
}

int state_outbox_refused(struct state *st, long long id, const char *error, const char *config,
			 struct df_err *err)
{
	return write_stmt(st, S_OUTBOX_REFUSED, err, "record refused write", "itt", id, error, config);
}

int state_delivery_refused(struct state *st, long long id, const char *error, const char *config,
			   struct df_err *err)
{
	return write_stmt(st, S_DELIVERY_REFUSED, err, "record refused delivery", "itt", id, error, config);
}

int state_refused_reopen(struct state *st, const char *config, long long *n, struct df_err *err)
{
	*n = 0;
	if (write_stmt(st, S_REFUSED_REOPEN, err, "reopen refused writes", "t", config))
		return -1;
	*n = sqlite3_changes(st->db);
	if (write_stmt(st, S_DELIVERY_REOPEN, err, "reopen refused deliveries", "t", config))
		return -1;
	*n += sqlite3_changes(st->db);
	return 0;
}

int state_retry(struct state *st, const char *system, const char *remote_id, long long *writes,
		long long *deliveries, struct df_err *err)
{
	if (write_stmt(st, S_RETRY_WRITES, err, "retry writes", "tt", system, remote_id))
		return -1;
	*writes = sqlite3_changes(st->db);
	if (write_stmt(st, S_RETRY_DELIVERIES, err, "retry deliveries", "tt", system, remote_id))
		return -1;
	*deliveries = sqlite3_changes(st->db);
	return 0;
}

int state_outbox_count(struct state *st, const char *status, long long *n, struct df_err *err)
{
	return query_int(st, S_OUTBOX_COUNT, status, NULL, n, NULL, err);
}

int state_outbox_unrecorded(struct state *st, const char *system, const char *remote_id,
			    long long *id, bool *found, struct df_err *err)
{
	return query_int(st, S_OUTBOX_UNRECORDED, system, remote_id, id, found, err);
}
