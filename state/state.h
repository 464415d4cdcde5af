/*
 * state.h - the SQLite journal: the only module that speaks SQL.
 *
 * One file per tenant, WAL mode, schema versioned and migrated on open
 * (schema.h). Every statement is prepared once and reused with bound
 * parameters. Work is grouped with state_begin/state_commit, which nest
 * (savepoints), so a dry run can wrap a whole run in one transaction and
 * roll it back at the end.
 *
 * Strings returned through out-parameters are owned by the caller. Functions
 * return 0 on success and -1 with a DF_FAIL_STATE error otherwise.
 */
#ifndef DF_STATE_H
#define DF_STATE_H

#include <stdbool.h>

#include "../core/err.h"
#include "../core/record.h"
#include "../core/str.h"

struct state;

/* PRAGMA application_id of every state file: "dfrc" in ASCII. */
#define STATE_APPLICATION_ID 1684435555

/* Opens the state file, creating it only when it does not exist. An
 * existing file must be ours (application_id, or our schema from before
 * the id) and pass PRAGMA quick_check, which runs unless the file is what
 * our last clean close left, checked within a day (open.c: the record in
 * <path>-checked); an empty, foreign or damaged file is refused
 * (DF_FAIL_STATE, the message names the file and init-state) and left
 * exactly as it is. state_close of a writer with no failed statement
 * records the file for the next open. */
struct state *state_open(const char *path, struct df_err *err);
/* Read-only, for a file that exists at the current schema (report,
 * status, explain): auditors need no write access. Refuses what
 * state_open refuses. */
struct state *state_open_reader(const char *path, struct df_err *err);
/* `dfreconcile init-state`: creates a new state file at path when there is
 * none, or when the one there is refused, after renaming it (and its -wal
 * and -shm files) to path.refused-<UTC time>; *aside is that name (caller
 * frees) or NULL. A usable file is never replaced: -1. The caller holds
 * the run lock. */
int state_init(const char *path, char **aside, struct df_err *err);
void state_close(struct state *st);
/* Why the open ran quick_check (a constant), or NULL when the file was what
 * our last clean close left and was skipped; *checked_s: when the last
 * check passed (Unix seconds). */
const char *state_checked(const struct state *st, long long *checked_s);
int state_schema_version(struct state *st);

int state_begin(struct state *st, struct df_err *err);
int state_commit(struct state *st, struct df_err *err);
int state_rollback(struct state *st);

/* Runs. */
long long state_run_start(struct state *st, const char *mode, struct df_err *err);
int state_run_finish(struct state *st, long long run, const char *status, int exit_code,
		     const char *message, struct df_err *err);
struct run_counts {
	long long polled, changed, quarantined, writes_done, writes_failed, requests, swept, unlinked;
	long long sweep_cycle;       /* runs in which the sweep checks every linked record */
};
int state_run_system_add(struct state *st, long long run, const char *system,
			 const struct run_counts *c, struct df_err *err);
long long state_last_run(struct state *st);     /* 0 when none */

/* Cursors: position in the system's own clock, ms since the epoch. */
int state_cursor_get(struct state *st, const char *system, const char *stream,
		     long long *position_ms, struct df_err *err); /* 0 when none */
int state_cursor_set(struct state *st, const char *system, const char *stream,
		     long long position_ms, long long run, struct df_err *err);

/* Snapshots of remote records (canonical values) and their links. */
int state_snapshot_get(struct state *st, const char *system, const char *remote_id,
		       struct record *rec, bool *found, struct df_err *err);
/* Stores rec as the record's snapshot; its listed digest becomes unknown
 * (a write's answer is not what a listing shows). */
int state_snapshot_put(struct state *st, const char *system, const struct record *rec,
		       long long run, struct df_err *err);
/* The record was read again, unchanged: its update time, run and listed
 * digest (STATE_DIGEST bytes, or NULL: unknown). */
int state_snapshot_seen(struct state *st, const char *system, const char *remote_id,
			long long updated_ms, const unsigned char *digest, long long run, struct df_err *err);
/* The last run that read the record or wrote it with the system's answer
 * (seen_run), and when the record was last read whole (its first read or
 * the sweep's; a read before a write or a write's answer does not move
 * it, so it is never later than the last read); 0 and 0 when there is no
 * snapshot. */
int state_snapshot_seen_run(struct state *st, const char *system, const char *remote_id,
			    long long *run, long long *read_ms, struct df_err *err);
/* Digest of a record as a listing showed it (engine/observe.c), to tell a
 * record listed again unchanged before it is parsed into values. */
#define STATE_DIGEST 16
int state_snapshot_digest(struct state *st, const char *system, const char *remote_id,
			  const unsigned char *digest, struct df_err *err);
struct snapshot_quick {
	bool found;             /* a snapshot exists */
	bool has_digest;        /* digest holds the listed digest (else unknown) */
	bool present;           /* marked neither missing nor gone */
	long long person;       /* its link, 0 when not linked */
	unsigned char digest[STATE_DIGEST];
};
/* One read of what tells a record listed again unchanged. */
int state_snapshot_quick(struct state *st, const char *system, const char *remote_id,
			 struct snapshot_quick *q, struct df_err *err);
/* Notes that the system still lists the record (quarantined input is
 * still there: a full listing must not take it for deleted). */
int state_snapshot_listed(struct state *st, const char *system, const char *remote_id,
			  long long run, struct df_err *err);
/* The record's snapshot (*found) and its values as of its person's last
 * merge (*known, prev), in one read; *same when the merged copy is the
 * snapshot's fields ('same': a merge has nothing to mark). */
int state_snapshot_view(struct state *st, const char *system, const char *remote_id,
			struct record *rec, bool *found, struct record *prev, bool *known, bool *same,
			struct df_err *err);
/* The record's values as of its person's last merge; *known false when
 * it was linked since (fresh). */
int state_snapshot_merged(struct state *st, const char *system, const char *remote_id,
			  struct record *prev, bool *known, struct df_err *err);
/* Records that the person was merged with the snapshot's current values. */
int state_snapshot_mark_merged(struct state *st, const char *system, const char *remote_id,
			       struct df_err *err);
/* Sets what the record held at its person's last merge (after a write:
 * the old merged values with the fields we sent). */
int state_snapshot_set_merged(struct state *st, const char *system, const char *remote_id,
			      const struct record *merged, struct df_err *err);
int state_snapshot_count(struct state *st, const char *system, long long *n,
			 struct df_err *err);

/* Person of (system, remote_id), 0 when unlinked. */
int state_link_get(struct state *st, const char *system, const char *remote_id,
		   long long *person, struct df_err *err);
/* Remote id of the person's record in system (caller frees), NULL if none. */
/* The person's records in the n systems named, in one read: ids[i] the
 * record id in systems[i] (the caller frees), NULL where none is linked. */
int state_links_of(struct state *st, long long person, const char *const *systems, int n, char **ids,
		   struct df_err *err);
int state_link_of(struct state *st, long long person, const char *system, char **remote_id,
		  struct df_err *err);
int state_link_put(struct state *st, const char *system, const char *remote_id,
		   long long person, const char *how, long long run, struct df_err *err);

long long state_person_new(struct state *st, long long run, struct df_err *err);
int state_person_dirty(struct state *st, long long person, bool dirty, struct df_err *err);
/* The person is merged in run: not dirty; later observations are new. */
int state_person_merged(struct state *st, long long person, long long run, struct df_err *err);
/* Up to max dirty persons, lowest id first. */
int state_dirty_batch(struct state *st, long long *ids, int max, int *n, struct df_err *err);
/* The same, of ids above after (persons that stay dirty). */
int state_dirty_after(struct state *st, long long after, long long *ids, int max, int *n,
		      struct df_err *err);

/* Deletes and the sweep. */
/* Up to max linked records of system last swept at or before before_ms,
 * least recently swept first (remote ids; free each and the array). */
int state_sweep_batch(struct state *st, const char *system, int max, long long before_ms,
		      char ***ids, int *n, struct df_err *err);
int state_snapshot_swept(struct state *st, const char *system, const char *remote_id,
			 long long now_ms, struct df_err *err);
/* The record's own endpoint says it is gone: marked gone (counted by the
 * safety valve, then unlinked), unless first seen after young_after_ms
 * (within the system's lookback): then it is only missing, and checked
 * again once older. */
int state_mark_gone(struct state *st, const char *system, const char *remote_id, long long run,
		    long long young_after_ms, struct df_err *err);
/* Marks missing every record of system not seen since run started (a full
 * listing did not return it): a candidate, never proof (I10). */
int state_mark_unseen(struct state *st, const char *system, long long run, long long *n,
		      struct df_err *err);
/* Up to max linked missing records of system first seen at or before
 * young_after_ms, longest missing first (remote ids; free each and the
 * array). */
int state_missing_batch(struct state *st, const char *system, int max, long long young_after_ms,
			char ***ids, int *n, struct df_err *err);
/* The record is not missing after all (or cannot be confirmed). */
int state_missing_clear(struct state *st, const char *system, const char *remote_id,
			struct df_err *err);
/* Records of system that seem gone: marked gone, or missing and first seen
 * at or before young_after_ms. */
int state_gone_count(struct state *st, const char *system, long long young_after_ms, long long *n,
		     struct df_err *err);
/* What a source changed in records already in the state, not yet merged. */
struct valve_changes {
	long long changed;              /* records with a changed field */
	long long cleared_records;      /* records with a value made blank */
	long long cleared_fields;       /* values made blank */
};
int state_valve_changes(struct state *st, const char *system, struct valve_changes *vc,
			struct df_err *err);
/* The next record marked gone: its system, id (caller frees) and person;
 * *found false when none are left. */
int state_gone_next(struct state *st, char **system, char **remote_id, long long *person,
		    bool *found, struct df_err *err);
/* Drops the snapshot and turns the link into a tombstone. */
int state_unlink(struct state *st, const char *system, const char *remote_id, long long run,
		 struct df_err *err);
/* Whether the person's record in system was deleted there. */
int state_link_deleted(struct state *st, long long person, const char *system, bool *deleted,
		       struct df_err *err);

/* Persons whose agreed value or any linked record's value of field
 * ("phone" or "email") equals value; at most max returned in ids. */
int state_match(struct state *st, const char *field, const char *value,
		long long *ids, int max, int *n, struct df_err *err);

/* Agreed values with provenance (I5). */
int state_agreed_get(struct state *st, long long person, struct record *agreed,
		     struct df_err *err);
struct provenance {
	const char *system;     /* NULL when no single system won */
	const char *rule;
	const char *reason;
	const char *beaten;     /* JSON object system -> value, or NULL */
};
/* The agreed values a merge changed for one person, written at once:
 * the person's values are one row (agreed.fields, a JSON object field ->
 * [value, system, rule, reason, run, beaten], rule and reason by their id
 * in wording), so a merge writes one statement per person, not one per
 * field (issue 9). field_value is their view. */
struct agreed_patch {
	struct strbuf json;     /* the changed fields, as a JSON object */
	int n;
	char *phone, *email;    /* the new phone and e-mail, when changed */
};
void state_patch_init(struct agreed_patch *p);
void state_patch_free(struct agreed_patch *p);
int state_patch_add(struct state *st, struct agreed_patch *p, const char *field, const char *value,
		    const struct provenance *prov, long long run, struct df_err *err);
/* Writes the patch's fields over the person's (the others keep theirs);
 * nothing when it has none. The patch is emptied. */
int state_agreed_write(struct state *st, long long person, struct agreed_patch *p,
		       struct df_err *err);
/* One field: a patch of it, written. */
int state_agreed_put(struct state *st, long long person, const char *field, const char *value,
		     const struct provenance *p, long long run, struct df_err *err);

int state_observed_add(struct state *st, long long run, const char *system,
		       const char *remote_id, long long person, const char *field,
		       const char *old_value, const char *new_value, struct df_err *err);
int state_conflict_add(struct state *st, long long run, long long person, const char *field,
		       const char *base, const char *candidates, const char *winner,
		       const char *value, const char *rule, const char *reason,
		       struct df_err *err);
/* Whether the record's latest quarantine in an earlier run had this kind
 * and reason: known to the admin, and unchanged since (exit status). */
int state_quarantine_known(struct state *st, long long run, const char *system,
			   const char *remote_id, const char *kind, const char *reason, bool *known,
			   struct df_err *err);
int state_quarantine_add(struct state *st, long long run, const char *system,
			 const char *remote_id, const char *kind, const char *reason,
			 struct df_err *err);
int state_notice_add(struct state *st, long long run, long long person, const char *system,
		     const char *remote_id, const char *kind, const char *message,
		     struct df_err *err);

/* The opt-out registry by E.164 phone and channel (I4) and its history.
 * *opted_out is false and *source NULL when the registry has no row. */
int state_optout_get(struct state *st, const char *phone, const char *channel,
		     bool *opted_out, char **source, struct df_err *err);
int state_optout_set(struct state *st, const char *phone, const char *channel, bool opted_out,
		     const char *source, const char *reason, long long run, struct df_err *err);
int state_optout_log(struct state *st, long long run, const char *phone, const char *channel,
		     long long person, const char *action, const char *system, const char *reason,
		     struct df_err *err);

/* Calls and messages (event) and their deliveries to a target system. */
struct event_row {
	long long id, person;
	char *kind, *source, *source_id, *source_contact, *phone, *payload;
	long long occurred_ms;
};
/* Stores an event; *id is 0 when (source, source_id) was already known. */
int state_event_add(struct state *st, const char *kind, const char *source,
		    const char *source_id, const char *source_contact, const char *phone,
		    const char *payload, long long occurred_ms, long long run, long long *id,
		    struct df_err *err);
int state_delivery_add(struct state *st, long long event, const char *target, long long run,
		       struct df_err *err);
/* Open deliveries (waiting or pending) due at now_ms with id > after. */
int state_delivery_due(struct state *st, long long now_ms, long long after, long long *ids,
		       int max, int *n, struct df_err *err);
struct delivery_item {
	long long id;
	char *target, *status;
	int attempts;
	struct event_row ev;
};
int state_delivery_load(struct state *st, long long id, struct delivery_item *it,
			struct df_err *err);
void delivery_item_clear(struct delivery_item *it);
int state_event_person(struct state *st, long long event, long long person, struct df_err *err);
/* status: "waiting" (no target record yet), "done", "failed", "pending"
 * (retry at next_ms) or "unknown" (sent without an answer: due at next_ms,
 * the next attempt looks first). attempt counts a sent request. */
int state_delivery_set(struct state *st, long long id, const char *status, bool attempt,
		       long long next_ms, const char *remote_id, const char *error, long long run,
		       struct df_err *err);

/* Call-list membership as this tool last made it (person, list). */
int state_list_members(struct state *st, long long person, char ***lists, int *n,
		       struct df_err *err);     /* free each and the array */
int state_list_member_set(struct state *st, long long person, const char *list, bool member,
			  long long run, struct df_err *err);

/* Outbox (I2). */
int state_outbox_supersede(struct state *st, long long person, const char *system,
			   struct df_err *err);
/* A field of a write as journalled: the value it replaces (NULL for a
 * create), the value sent, the rule that decided it and why (or NULL). */
struct write_field {
	const char *name, *old_value, *new_value, *rule, *reason;
};
/* Journals a write and its n fields, in the order given, as one row (the
 * fields packed in outbox.fields; outbox_field is their view). */
long long state_outbox_add(struct state *st, long long run, long long person,
			   const char *system, const char *remote_id, const char *op,
			   const struct write_field *fields, int n, struct df_err *err);

struct outbox_item {
	long long id, person;
	char *system, *remote_id, *op;
	int attempts;
	/* Set by the write stage, not loaded: an earlier attempt's outcome is
	 * unknown (the row was 'unknown' before its batch marked it), so a
	 * create must look before it sends. Every row of a batch being sent
	 * reads 'unknown' in the state (state_outbox_mark). */
	bool unknown;
	int nfields;
	struct {
		int field;              /* index in the field table, -1 if unknown */
		char *name, *old_value, *new_value;
	} f[DF_MAX_FIELDS];
};
/* Pending writes due at now_ms with id > after, lowest id first. */
int state_outbox_due(struct state *st, long long now_ms, long long after, long long *ids,
		     int max, int *n, struct df_err *err);
/* Journals the intent to send the due writes with ids after `after` up to
 * `last` (a batch state_outbox_due gave), in the caller's transaction:
 * their pending rows become "unknown" (a run killed before their outcomes
 * are recorded leaves them so, and their next attempt looks first, I2).
 * ids and attempts receive up to max of the marked rows (*n), for
 * state_outbox_unmark. */
int state_outbox_mark(struct state *st, long long now_ms, long long after, long long last,
		      long long *ids, int *attempts, int max, int *n, struct df_err *err);
/* The marked row id was not sent after all (no outcome recorded: its
 * attempts still at `attempts`): pending again. Any recorded outcome
 * stands. */
int state_outbox_unmark(struct state *st, long long id, int attempts, struct df_err *err);
int state_outbox_load(struct state *st, long long id, struct outbox_item *it,
		      struct df_err *err);
void outbox_item_clear(struct outbox_item *it);
int state_outbox_done(struct state *st, long long id, long long run, const char *remote_id,
		      struct df_err *err);
/* A failed attempt: pending again at next_ms, or 'failed' for good when final. */
int state_outbox_failed(struct state *st, long long id, long long next_ms, bool final,
			const char *error, struct df_err *err);
int state_outbox_count(struct state *st, const char *status, long long *n, struct df_err *err);
int state_delivery_count(struct state *st, const char *status, long long *n, struct df_err *err);
/* The newest update of the record that may have reached the system without
 * being recorded (outcome unknown, tried, or journalled by a killed run);
 * *found false if none. */
int state_outbox_unrecorded(struct state *st, const char *system, const char *remote_id,
			    long long *id, bool *found, struct df_err *err);

/* Failure classes (I11). status "unknown": sent without an answer, due
 * again at next_ms (the next attempt looks first); "pending": due at
 * next_ms. attempt counts a sent request. */
int state_outbox_set(struct state *st, long long id, const char *status, bool attempt,
		     long long next_ms, const char *error, struct df_err *err);
/* The system refused the write or delivery (error holds its answer): kept,
 * not due, until a newer plan supersedes it, the configuration (config, a
 * fingerprint without secrets) changes, or state_retry. */
int state_outbox_refused(struct state *st, long long id, const char *error, const char *config,
			 struct df_err *err);
int state_delivery_refused(struct state *st, long long id, const char *error, const char *config,
			   struct df_err *err);
/* Refused rows journalled under another configuration are due again; *n
 * says how many. */
int state_refused_reopen(struct state *st, const char *config, long long *n, struct df_err *err);
/* Makes given-up and refused writes and deliveries due again with fresh
 * attempts: all (system NULL), a system's, or those of the record
 * remote_id of system and of its person. */
int state_retry(struct state *st, const char *system, const char *remote_id, long long *writes,
		long long *deliveries, struct df_err *err);

/* Records held out of linking (engine/link.c): kind "ambiguous" (a phone
 * or email shared by several records or persons) or "unlinked" (by an
 * admin); only an admin's link releases an unlinked one. */
int state_hold_put(struct state *st, const char *system, const char *remote_id, const char *kind,
		   const char *reason, long long run, struct df_err *err);
/* *kind (owned) is NULL when the record is not held. */
int state_hold_get(struct state *st, const char *system, const char *remote_id, char **kind,
		   struct df_err *err);
int state_hold_drop(struct state *st, const char *system, const char *remote_id, struct df_err *err);
/* *first (owned, "system:id") is a held record other than system/remote_id
 * whose snapshot has this phone or email (field), NULL when none. */
int state_held_other(struct state *st, const char *field, const char *value, const char *system,
		     const char *remote_id, char **first, struct df_err *err);
/* Removes a live link outright (an admin's unlink; not a tombstone). */
int state_link_drop(struct state *st, const char *system, const char *remote_id, struct df_err *err);
/* Makes the record fresh: its next merge takes it as newly linked. */
int state_snapshot_unmerge(struct state *st, const char *system, const char *remote_id,
			   struct df_err *err);
int state_person_exists(struct state *st, long long person, bool *exists, struct df_err *err);
/* Journals an admin action (person 0: none). */
int state_admin_log(struct state *st, const char *action, const char *who, const char *system,
		    const char *remote_id, long long person_before, long long person_after,
		    const char *before, const char *after, struct df_err *err);

/* Pins (`dfreconcile pin`): a value an admin holds against every system.
 * state_pins_get sets pins->value[f] for each pinned field of the person. */
int state_pins_get(struct state *st, long long person, struct record *pins, struct df_err *err);
int state_pin_put(struct state *st, long long person, const char *field, const char *value,
		  const char *who, struct df_err *err);
int state_pin_drop(struct state *st, long long person, const char *field, bool *dropped,
		   struct df_err *err);

/* Undo (`dfreconcile undo --run N`): what run N changed by its updates,
 * one item per person and field; the array and its strings are owned by
 * the caller (state_undo_items_free). */
struct undo_item {
	long long person;
	char *field;
	char *old_value;        /* what the run's first write of it replaced */
	char *new_value;        /* what it wrote */
	char *current;          /* the agreed value now (NULL: none) */
	long long current_run;  /* the run that last changed the agreed value */
};
int state_undo_items(struct state *st, long long run, struct undo_item **items, int *n,
		     struct df_err *err);
void state_undo_items_free(struct undo_item *items, int n);
/* Records run N created (creates are not undone). */
int state_run_creates(struct state *st, long long run, long long *n, struct df_err *err);

/* Reports (report/) own their SQL; this is their one way in, read-only.
 * Runs sql with ?1..?nparams bound to params (a decimal integer is bound
 * as an integer, anything else as text, NULL as NULL) and calls row(arg, ncols,
 * cells) for each row; the cells are borrowed until row returns. row
 * returning non-zero stops early (not an error). Refuses a statement
 * that writes. Columns past STATE_MAX_COLUMNS are not passed. */
#define STATE_MAX_COLUMNS 32
enum state_type { STATE_NULL, STATE_INTEGER, STATE_REAL, STATE_TEXT };
struct state_cell {
	const char *name;
	const char *text;       /* NULL for SQL NULL */
	enum state_type type;
};
typedef int (*state_row_fn)(void *arg, int ncols, const struct state_cell *cells);
int state_query(struct state *st, const char *sql, const char *const *params, int nparams,
		state_row_fn row, void *arg, struct df_err *err);

/* The text of every statement the state prepares (i from 0 to count-1;
 * NULL past the end), so a test can check each one's query plan
 * (tests/unit/test_plans.c; the report's own are report/queries.h's). */
int state_statement_count(void);
const char *state_statement_sql(int i);


#endif
