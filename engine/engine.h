/*
 * engine.h - one run of the reconciler, stage by stage:
 *
 *   poll.c       page through each system's changed-since API (I1)
 *   observe.c    normalise, diff against the snapshot, quarantine (I8)
 *   link.c       attach a record to a person: mapping, phone, email
 *   reconcile.c  merge every field of a changed person (merge.c), keep
 *                provenance and conflicts (I5)
 *   plan.c       journal the writes that bring each system to the agreed
 *                values (I2), and what cannot be done
 *   write.c      send journalled writes, record what the systems answered
 *   run.c        the order of the stages, lock (I7), safety valve (I6)
 *
 * Stages share one struct run; each owns its own step of the data flow and
 * nothing else. The engine never sees JSON and never builds SQL.
 */
#ifndef DF_ENGINE_H
#define DF_ENGINE_H

#include <stdbool.h>
#include <stdio.h>

#include "../connectors/connector.h"
#include "../core/config.h"
#include "merge.h"
#include "../state/state.h"

/* Exit codes of a run (man/dfreconcile.1, EXIT STATUS). */
enum {
	EXIT_OK = 0,            /* converged: everything seen was synced */
	EXIT_PARTIAL = 1,       /* finished, but something is left: see report */
	EXIT_USAGE = 2,         /* bad command line or configuration */
	EXIT_LOCKED = 3,        /* another run holds the lock */
	EXIT_SAFETY = 4,        /* the safety valve stopped the run */
	EXIT_FATAL = 5,         /* state or environment unusable */
	EXIT_CREDENTIALS = 6,   /* a system refused our credentials (401/403) */
	EXIT_NOT_FOUND = 7,     /* explain: no person has that phone, email or number */
};

struct run;

struct run_options {
	bool full;              /* ignore cursors: re-read everything */
	bool dry_run;           /* plan only: no write, state left as it was */
	double max_change_share; /* < 0: the config's */
	const char *metrics_file; /* --metrics: overrides the config's; NULL: the config's */
	/* Called once the run is recorded, before the poll, inside the run's
	 * transaction (a dry run rolls it back): an admin command's change to
	 * the agreed values (admin.c: undo). Fails the run on -1 (r->err). */
	int (*prepare)(struct run *r, void *arg);
	void *prepare_arg;
};

struct system_run {
	const struct system_conf *conf;
	const struct connector *conn;
	void *handle;
	bool poll_failed;       /* it gets no writes nor deliveries this run */
	bool auth_failed;       /* it refused our credentials: nothing more is sent */
	char auth_why[512];     /* the first such refusal, token-free */
	unsigned noted;         /* problems already noted this run (engine_note_problem) */
	bool listed_all;        /* a full run read every page of its contacts */
	bool listed;            /* its contacts' changed-since listing was read to the end */
	long long read_from_ms; /* when the last listing (or poll) of its records began */
	bool rechecked;         /* the write stage listed its contacts again (poll_recheck) */
	bool recheck_failed;    /* ... and could not read that listing to the end */
	long long delete_checks; /* missing records read by their endpoint */
	long quota_held;        /* writes and deliveries held for its daily quota */
	long long quota_left, quota_limit; /* what it said when the first was held */
	/* Custom fields it cannot carry this run (resolve_fields: a GHL key the
	 * location does not define), as bits by field: left alone there. */
	unsigned long long unusable;
	struct run_counts counts;
	/* Failed requests and records of this run by class (metrics): a poll,
	 * write or delivery that failed, a record quarantined (input). */
	long long failures[DF_FAIL_BUDGET + 1];
};

/* Whether system sr carries field f this run. */
static inline bool sys_carries(const struct system_run *sr, int f)
{
	return connector_carries(sr->conn, sr->conf, f) && !(sr->unusable & (1ULL << f));
}

struct run {
	const struct config *cfg;
	const struct run_options *opt;
	struct state *st;
	long long id;
	int nsys;
	struct system_run sys[DF_MAX_SYSTEMS];
	long conflicts, quarantined, notices, writes_failed, delivered;
	long quarantined_new;   /* not known from an earlier run (exit 1) */
	long long deadline_ms;  /* wall clock: nothing is read or sent after it */
	bool progress;          /* progress lines wanted (progress.c) */
	bool deadline_hit;
	long writes_waiting;    /* not sent: system stopped or budget used up */
	char config_fp[17];     /* config_fingerprint, kept with refused writes */
	/* The safety valve tripped (I6): merge and send only opt-outs (and
	 * deliver calls and texts); everything else waits. */
	bool optouts_only;
	long held_updates, held_creates;  /* planned but held back by the valve */
	/* Changes re-check listings observed during the writes (poll_recheck),
	 * and how many of them the valve has counted (run.c, recheck_valve). */
	long long recheck_changes, recheck_valved;
	bool valve_late;        /* the valve tripped on them: the rest waits */
	long optouts_sent;                /* opt-out writes sent while it held */
	/* Numbers that texted an opt-in keyword this run, and through which
	 * system: their SMS opt-out is lifted at their next merge. */
	struct keyword_optin { char *phone; int sys; } *optins;
	int noptins;
	struct df_err err;      /* the fatal error, when a stage returns -1 */
};

/* run.c: the whole run; returns the exit code. */
int engine_run(const struct config *cfg, const struct run_options *opt);

/* progress.c: "event=progress" lines on long stages, at most every
 * progress_interval seconds, when someone watches (a terminal, or -v). */
struct progress {
	const char *stage, *system;
	long long total;        /* <= 0: unknown */
	long long done, started_ms, last_ms;
	bool on;
};
bool progress_wanted(void);
void progress_start(struct run *r, struct progress *p, const char *stage, const char *system,
		    long long total);
void progress_step(struct run *r, struct progress *p, long long n);

/* run.c: true once the run's deadline has passed (logged once): stages
 * then stop reading and sending, and what was done is committed. */
bool run_out_of_time(struct run *r);

/* poll.c */
int poll_all(struct run *r);
/* The write stage's re-check: system s's contacts listed again from the
 * cursor, observed like a poll's; when read to the end, its records are
 * known as of when it began (read_from_ms). A failure is logged and
 * leaves listed false (recheck_failed): its updates read each record
 * first. -1 only on a state failure (r->err). */
int poll_recheck(struct run *r, int s);

/* observe.c: one polled record of system s, inside the page's transaction. */
int observe_record(struct run *r, int s, struct record *rec);
/* Sets page->same, for a contacts listing of system s to tell the records
 * held unchanged (observe_unchanged's test) before they are parsed; l
 * holds its argument and must outlive the page's reading. In a full run a
 * partial listing's records are all parsed (to be read whole), and
 * digested as in any other run. */
struct observe_listing {
	struct run *r;
	int s;
};
void observe_listing(struct observe_listing *l, struct run *r, int s, struct connector_page *page);
/* Quarantines record id of system s (kind "malformed" or "ambiguous"). */
int quarantine(struct run *r, int s, const char *id, const char *kind, const char *why);
/* Journals (observed) each field rec states that differs from old (may be
 * NULL); *changed says whether any did. */
int observe_changes(struct run *r, int s, long long person, const struct record *old,
		    const struct record *rec, bool *changed);
/* Takes the values rec does not state (NULL) from old, its snapshot. */
void observe_fill(struct record *rec, const struct record *old);
/* Normalises every carried field of rec in place; NULL, or why it failed. */
const char *observe_normalize(const struct run *r, int s, struct record *rec);

/* link.c: the person an unlinked record belongs to: an existing one matched
 * by E.164 phone, then by email, or a new one. *person is 0 when the match
 * is ambiguous, with the reason in why. *how says how it matched. */
int link_record(struct run *r, int s, const struct record *rec, long long *person,
		const char **how, char *why, size_t whylen);

/* link.c: the admin commands `link SYSTEM:ID PERSON` and `unlink
 * SYSTEM:ID` (person_arg unused): take the run lock, change the link and
 * the hold, journal the action; return the exit code, messages printed. */
int link_admin(const struct config *cfg, const char *target, const char *person_arg, bool unlink);
/* Who ran an admin command, for the journal: $USER, else the uid. */
void admin_who(char *who, size_t n);

/* admin.c: pin PERSON FIELD VALUE, unpin PERSON FIELD, undo --run N [--yes].
 * Each takes the run lock (exit 3 while a run holds it) and is journalled
 * in admin_action; each returns an exit code. */
int admin_pin(const struct config *cfg, const char *person, const char *field, const char *value);
int admin_unpin(const struct config *cfg, const char *person, const char *field);
int admin_undo(const struct config *cfg, long long run, bool yes);

/* events.c: one polled call or message of system s, inside the page's
 * transaction: stored once, journalled for delivery, read for STOP. */
int observe_event(struct run *r, int s, const struct event *ev);
/* The whole text is an opt-out (STOP ...) or opt-in (START, UNSTOP, YES)
 * keyword, any case, without surrounding white space and punctuation. */
bool events_is_stop(const char *body);
bool events_is_start(const char *body);

/* deliver.c: deliver what is due and linked; the rest waits. The dry
 * run prints what would be delivered instead (deliver_print, arg a FILE). */
int deliver_due(struct run *r);
int deliver_print(struct run *r, long long id, void *arg);

/* reconcile.c: merge and plan every dirty person. */
int reconcile_dirty(struct run *r);

/* plan.c: journal writes for one person given the agreed values and each
 * system's current record (present[s] false when unlinked). */
int plan_person(struct run *r, long long person, const struct record *agreed,
		const struct record *recs, const bool *present);

/* sweep.c: mark linked records a full listing missed as missing; read
 * missing records and a slice of linked records per system through their
 * own endpoint, marking gone what it says is gone (I10). After the safety
 * valve has counted the marks (run.c), deletes_apply unlinks them. */
int sweep_all(struct run *r);
int deletes_apply(struct run *r);
/* Records of system s first seen after this time are younger than its
 * lookback: never taken for gone (I10), checked again when older. */
long long sweep_young_after(const struct run *r, int s);

/* lists.c: tags -> call lists. lists_wanted fills out (room for nrules)
 * with the lists the tags call for, none when opted out; returns the count. */
bool lists_rule_matches(const struct list_rule *lr, const char *tag);
int lists_wanted(const struct list_rule *rules, int nrules, const char *tags, bool opted_out,
		 const char **out);
int plan_lists(struct run *r, long long person, const struct record *agreed,
	       const struct record *recs, const bool *present);

/* write.c: calls fn for every journalled write (DUE_WRITES) or delivery
 * (DUE_DELIVERIES) due at now_ms, lowest id first, each once. */
enum due_kind { DUE_WRITES, DUE_DELIVERIES };
#define ENGINE_ALL_DUE ((long long)1 << 62)
int engine_each_due(struct run *r, enum due_kind kind, long long now_ms,
		    int (*fn)(struct run *r, long long id, void *arg), void *arg);

/* write.c: whether a journalled write only opts out (fields all opt-outs,
 * a record made to hold an opt-out, a call-list removal): what is sent
 * while the safety valve holds everything else. */
bool write_is_optout(const struct run *r, int s, const char *op, const int *fields, int n);

/* write.c: send what is due; dry runs print it instead. */
int write_due(struct run *r);
int write_print_plan(struct run *r, FILE *out);

int run_system_index(const struct run *r, const char *name);
/* write.c: whether a write (optout: it carries an opt-out) or delivery to
 * system s waits for the next day's quota: the system says it allows
 * quota_reserve requests or fewer today. The reserve is kept for reads
 * and opt-outs (I4), which stop only when nothing is left. Counts and
 * logs what it holds. */
bool engine_quota_holds(struct run *r, int s, bool optout);

/* write.c: system s refused our credentials (e, DF_FAIL_AUTH): nothing more
 * goes to it this run and its writes and deliveries wait untouched (I11). */
void engine_system_refused(struct run *r, int s, const struct df_err *e);
/* write.c: a problem of a whole system (it could not be read, refused our
 * credentials, ran out of its request budget) as one notice per system and
 * kind (unreadable, credentials, quota), so the report's summary names the
 * cause. what says what was being done ("reading contacts"). */
void engine_note_problem(struct run *r, int s, const char *what, const struct df_err *e);

#endif
