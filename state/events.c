/*
 * events.c - calls, texts and opt-outs: the event table and its
 * deliveries to each target, the opt-out registry and its log, and call
 * list membership.
 */
#include "internal.h"

int state_delivery_count(struct state *st, const char *status, long long *n, struct df_err *err)
{
	return query_int(st, S_DELIVERY_COUNT, status, NULL, n, NULL, err);
}

int state_optout_get(struct state *st, const char *phone, const char *channel,
		     bool *opted_out, char **source, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_OPTOUT_GET, err);
	int rc;

	*opted_out = false;
	*source = NULL;
	if (s == NULL)
		return -1;
	bind_text(s, 1, phone);
	bind_text(s, 2, channel);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*opted_out = strcmp((const char *)sqlite3_column_text(s, 0), "opted-out") == 0;
		*source = column_dup(s, 1);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(st, err, "read opt-out registry");
	return 0;
}

int state_optout_set(struct state *st, const char *phone, const char *channel, bool opted_out,
		     const char *source, const char *reason, long long run, struct df_err *err)
{
	return write_stmt(st, S_OPTOUT_SET, err, "write opt-out registry", "ttttti", phone,
			  channel, opted_out ? "opted-out" : "opted-in", source, reason, run);
}

int state_optout_log(struct state *st, long long run, const char *phone, const char *channel,
		     long long person, const char *action, const char *system, const char *reason,
		     struct df_err *err)
{
	return write_stmt(st, S_OPTOUT_LOG, err, "log opt-out", "ittittt", run, phone, channel,
			  person, action, system, reason);
}

int state_list_members(struct state *st, long long person, char ***lists, int *n,
		       struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_LIST_MEMBERS, err);
	int rc;

	*lists = NULL;
	*n = 0;
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, person);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*lists = xrealloc(*lists, (size_t)(*n + 1) * sizeof(**lists));
		(*lists)[(*n)++] = column_dup(s, 0);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return db_fail(st, err, "read list membership");
	return 0;
}

int state_list_member_set(struct state *st, long long person, const char *list, bool member,
			  long long run, struct df_err *err)
{
	return write_stmt(st, S_LIST_SET, err, "write list membership", "itti", person, list,
			  member ? "member" : "removed", run);
}

int state_event_add(struct state *st, const char *kind, const char *source,
		    const char *source_id, const char *source_contact, const char *phone,
		    const char *payload, long long occurred_ms, long long run, long long *id,
		    struct df_err *err)
{
	*id = 0;
	if (write_stmt(st, S_EVENT_ADD, err, "store event", "ttttttii", kind, source, source_id,
		       source_contact, phone, payload, occurred_ms, run))
		return -1;
	/* Known already: the insert did nothing. */
	if (sqlite3_changes(st->db) > 0)
		*id = sqlite3_last_insert_rowid(st->db);
	return 0;
}

int state_delivery_add(struct state *st, long long event, const char *target, long long run,
		       struct df_err *err)
{
	return write_stmt(st, S_DELIVERY_ADD, err, "journal delivery", "iti", event, target, run);
}

int state_delivery_due(struct state *st, long long now_ms, long long after, long long *ids,
		       int max, int *n, struct df_err *err)
{
	return due_ids(st, S_DELIVERY_DUE, now_ms, after, ids, max, n, err);
}

void delivery_item_clear(struct delivery_item *it)
{
	free(it->target);
	free(it->status);
	free(it->ev.kind);
	free(it->ev.source);
	free(it->ev.source_id);
	free(it->ev.source_contact);
	free(it->ev.phone);
	free(it->ev.payload);
	memset(it, 0, sizeof(*it));
}

int state_delivery_load(struct state *st, long long id, struct delivery_item *it,
			struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_DELIVERY_GET, err);

	memset(it, 0, sizeof(*it));
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	if (sqlite3_step(s) != SQLITE_ROW) {
		sqlite3_reset(s);
		return db_fail(st, err, "read delivery");
	}
	it->id = id;
	it->target = column_dup(s, 0);
	it->status = column_dup(s, 1);
	it->attempts = sqlite3_column_int(s, 2);
	it->ev.id = sqlite3_column_int64(s, 3);
	it->ev.person = sqlite3_column_int64(s, 4);
	it->ev.kind = column_dup(s, 5);
	it->ev.source = column_dup(s, 6);
	it->ev.source_id = column_dup(s, 7);
	it->ev.source_contact = column_dup(s, 8);
	it->ev.phone = column_dup(s, 9);
	it->ev.payload = column_dup(s, 10);
	it->ev.occurred_ms = sqlite3_column_int64(s, 11);
	sqlite3_reset(s);
	return 0;
}

int state_event_person(struct state *st, long long event, long long person, struct df_err *err)
{
	return write_stmt(st, S_EVENT_PERSON, err, "link event", "ii", event, person);
}

int state_delivery_set(struct state *st, long long id, const char *status, bool attempt,
		       long long next_ms, const char *remote_id, const char *error, long long run,
		       struct df_err *err)
{
	return write_stmt(st, S_DELIVERY_SET, err, "record delivery", "itbitti", id, status,
			  attempt, next_ms, remote_id, error, run);
}
