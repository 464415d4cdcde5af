/*
 * internal.h - private to state/: the handle (struct state), the ids of
 * every prepared statement, and the helpers each table family's file
 * (open.c, snapshot.c, link.c, journal.c, outbox.c, events.c) runs its
 * statements with. The statements' text is in sql.c, one table indexed
 * by these ids; nothing outside state/ includes this file.
 */
#ifndef DF_STATE_INTERNAL_H
#define DF_STATE_INTERNAL_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"
#include "../core/str.h"

enum stmt_id {
	S_RUN_START, S_RUN_FINISH, S_RUN_SYSTEM, S_LAST_RUN,
	S_CURSOR_GET, S_CURSOR_SET,
	S_SNAP_GET, S_SNAP_PUT, S_SNAP_SEEN, S_SNAP_SEEN_RUN, S_SNAP_COUNT, S_SNAP_QUICK, S_SNAP_DIGEST,
	S_LINK_GET, S_LINK_OF, S_LINKS_OF, S_LINK_PUT,
	S_PERSON_NEW, S_PERSON_DIRTY, S_PERSON_MERGED, S_DIRTY_BATCH, S_DIRTY_AFTER,
	S_MATCH_PHONE, S_MATCH_EMAIL,
	S_AGREED_GET, S_AGREED_FIELDS, S_AGREED_PUT, S_WORDING_GET, S_WORDING_ADD,
	S_OBSERVED_ADD, S_CONFLICT_ADD, S_QUARANTINE_ADD, S_NOTICE_ADD,
	S_OUTBOX_SUPERSEDE, S_OUTBOX_ADD, S_OUTBOX_DUE,
	S_OUTBOX_GET, S_OUTBOX_FIELDS, S_OUTBOX_DONE, S_OUTBOX_FAILED, S_OUTBOX_COUNT,
	S_OPTOUT_GET, S_OPTOUT_SET, S_OPTOUT_LOG,
	S_SNAP_MERGED, S_SNAP_VIEW, S_SNAP_MARK, S_SNAP_LISTED, S_SNAP_SET_MERGED,
	S_LIST_MEMBERS, S_LIST_SET,
	S_SWEEP_BATCH, S_SWEPT, S_MARK_GONE, S_MARK_UNSEEN, S_GONE_COUNT, S_GONE_NEXT,
	S_MISSING_BATCH, S_MISSING_CLEAR, S_VALVE_CHANGES,
	S_UNLINK_SNAP, S_UNLINK_LINK, S_LINK_DELETED, S_LINK_UNBURY,
	S_EVENT_ADD, S_DELIVERY_ADD, S_DELIVERY_DUE, S_DELIVERY_GET, S_EVENT_PERSON, S_DELIVERY_SET,
	S_DELIVERY_COUNT, S_OUTBOX_UNRECORDED,
	S_OUTBOX_SET, S_OUTBOX_MARK, S_OUTBOX_UNMARK, S_OUTBOX_REFUSED, S_DELIVERY_REFUSED, S_REFUSED_REOPEN, S_DELIVERY_REOPEN,
	S_RETRY_WRITES, S_RETRY_DELIVERIES,
	S_HOLD_PUT, S_HOLD_GET, S_HOLD_DROP, S_HELD_PHONE, S_HELD_EMAIL, S_LINK_DROP, S_SNAP_UNMERGE,
	S_PERSON_EXISTS, S_ADMIN_LOG, S_QUARANTINE_KNOWN,
	S_PINS_GET, S_PIN_PUT, S_PIN_DROP, S_UNDO_ITEMS, S_RUN_CREATES, S_SAVEPOINT, S_RELEASE,
	S_COUNT
};

struct state {
	sqlite3 *db;
	sqlite3_stmt *stmt[S_COUNT];
	int depth;              /* open savepoints */
	char *path;             /* the file, for its check record (open.c) */
	bool writer;            /* opened by state_open, not a reader */
	bool failed;            /* a statement failed: the close records no check */
	long long checked_s;    /* when quick_check last passed on this file (Unix s) */
	const char *check_why;  /* why this open ran quick_check; NULL: skipped */
	/* The ids of the rule and reason texts the agreed values name
	 * (table wording), as read or written by this handle; forgotten at
	 * every rollback, which may have taken a new row back. */
	struct { char *text; long long id; } wording[64];
	int nwording;
};

/* Forgets the wording ids this handle knows (after a rollback). */
void wording_forget(struct state *st);
/* The id of a rule or reason text in wording, added when new. */
int wording_id(struct state *st, const char *text, long long *id, struct df_err *err);

/* A state failure: what was being done and SQLite's message. */
int db_fail(struct state *st, struct df_err *err, const char *what);
sqlite3_stmt *stmt(struct state *st, enum stmt_id id, struct df_err *err);
void bind_text(sqlite3_stmt *s, int i, const char *v);
int step_done(struct state *st, sqlite3_stmt *s, struct df_err *err, const char *what);
int write_stmt(struct state *st, enum stmt_id id, struct df_err *err, const char *what,
	       const char *types, ...);
char *column_dup(sqlite3_stmt *s, int i);
/* The (field name, value) rows statement id lists for person, into rec. */
int person_fields(struct state *st, enum stmt_id id, long long person, struct record *rec,
		  const char *what, struct df_err *err);
/* Reads the flat JSON array at *p (strings, nulls, integers) into v, up
 * to max elements (*n), strings copied, NULL for null and for a number;
 * *p moves past it. buf (cap bytes, at least the text's length plus one)
 * is scratch. false, with v empty, for anything else. */
bool flat_array(const char **p, char **v, int max, int *n, char *buf, size_t cap);
int query_int(struct state *st, enum stmt_id id, const char *a, const char *b,
	      long long *out, bool *found, struct df_err *err);
int collect_ids(struct state *st, sqlite3_stmt *s, int lim, long long *ids, int max,
		int *n, struct df_err *err);
int due_ids(struct state *st, enum stmt_id id, long long now_ms, long long after,
	    long long *ids, int max, int *n, struct df_err *err);

#endif
