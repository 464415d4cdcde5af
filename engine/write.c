/*
 * write.c - the WRITE stage: send each due outbox row, then record what the
 * system answered.
 *
 * Order per batch of due rows: the rows are already journalled (plan.c);
 * one transaction marks them 'unknown' (the intent to send); then per row
 * the request is sent and, on success, one savepoint marks the row done,
 * links a created record and sets the snapshot to the system's copy, so
 * the echo of our own write on the next poll equals the snapshot and costs
 * nothing (I3). Only
 * the fields we sent join the merge base (the snapshot's merged copy): a
 * user may have edited the record while we wrote it, and any other
 * difference in the answer is journalled as an observation and merged like
 * a polled change, so it reaches the other systems (I2). The outcomes are
 * committed once a second (write_batch), not per row. A crash between
 * send and commit leaves the row 'unknown': the next run either sees the
 * written record on poll (own echo; a newer plan supersedes the row) or
 * retries it, and a retried create looks the record up by its natural key
 * first, or is sent to a system whose create answers with the record
 * holding the key (CAP_CREATE_BY_KEY: Verity's 409), so it finds what it
 * made (I2).
 *
 * An update reads the record first (a user's edit of a field about to be
 * sent would be lost), unless the run knows the record from less than the
 * system's recheck_after seconds ago (known_recently). A system with a
 * changed-since listing is instead listed again when that time has passed
 * (recheck: usually one request, where a long write stage read every
 * record again), and an update whose fields that listing showed changed
 * since the plan is not sent: its person is merged again.
 *
 * A failed write is classified (I11, http.h): a temporary failure stays
 * pending with exponential backoff across runs until writes.max_attempts,
 * then is given up with its reason; a POST sent without an answer is
 * 'unknown' and its next attempt looks first (a create by its keys); a write
 * the system refused (other 4xx) is kept 'refused' with the system's answer
 * until a newer plan, a changed configuration or `dfreconcile retry`; a
 * refusal of our credentials stops the system for the run and leaves its
 * writes untouched, as does a used-up request budget. All stay in the
 * report.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "../core/normalize.h"
#include "../core/str.h"

#define BATCH 100

int run_system_index(const struct run *r, const char *name)
{
	for (int s = 0; s < r->nsys; s++)
		if (strcmp(r->sys[s].conf->name, name) == 0)
			return s;
	return -1;
}

/* The record to create: the journalled fields. */
static void item_record(const struct outbox_item *it, struct record *rec)
{
	for (int i = 0; i < it->nfields; i++)
		if (it->f[i].field >= 0)
			record_set(rec, it->f[i].field, it->f[i].new_value);
}

/* Sends a create: look up first, so a create repeated after a crash finds
 * the record it made (it->unknown says when an earlier attempt may have
 * made it) - unless the system's create does that itself
 * (CAP_CREATE_BY_KEY) and no earlier attempt may have: one request instead
 * of two. After an unknown outcome the lookup most likely finds the
 * record, which costs less than a 409 and a read. *existed says the
 * record was already there. */
static int send_create(struct run *r, int s, const struct outbox_item *it, struct record *out,
		       bool *existed, struct df_err *err)
{
	const struct system_run *sr = &r->sys[s];
	struct record want;
	int rc = 0;

	record_init(&want);
	item_record(it, &want);
	*existed = false;
	if (!connector_has(sr->conn, CAP_CREATE_BY_KEY) || it->unknown) {
		rc = sr->conn->lookup(sr->handle, &want, out, err);
		*existed = rc == 0 && out->remote_id != NULL;
	}
	if (rc == 0 && !*existed) {
		record_clear(out);
		rc = sr->conn->create(sr->handle, &want, out, existed, err);
	}
	record_clear(&want);
	return rc;
}

/* Whether this run knows the record as it was less than recheck_after
 * seconds ago, so an update may go without reading it again. With its
 * changed-since listing read to the end, the run knows every record as of
 * when that listing began (its poll, or the last re-check listing): one a
 * user changed before then was listed and observed. Without a listing, it
 * knows a record it read this run (found or created by its keys, or
 * swept) as of that read: counted from the read itself, not from the
 * run's start, because a first sync reaches its updates minutes after it
 * began. A listing cut short says nothing of what it did not reach, so
 * its records are read. */
static bool known_recently(const struct run *r, int s, const struct outbox_item *it)
{
	const struct system_run *sr = &r->sys[s];
	long long window = sr->conf->recheck_after * 1000LL, seen = 0, read_ms = 0;
	struct df_err e = { 0 };

	if (window <= 0)
		return false;
	if (sr->listed)
		return sr->read_from_ms > 0 && time_now_ms() - sr->read_from_ms < window;
	/* A state error reads the record, the safe way; it shows again at
	 * the run's next statement. */
	if (sr->conf->listing ||
	    state_snapshot_seen_run(r->st, sr->conf->name, it->remote_id, &seen, &read_ms, &e))
		return false;
	return seen == r->id && time_now_ms() - read_ms < window;
}

/* Whether the write stage lists system s again before an update
 * (poll_recheck) instead of reading the record: the system has a listing,
 * its last one was read to the end (else the run reads each record, as
 * after a failed re-check) and began recheck_after seconds ago or more. */
static bool recheck_due(const struct run *r, int s)
{
	const struct system_run *sr = &r->sys[s];

	return sr->conf->listing && sr->conn->fetch != NULL && sr->listed && !sr->recheck_failed &&
	       sr->conf->recheck_after > 0 && sr->read_from_ms > 0 &&
	       time_now_ms() - sr->read_from_ms >= sr->conf->recheck_after * 1000LL;
}

/* Whether a field of update it holds, in the snapshot cur, another value
 * than the one it was planned from: a re-check listing observed a user's
 * edit of it after the plan (the snapshot moves after a plan only by an
 * observation, or by a write of the record, which supersedes its other
 * rows). Sending would overwrite the edit; its person is merged again. */
static bool edited_since_plan(const struct run *r, int s, const struct outbox_item *it,
			      const struct record *cur)
{
	if (!r->sys[s].rechecked)
		return false;
	for (int i = 0; i < it->nfields; i++) {
		int f = it->f[i].field;
		if (f >= 0 && !value_same(field_get(f)->kind, it->f[i].old_value, cur->value[f]))
			return true;
	}
	return false;
}

/* Reads the record before an update where the system can (fetch), unless
 * the run knows it recently (known_recently): a user's edit of a field we
 * are about to send, made since we last read the record, would be
 * overwritten - lost in every system. Returns 1 and the record as read in
 * out when such an edit is there (nothing is sent), 2 when a re-check
 * listing already observed one (edited_since_plan; out untouched), 0 to go
 * on (out cleared), -1 when the read failed. */
static int edited_since_read(struct run *r, int s, const struct outbox_item *it, const struct record *cur,
			     struct record *out, struct df_err *err)
{
	const struct system_run *sr = &r->sys[s];
	bool gone = false;

	if (edited_since_plan(r, s, it, cur))
		return 2;
	if (sr->conn->fetch == NULL || known_recently(r, s, it))
		return 0;
	if (sr->conn->fetch(sr->handle, cur, out, &gone, err))
		return -1;
	if (!gone && out->remote_id == NULL)
		out->remote_id = xstrdup(cur->remote_id);
	if (!gone && observe_normalize(r, s, out) == NULL) {
		observe_fill(out, cur);
		for (int i = 0; i < it->nfields; i++) {
			int f = it->f[i].field;
			if (f >= 0 && !value_same(field_get(f)->kind, out->value[f], cur->value[f]))
				return 1;
		}
	}
	/* Gone or unreadable: the update itself says what the system makes
	 * of it. */
	record_clear(out);
	record_init(out);
	return 0;
}

static int send_update(struct run *r, int s, const struct outbox_item *it, struct record *cur,
		       struct record *out, struct df_err *err)
{
	const struct system_run *sr = &r->sys[s];
	struct field_change ch[DF_MAX_FIELDS];
	int n = 0, moved;

	if ((moved = edited_since_read(r, s, it, cur, out, err)) != 0)
		return moved;
	for (int i = 0; i < it->nfields; i++)
		if (it->f[i].field >= 0)
			ch[n++] = (struct field_change){ it->f[i].field, cur->value[it->f[i].field],
							 it->f[i].new_value };
	if (sr->conn->update(sr->handle, cur, ch, n, out, err))
		return -1;
	/* What the answer does not state takes the value we sent, then the
	 * snapshot's: the next poll's echo then equals the snapshot (I3). */
	if (out->remote_id == NULL)
		out->remote_id = xstrdup(cur->remote_id);
	for (int i = 0; i < n; i++)
		if (out->value[ch[i].field] == NULL)
			record_set(out, ch[i].field, ch[i].new_value);
	observe_fill(out, cur);
	return 0;
}

/* A value a new record holds because nobody set it: no value, no opt-out. */
static bool value_is_default(int f, const char *v)
{
	return str_blank(v) || (field_get(f)->kind == FIELD_FLAG && !str_eq(v, "true"));
}

/* What the system and we agreed on by this write: the record as we knew it
 * (nothing, for a create) with the fields we sent. A new record's defaults
 * in the fields we did not send say nothing, so they join it too. */
static void agreed_copy(const struct outbox_item *it, const struct record *cur, const struct record *got,
			bool created, struct record *base)
{
	for (int f = 0; f < DF_MAX_FIELDS; f++)
		if (cur->value[f] != NULL)
			record_set(base, f, cur->value[f]);
	item_record(it, base);
	for (int f = 0; created && f < fields_count(); f++)
		if (base->value[f] == NULL && got->value[f] != NULL && value_is_default(f, got->value[f]))
			record_set(base, f, got->value[f]);
}

/* The merge base after a write: the record's merged copy (as the base of
 * a create) with the fields we sent. A record never merged stays fresh. */
static int move_merge_base(struct run *r, int s, const struct outbox_item *it, const char *id,
			   const struct record *base, bool created)
{
	const char *name = r->sys[s].conf->name;
	struct record prev;
	bool known = false;
	int rc;

	if (created)
		return state_snapshot_set_merged(r->st, name, id, base, &r->err);
	record_init(&prev);
	rc = state_snapshot_merged(r->st, name, id, &prev, &known, &r->err);
	if (rc == 0 && known) {
		item_record(it, &prev);
		rc = state_snapshot_set_merged(r->st, name, id, &prev, &r->err);
	}
	record_clear(&prev);
	return rc;
}

static int record_success(struct run *r, int s, const struct outbox_item *it, const struct record *cur,
			  struct record *got, bool created, bool existed)
{
	const char *name = r->sys[s].conf->name, *why;
	long long owner = 0;
	struct record base;
	bool observed = false;
	char *held = NULL;
	int rc = -1;

	if ((why = observe_normalize(r, s, got)) != NULL) {
		/* The answer is unreadable; the snapshot takes what we sent. */
		log_warn("event=write-answer system=%s record=%s problem=\"%s\"", name, got->remote_id, why);
		for (int f = 0; f < DF_MAX_FIELDS; f++)
			record_take(got, f, NULL);
		observe_fill(got, cur);
		item_record(it, got);
		observe_normalize(r, s, got);
	}
	record_init(&base);
	agreed_copy(it, cur, got, created, &base);
	if (state_begin(r->st, &r->err))
		goto out;
	if (created && (state_link_get(r->st, name, got->remote_id, &owner, &r->err) ||
			state_hold_get(r->st, name, got->remote_id, &held, &r->err)))
		goto fail;
	if (created && ((owner != 0 && owner != it->person) || held != NULL)) {
		/* The record found by its keys already belongs to someone else,
		 * or is held for an admin (an ambiguous key, an unlink). */
		if (state_outbox_failed(r->st, it->id, 0, true, held != NULL ?
					"record found by its phone/email is held for an admin (see the report)" :
					"record found by its phone/email is linked to another person", &r->err))
			goto fail;
		r->writes_failed++;
		r->sys[s].counts.writes_failed++;
		r->sys[s].failures[DF_FAIL_REMOTE]++;
		rc = state_commit(r->st, &r->err);
		goto out;
	}
	/* A record a create found by its keys joins its person's next merge
	 * whole (fresh). Otherwise only what we sent is agreed, and what else
	 * the answer holds is an observation: a user may have edited the
	 * record while we wrote it. */
	if (state_outbox_done(r->st, it->id, r->id, got->remote_id, &r->err) ||
	    (created && owner == 0 &&
	     state_link_put(r->st, name, got->remote_id, it->person, existed ? "found" : "created",
			    r->id, &r->err)) ||
	    state_snapshot_put(r->st, name, got, r->id, &r->err) ||
	    (!existed && (move_merge_base(r, s, it, got->remote_id, &base, created) ||
			  observe_changes(r, s, it->person, &base, got, &observed))) ||
	    ((created || observed) && state_person_dirty(r->st, it->person, true, &r->err)))
		goto fail;
	r->sys[s].counts.writes_done++;
	r->optouts_sent += r->optouts_only;
	/* Keys stay in the format: a value with a space would be quoted. */
	log_info("event=write system=%s record=%s person=%lld op=%s found=%s observed=%s", name,
		 got->remote_id, it->person, it->op, existed ? "existing" : "new", observed ? "yes" : "no");
	rc = state_commit(r->st, &r->err);
	goto out;
fail:
	state_rollback(r->st);
out:
	record_clear(&base);
	free(held);
	return rc;
}

/* The record was edited since we read it (edited_since_read): nothing
 * was sent. The copy read is observed like a polled change and the person
 * is merged again; that merge's plan supersedes the write, still pending.
 * now NULL: a re-check listing observed the edit already (the snapshot
 * holds it), so only the merge is left to ask for. */
static int record_edited(struct run *r, int s, const struct outbox_item *it, const struct record *cur,
			 const struct record *now)
{
	const char *name = r->sys[s].conf->name;
	bool changed = false;

	log_info("event=write-deferred system=%s record=%s person=%lld reason=%s", name, cur->remote_id,
		 it->person, now ? "edited-since-read" : "edited-since-plan");
	if (state_begin(r->st, &r->err))
		return -1;
	if ((now && (observe_changes(r, s, it->person, cur, now, &changed) ||
		     state_snapshot_put(r->st, name, now, r->id, &r->err))) ||
	    state_person_dirty(r->st, it->person, true, &r->err)) {
		state_rollback(r->st);
		return -1;
	}
	return state_commit(r->st, &r->err);
}

bool engine_quota_holds(struct run *r, int s, bool optout)
{
	struct system_run *sr = &r->sys[s];
	long long limit = -1, left;

	if (sr->conn->daily_left == NULL)
		return false;
	left = sr->conn->daily_left(sr->handle, &limit);
	if (left < 0 || left > (optout ? 0 : sr->conf->quota_reserve))
		return false;
	if (sr->quota_held++ == 0) {
		sr->quota_left = left;
		sr->quota_limit = limit;
		log_warn("event=quota-reserve system=%s daily_left=%lld daily_limit=%lld reserve=%d "
			 "reason=\"writes wait for the next day's quota\"", sr->conf->name, left, limit,
			 sr->conf->quota_reserve);
	}
	r->writes_waiting++;
	return true;
}

void engine_system_refused(struct run *r, int s, const struct df_err *e)
{
	struct system_run *sr = &r->sys[s];

	if (sr->auth_failed)
		return;
	sr->auth_failed = true;
	sr->poll_failed = true;
	snprintf(sr->auth_why, sizeof(sr->auth_why), "%s", e->msg);
	log_error("event=credentials-refused system=%s reason=\"%s\"", sr->conf->name, e->msg);
	engine_note_problem(r, s, "credentials refused", e);
}

void engine_note_problem(struct run *r, int s, const char *what, const struct df_err *e)
{
	struct system_run *sr = &r->sys[s];
	const char *kind = e->fail == DF_FAIL_AUTH ? "credentials" : e->fail == DF_FAIL_BUDGET ? "quota" : "unreadable";
	unsigned bit = e->fail == DF_FAIL_AUTH ? 1u : e->fail == DF_FAIL_BUDGET ? 2u : 4u;
	struct df_err ne = { 0 };
	char *msg;

	if (sr->noted & bit)
		return;
	sr->noted |= bit;
	msg = xasprintf("%s: %s", what, e->msg);
	/* A state failure here shows again at the run's next statement. */
	if (state_notice_add(r->st, r->id, 0, sr->conf->name, NULL, kind, msg, &ne))
		log_error("event=notice-failed system=%s reason=\"%s\"", sr->conf->name, ne.msg);
	free(msg);
}

static int record_failure(struct run *r, int s, const struct outbox_item *it, const struct df_err *e)
{
	const char *name = r->sys[s].conf->name;
	bool final = it->attempts + 1 >= r->cfg->write_max_attempts;
	long long wait = (long long)r->cfg->write_backoff * 1000LL << (it->attempts < 16 ? it->attempts : 16);

	r->sys[s].failures[e->fail]++;
	if (e->fail == DF_FAIL_AUTH || e->fail == DF_FAIL_BUDGET) {
		/* Not this write's fault: it waits untouched, no attempt spent. */
		if (e->fail == DF_FAIL_AUTH)
			engine_system_refused(r, s, e);
		else
			engine_note_problem(r, s, "writing", e);
		r->writes_waiting++;
		log_warn("event=write-waits system=%s person=%lld op=%s reason=\"%s\"", name, it->person,
			 it->op, e->msg);
		return 0;
	}
	r->writes_failed++;
	r->sys[s].counts.writes_failed++;
	if (e->fail == DF_FAIL_REMOTE) {
		log_warn("event=write-refused system=%s person=%lld op=%s attempt=%d reason=\"%s\"", name,
			 it->person, it->op, it->attempts + 1, e->msg);
		return state_outbox_refused(r->st, it->id, e->msg, r->config_fp, &r->err);
	}
	log_warn(e->fail == DF_FAIL_UNKNOWN
		 ? "event=write-failed system=%s person=%lld op=%s attempt=%d final=%s outcome=unknown reason=\"%s\""
		 : "event=write-failed system=%s person=%lld op=%s attempt=%d final=%s reason=\"%s\"",
		 name, it->person, it->op, it->attempts + 1, final ? "yes" : "no", e->msg);
	if (final)
		return state_outbox_failed(r->st, it->id, 0, true, e->msg, &r->err);
	return state_outbox_set(r->st, it->id, e->fail == DF_FAIL_UNKNOWN ? "unknown" : "pending", true,
				time_now_ms() + wait, e->msg, &r->err);
}

/* The lists to keep matter only to a system that removes from every list
 * at once (CAP_LISTS_REMOVE_ALL): it re-adds them. */
static int nkeep_for(const struct system_run *sr, int nkeep)
{
	return connector_has(sr->conn, CAP_LISTS_REMOVE_ALL) ? nkeep : 0;
}

static const char *item_value(const struct outbox_item *it, const char *name, bool old)
{
	for (int i = 0; i < it->nfields; i++)
		if (it->f[i].name && strcmp(it->f[i].name, name) == 0)
			return old ? it->f[i].old_value : it->f[i].new_value;
	return NULL;
}

/* Comma-separated ids as an array (free(*out) releases all). */
static int split_ids(const char *ids, char ***out)
{
	char *copy = xstrdup(ids ? ids : "");
	int n;

	for (char *p = copy; *p; p++)
		if (*p == ',')
			*p = '\n';
	n = set_split(copy, out);
	free(copy);
	return n;
}

/* A call-list change; membership is recorded when the system confirmed. A
 * removal names every list to leave and the lists to stay in. */
static int write_list(struct run *r, int s, const struct outbox_item *it, const struct record *cur)
{
	const struct system_run *sr = &r->sys[s];
	bool add = strcmp(it->op, "list-add") == 0;
	char **lists = NULL, **keep = NULL;
	int nlists = split_ids(item_value(it, "list", !add), &lists);
	int nkeep = split_ids(item_value(it, "keep", false), &keep), rc = 0;
	struct df_err e = { 0 };
	char *note = NULL;

	if (nlists == 0 || sr->conn->list_change == NULL) {
		rc = state_outbox_failed(r->st, it->id, 0, true, "list write without a list system", &r->err);
	} else if (sr->conn->list_change(sr->handle, cur, (const char *const *)lists, add ? 1 : nlists, add,
					 (const char *const *)keep, nkeep_for(sr, nkeep), &note, &e)) {
		rc = record_failure(r, s, it, &e);
	} else if (state_begin(r->st, &r->err) == 0) {
		rc = state_outbox_done(r->st, it->id, r->id, NULL, &r->err);
		for (int i = 0; i < nlists && rc == 0; i++)
			rc = state_list_member_set(r->st, it->person, lists[i], add, r->id, &r->err);
		/* What the system could not do as asked goes to the report; the
		 * membership is recorded as planned so it is not asked again. */
		if (rc == 0 && note != NULL)
			rc = state_notice_add(r->st, r->id, it->person, sr->conf->name, cur->remote_id, it->op,
					      note, &r->err);
		if (rc) {
			state_rollback(r->st);
		} else {
			r->sys[s].counts.writes_done++;
			log_info("event=write system=%s record=%s person=%lld op=%s lists=%s", sr->conf->name,
				 cur->remote_id, it->person, it->op, item_value(it, "list", !add));
			rc = state_commit(r->st, &r->err);
		}
	} else {
		rc = -1;
	}
	free(note);
	free(lists);
	free(keep);
	return rc;
}

/* A delete propagated from another system (propagate_deletes). */
static int write_delete(struct run *r, int s, const struct outbox_item *it, const struct record *cur)
{
	const struct system_run *sr = &r->sys[s];
	struct df_err e = { 0 };

	if (sr->conn->remove == NULL || sr->conn->remove(sr->handle, cur, &e)) {
		if (sr->conn->remove == NULL)
			df_fail(&e, DF_FAIL_REMOTE, "%s cannot delete through its API", sr->conf->name);
		return record_failure(r, s, it, &e);
	}
	if (state_begin(r->st, &r->err))
		return -1;
	if (state_outbox_done(r->st, it->id, r->id, NULL, &r->err) ||
	    state_unlink(r->st, sr->conf->name, cur->remote_id, r->id, &r->err)) {
		state_rollback(r->st);
		return -1;
	}
	r->sys[s].counts.writes_done++;
	log_info("event=write system=%s record=%s person=%lld op=delete", sr->conf->name, cur->remote_id,
		 it->person);
	return state_commit(r->st, &r->err);
}

bool write_is_optout(const struct run *r, int s, const char *op, const int *fields, int n)
{
	if (strcmp(op, "list-remove") == 0)
		return true;
	if (strcmp(op, "create") != 0 && strcmp(op, "update") != 0)
		return false;
	if (connector_has(r->sys[s].conn, CAP_OPTOUTS_ONLY))
		return true;
	for (int i = 0; i < n; i++)
		if (fields[i] < 0 || !field_is_optout(fields[i]))
			return false;
	return n > 0;
}

static bool item_is_optout(const struct run *r, int s, const struct outbox_item *it)
{
	int fields[DF_MAX_FIELDS];

	for (int i = 0; i < it->nfields; i++)
		fields[i] = it->f[i].field;
	/* A list removal carries its lists, not fields. */
	return write_is_optout(r, s, it->op, fields, strncmp(it->op, "list-", 5) == 0 ? 0 : it->nfields);
}

/* unknown: the outcome of an earlier attempt of the row is unknown (it was
 * not among those its batch marked). *recheck: set to the system to list
 * again (poll_recheck) before the row can go; nothing was done. */
static int write_one(struct run *r, long long id, bool unknown, int *recheck)
{
	struct outbox_item it;
	struct record cur, got;
	struct df_err e = { 0 };
	bool found = false, existed = false, create;
	int s, rc = -1, sent;

	record_init(&cur);
	record_init(&got);
	if (state_outbox_load(r->st, id, &it, &r->err))
		goto out;
	it.unknown = unknown;
	create = strcmp(it.op, "create") == 0;
	s = run_system_index(r, it.system);
	if (s < 0) {
		rc = state_outbox_failed(r->st, id, 0, true, "system is no longer configured", &r->err);
		goto out;
	}
	if (r->sys[s].poll_failed) {
		/* Its poll failed or it refused our credentials this run: what we
		 * know of it may be stale, so its writes wait untouched (I11). */
		r->writes_waiting++;
		rc = 0;
		goto out;
	}
	/* While the safety valve holds (I6), only opt-outs go; the rest stays
	 * pending, untouched, for the run that passes the valve. */
	if (r->optouts_only && !item_is_optout(r, s, &it)) {
		rc = 0;
		goto out;
	}
	if (engine_quota_holds(r, s, item_is_optout(r, s, &it))) {
		/* Held untouched, no attempt spent: the next day's run sends it. */
		rc = 0;
		goto out;
	}
	/* Before the snapshot is read: the re-check may move it. write_batch
	 * runs it between its transactions and then this row again. */
	if (strcmp(it.op, "update") == 0 && recheck_due(r, s)) {
		*recheck = s;
		rc = 0;
		goto out;
	}
	if (!create && (state_snapshot_get(r->st, it.system, it.remote_id, &cur, &found, &r->err) || !found)) {
		if (!found)
			rc = state_outbox_failed(r->st, id, 0, true, "record has no snapshot", &r->err);
		goto out;
	}
	if (strncmp(it.op, "list-", 5) == 0)
		rc = write_list(r, s, &it, &cur);
	else if (strcmp(it.op, "delete") == 0)
		rc = write_delete(r, s, &it, &cur);
	else if ((sent = create ? send_create(r, s, &it, &got, &existed, &e) : send_update(r, s, &it, &cur, &got, &e)) == 0)
		rc = record_success(r, s, &it, &cur, &got, create, existed);
	else if (sent == 1 || sent == 2)
		rc = record_edited(r, s, &it, &cur, sent == 1 ? &got : NULL);
	else
		rc = record_failure(r, s, &it, &e);
out:
	record_clear(&cur);
	record_clear(&got);
	outbox_item_clear(&it);
	return rc;
}

int engine_each_due(struct run *r, enum due_kind kind, long long now_ms,
		    int (*fn)(struct run *r, long long id, void *arg), void *arg)
{
	long long ids[BATCH], after = 0;
	int n;

	/* Ids only grow, so each row is taken at most once per call. */
	do {
		if ((kind == DUE_WRITES ? state_outbox_due : state_delivery_due)(r->st, now_ms, after, ids,
										   BATCH, &n, &r->err))
			return -1;
		for (int i = 0; i < n; i++) {
			/* Past the deadline the rest stays due for the next run. */
			if (now_ms != ENGINE_ALL_DUE && run_out_of_time(r))
				return 0;
			after = ids[i];
			if (fn(r, ids[i], arg))
				return -1;
		}
	} while (n == BATCH);
	return 0;
}

/* The outcomes of a batch's writes wait at most this long in one
 * transaction: a crash repeats the looks of at most that many sends. */
#define RECORD_MS 1000

/* Sends the due writes ids[0..n-1] (the intents of those in marked[] are
 * journalled) and records their outcomes in one transaction per RECORD_MS,
 * not one per write: a commit writes every page it touched to the WAL, and
 * consecutive writes touch the same pages. A write's own savepoint still
 * makes its outcome whole. A marked row whose outcome was not recorded
 * (held, deferred, out of time) is pending again at the end. On a state
 * failure the outcomes recorded before it are committed (they happened). */
static int write_batch(struct run *r, const long long *ids, int n, const long long *marked,
		       const int *attempts, int nmarked, struct progress *prog)
{
	long long since = time_now_ms();
	int rc = 0;

	if (state_begin(r->st, &r->err))
		return -1;
	for (int i = 0; i < n && rc == 0 && !run_out_of_time(r); i++) {
		bool fresh = false;     /* marked by this batch: it was pending */

		for (int j = 0; j < nmarked && !fresh; j++)
			fresh = marked[j] == ids[i];
		int recheck = -1;

		progress_step(r, prog, 1);
		rc = write_one(r, ids[i], !fresh, &recheck);
		if (rc == 0 && recheck >= 0) {
			/* The re-check listing commits page by page (I1) outside
			 * the batch's transaction: inside it, a listing of the
			 * tens of thousands of records a long first sync wrote
			 * grew one transaction (26 MB of WAL, 13 MB of memory
			 * at 100,000). Then the row goes as if it came first. */
			if (state_commit(r->st, &r->err)) {
				state_rollback(r->st);
				return -1;
			}
			rc = poll_recheck(r, recheck);
			if (state_begin(r->st, rc ? NULL : &r->err))
				return -1;
			since = time_now_ms();
			if (rc == 0)
				rc = write_one(r, ids[i], !fresh, &recheck);
		}
		if (rc == 0 && time_now_ms() - since >= RECORD_MS) {
			if (state_commit(r->st, &r->err)) {
				state_rollback(r->st);
				return -1;
			}
			if (state_begin(r->st, &r->err))
				return -1;
			since = time_now_ms();
		}
	}
	for (int j = 0; j < nmarked && rc == 0; j++)
		rc = state_outbox_unmark(r->st, marked[j], attempts[j], &r->err);
	if (state_commit(r->st, rc ? NULL : &r->err)) {
		state_rollback(r->st);
		return -1;
	}
	return rc;
}

/* The WRITE stage, a batch of due rows at a time: the batch's intents are
 * journalled in one transaction (state_outbox_mark) before any of it is
 * sent, so after a crash at any point each row is either recorded or
 * 'unknown', and an unknown write looks before it is sent again (I2). Ids
 * only grow, so each row is taken at most once. */
int write_due(struct run *r)
{
	struct progress prog;
	long long pending = 0, ids[BATCH], marked[BATCH], after = 0, now = time_now_ms();
	int attempts[BATCH], n, nmarked;

	if (r->progress && state_outbox_count(r->st, "pending", &pending, &r->err))
		return -1;
	progress_start(r, &prog, "write", "all", pending);
	do {
		if (state_outbox_due(r->st, now, after, ids, BATCH, &n, &r->err))
			return -1;
		if (n == 0 || run_out_of_time(r))
			break;
		if (state_begin(r->st, &r->err))
			return -1;
		if (state_outbox_mark(r->st, now, after, ids[n - 1], marked, attempts, BATCH, &nmarked, &r->err) ||
		    state_commit(r->st, &r->err)) {
			state_rollback(r->st);
			return -1;
		}
		if (write_batch(r, ids, n, marked, attempts, nmarked, &prog))
			return -1;
		after = ids[n - 1];
	} while (n == BATCH);
	return 0;
}

struct plan_out {
	FILE *out;
	long writes;
};

static int print_write(struct run *r, long long id, void *arg)
{
	struct plan_out *po = arg;
	FILE *out = po->out;
	struct outbox_item it;

	if (state_outbox_load(r->st, id, &it, &r->err))
		return -1;
	for (int k = 0; k < it.nfields; k++) {
		int f = it.f[k].field;
		fprintf(out, "plan: %s %s %s person=%lld field=%s: \"%s\" -> \"%s\" (rule %s)\n",
			it.system, it.op, it.remote_id ? it.remote_id : "(new)", it.person,
			it.f[k].name, it.f[k].old_value ? it.f[k].old_value : "",
			it.f[k].new_value ? it.f[k].new_value : "",
			f >= 0 ? r->cfg->rule[f].text : "call_lists");
	}
	if (it.nfields == 0)
		fprintf(out, "plan: %s %s %s person=%lld\n", it.system, it.op,
			it.remote_id ? it.remote_id : "(new)", it.person);
	outbox_item_clear(&it);
	po->writes++;
	return 0;
}

int write_print_plan(struct run *r, FILE *out)
{
	struct plan_out po = { out, 0 };

	fprintf(out, "dry run: nothing is sent and the state is left as it was\n");
	if (engine_each_due(r, DUE_WRITES, ENGINE_ALL_DUE, print_write, &po))
		return -1;
	fprintf(out, "plan: %ld write%s\n", po.writes, po.writes == 1 ? "" : "s");
	return engine_each_due(r, DUE_DELIVERIES, ENGINE_ALL_DUE, deliver_print, out);
}
