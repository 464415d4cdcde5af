/*
 * journal.c - what each run saw and decided: runs and their per-system
 * counts, agreed values (agreed, with their wording), observed changes, conflicts,
 * quarantine, notices, and what undo reads back of a run's writes.
 */
#include "internal.h"

/* Runs */

long long state_run_start(struct state *st, const char *mode, struct df_err *err)
{
	if (write_stmt(st, S_RUN_START, err, "start run", "t", mode))
		return -1;
	return sqlite3_last_insert_rowid(st->db);
}

int state_run_finish(struct state *st, long long run, const char *status, int exit_code,
		     const char *message, struct df_err *err)
{
	return write_stmt(st, S_RUN_FINISH, err, "finish run", "itbt", run, status, exit_code,
			  message);
}

int state_run_system_add(struct state *st, long long run, const char *system,
			 const struct run_counts *c, struct df_err *err)
{
	return write_stmt(st, S_RUN_SYSTEM, err, "record run counts", "itiiiiiiiii", run, system,
			  c->polled, c->changed, c->quarantined, c->writes_done, c->writes_failed,
			  c->requests, c->swept, c->unlinked, c->sweep_cycle);
}

long long state_last_run(struct state *st)
{
	long long id = 0;

	query_int(st, S_LAST_RUN, NULL, NULL, &id, NULL, NULL);
	return id;
}

/* The packed row {"field":[value, ...], ...} read in C into a record
 * (values only); false, with rec untouched, for a text flat_array does
 * not read. */
static bool agreed_read(struct record *rec, const char *json)
{
	size_t cap = strlen(json) + 1;
	char *buf = xmalloc(cap), *key = xmalloc(cap), *v[6];
	const char *p = json_skip_space(json);
	struct record got;
	int n;
	bool ok = false;

	record_init(&got);
	if (*p++ == '{') {
		p = json_skip_space(p);
		ok = *p == '}';
		while (!ok && *p++ == '"' && json_read_string(&p, key, cap)) {
			int f;
			p = json_skip_space(p);
			if (*p++ != ':' || !flat_array(&p, v, 6, &n, buf, cap))
				break;
			if (n > 0 && v[0] != NULL && (f = field_find(key)) >= 0)
				record_take(&got, f, v[0]);
			else if (n > 0)
				free(v[0]);
			for (int i = 1; i < n; i++)
				free(v[i]);
			p = json_skip_space(p);
			if (*p == '}')
				ok = true;
			else if (*p++ != ',')
				break;
			p = json_skip_space(p);
		}
	}
	if (ok)
		for (int f = 0; f < fields_count(); f++)
			if (got.value[f] != NULL) {
				record_take(rec, f, got.value[f]);
				got.value[f] = NULL;
			}
	record_clear(&got);
	free(buf);
	free(key);
	return ok;
}

int state_agreed_get(struct state *st, long long person, struct record *agreed, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_AGREED_GET, err);
	int rc;
	bool read;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, person);
	rc = sqlite3_step(s);
	read = rc == SQLITE_DONE || (rc == SQLITE_ROW &&
				     agreed_read(agreed, (const char *)sqlite3_column_text(s, 0)));
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(st, err, "read agreed values");
	/* Not as the state writes it (edited by hand): SQLite reads it. */
	return read ? 0 : person_fields(st, S_AGREED_FIELDS, person, agreed, "read agreed values", err);
}

/* Rule and reason texts by id (wording): a dozen texts named by every
 * agreed value. Known ids are kept by the handle. */
void wording_forget(struct state *st)
{
	for (int i = 0; i < st->nwording; i++)
		free(st->wording[i].text);
	st->nwording = 0;
}

int wording_id(struct state *st, const char *text, long long *id, struct df_err *err)
{
	bool found;

	/* An agreed value's rule and reason are never NULL (the column was
	 * NOT NULL): a caller that gives none is a bug, refused. */
	if (text == NULL)
		return df_fail(err, DF_FAIL_STATE, "state: a rule or reason without text");
	int n = (int)(sizeof(st->wording) / sizeof(st->wording[0]));

	for (int i = 0; i < st->nwording; i++)
		if (strcmp(st->wording[i].text, text) == 0) {
			*id = st->wording[i].id;
			return 0;
		}
	if (query_int(st, S_WORDING_GET, text, NULL, id, &found, err))
		return -1;
	if (!found) {
		if (write_stmt(st, S_WORDING_ADD, err, "add wording", "t", text))
			return -1;
		*id = sqlite3_last_insert_rowid(st->db);
	}
	/* Past the cache's size (texts an admin's undo makes, one per run
	 * undone), looked up each time. */
	if (st->nwording < n) {
		st->wording[st->nwording].text = xstrdup(text);
		st->wording[st->nwording++].id = *id;
	}
	return 0;
}

void state_patch_init(struct agreed_patch *p)
{
	memset(p, 0, sizeof(*p));
	sb_init(&p->json);
}

/* Freeing leaves nothing allocated (a patch freed twice is harmless);
 * emptying keeps the buffer for the next person. A free that allocated a
 * fresh buffer again leaked one per person merged: 13 MB of peak memory
 * at 100,000 contacts. */
void state_patch_free(struct agreed_patch *p)
{
	sb_free(&p->json);
	free(p->phone);
	free(p->email);
	memset(p, 0, sizeof(*p));
}

static void patch_empty(struct agreed_patch *p)
{
	if (p->json.buf != NULL)
		p->json.buf[0] = '\0';
	p->json.len = 0;
	p->n = 0;
	free(p->phone);
	free(p->email);
	p->phone = p->email = NULL;
}

/* A field name as a JSON key escaped as SQLite escapes it ('/' as it
 * is, unlike json_quote): json_patch and the paths undo builds match a
 * key by its text as written, and the rows a migration wrote are
 * SQLite's. */
static void key_quote(struct strbuf *sb, const char *name)
{
	static const char hex[] = "0123456789abcdef";

	sb_addn(sb, "\"", 1);
	for (const unsigned char *c = (const unsigned char *)name; *c; c++) {
		const char *esc = *c == '"' ? "\\\"" : *c == '\\' ? "\\\\" : *c == '\b' ? "\\b"
				  : *c == '\t' ? "\\t" : *c == '\n' ? "\\n" : *c == '\f' ? "\\f"
				  : *c == '\r' ? "\\r" : NULL;
		if (esc != NULL) {
			sb_add(sb, esc);
		} else if (*c < 0x20) {
			char u[7] = { '\\', 'u', '0', '0', hex[*c >> 4], hex[*c & 15], '\0' };
			sb_add(sb, u);
		} else {
			sb_addn(sb, (const char *)c, 1);
		}
	}
	sb_addn(sb, "\"", 1);
}

/* "field":[value,system,rule id,reason id,run,beaten], trailing nulls
 * left out (beaten is its JSON text, as a string). */
int state_patch_add(struct state *st, struct agreed_patch *p, const char *field, const char *value,
		    const struct provenance *prov, long long run, struct df_err *err)
{
	long long rule, reason;

	if (wording_id(st, prov->rule, &rule, err) || wording_id(st, prov->reason, &reason, err))
		return -1;
	sb_add(&p->json, p->n++ ? "," : "{");
	key_quote(&p->json, field);
	sb_addn(&p->json, ":[", 2);
	json_quote(&p->json, value);
	sb_addn(&p->json, ",", 1);
	if (prov->system)
		json_quote(&p->json, prov->system);
	else
		sb_add(&p->json, "null");
	sb_addf(&p->json, ",%lld,%lld,%lld", rule, reason, run);
	if (prov->beaten) {
		sb_addn(&p->json, ",", 1);
		json_quote(&p->json, prov->beaten);
	}
	sb_addn(&p->json, "]", 1);
	if (strcmp(field, "phone") == 0) {
		free(p->phone);
		p->phone = xstrdup(value);
	} else if (strcmp(field, "email") == 0) {
		free(p->email);
		p->email = xstrdup(value);
	}
	return 0;
}

int state_agreed_write(struct state *st, long long person, struct agreed_patch *p,
		       struct df_err *err)
{
	int rc = 0;

	if (p->n > 0) {
		sb_addn(&p->json, "}", 1);
		rc = write_stmt(st, S_AGREED_PUT, err, "write agreed values", "ittt", person, p->json.buf,
				p->phone, p->email);
	}
	patch_empty(p);
	return rc;
}

int state_agreed_put(struct state *st, long long person, const char *field, const char *value,
		     const struct provenance *p, long long run, struct df_err *err)
{
	struct agreed_patch patch;
	int rc;

	state_patch_init(&patch);
	rc = state_patch_add(st, &patch, field, value, p, run, err) ||
	     state_agreed_write(st, person, &patch, err) ? -1 : 0;
	state_patch_free(&patch);
	return rc;
}

int state_observed_add(struct state *st, long long run, const char *system,
		       const char *remote_id, long long person, const char *field,
		       const char *old_value, const char *new_value, struct df_err *err)
{
	return write_stmt(st, S_OBSERVED_ADD, err, "record observation", "ittittt", run, system,
			  remote_id, person, field, old_value, new_value);
}

int state_conflict_add(struct state *st, long long run, long long person, const char *field,
		       const char *base, const char *candidates, const char *winner,
		       const char *value, const char *rule, const char *reason,
		       struct df_err *err)
{
	return write_stmt(st, S_CONFLICT_ADD, err, "record conflict", "iittttttt", run, person,
			  field, base, candidates, winner, value, rule, reason);
}

int state_quarantine_add(struct state *st, long long run, const char *system,
			 const char *remote_id, const char *kind, const char *reason,
			 struct df_err *err)
{
	return write_stmt(st, S_QUARANTINE_ADD, err, "quarantine", "itttt", run, system, remote_id,
			  kind, reason);
}

int state_quarantine_known(struct state *st, long long run, const char *system,
			   const char *remote_id, const char *kind, const char *reason, bool *known,
			   struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_QUARANTINE_KNOWN, err);
	int rc;

	if (s == NULL)
		return -1;
	bind_text(s, 1, system);
	bind_text(s, 2, remote_id);
	sqlite3_bind_int64(s, 3, run);
	bind_text(s, 4, kind);
	bind_text(s, 5, reason);
	rc = sqlite3_step(s);
	*known = rc == SQLITE_ROW && sqlite3_column_int64(s, 0) > 0;
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 0 : db_fail(st, err, "read quarantine");
}

int state_undo_items(struct state *st, long long run, struct undo_item **items, int *n,
		     struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_UNDO_ITEMS, err);
	int rc, cap = 0;

	*items = NULL;
	*n = 0;
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, run);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct undo_item *it;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			*items = xrealloc(*items, (size_t)cap * sizeof(**items));
		}
		it = &(*items)[(*n)++];
		it->person = sqlite3_column_int64(s, 0);
		it->field = column_dup(s, 1);
		it->old_value = column_dup(s, 2);
		it->new_value = column_dup(s, 3);
		it->current = column_dup(s, 4);
		it->current_run = sqlite3_column_int64(s, 5);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		state_undo_items_free(*items, *n);
		*items = NULL;
		*n = 0;
		return db_fail(st, err, "read the writes of a run");
	}
	return 0;
}

void state_undo_items_free(struct undo_item *items, int n)
{
	for (int i = 0; i < n; i++) {
		free(items[i].field);
		free(items[i].old_value);
		free(items[i].new_value);
		free(items[i].current);
	}
	free(items);
}

int state_run_creates(struct state *st, long long run, long long *n, struct df_err *err)
{
	sqlite3_stmt *s = stmt(st, S_RUN_CREATES, err);
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, run);
	rc = sqlite3_step(s);
	*n = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 0 : db_fail(st, err, "count creates");
}

int state_notice_add(struct state *st, long long run, long long person, const char *system,
		     const char *remote_id, const char *kind, const char *message,
		     struct df_err *err)
{
	return write_stmt(st, S_NOTICE_ADD, err, "record notice", "iitttt", run, person, system,
			  remote_id, kind, message);
}
