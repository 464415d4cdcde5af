/*
 * connector.h - what the engine asks of a system, and nothing more.
 *
 * One struct connector per system (ghl.c, aloware.c, verity.c), each a table
 * of functions in the manner of mbsync's struct driver. A connector
 * translates between one system's API and canonical records (record.h): it
 * owns no SQL, applies no merge rule and never decides what to write. The
 * engine never knows which connector it talks to.
 *
 * Memory: every record, page and string passed in belongs to the caller and
 * is only read. Records and pages filled in by a connector belong to the
 * caller afterwards (free with record_clear / connector_page_clear).
 *
 * Values a connector produces are raw text as the system holds it; the
 * engine normalises them (E.164 phones, lower-case email). Sets (tags) are
 * produced in canonical form with set_from_array.
 *
 * Failures are reported through struct df_err: DF_FAIL_TEMP (network, 5xx,
 * 429 after retries, a body that is not JSON: try again later),
 * DF_FAIL_REMOTE (the system refused this request: do not repeat it
 * unchanged), DF_FAIL_INPUT (one record is malformed: quarantine it).
 */
#ifndef DF_CONNECTOR_H
#define DF_CONNECTOR_H

#include <stdbool.h>

#include "../core/config.h"
#include "../core/err.h"
#include "../core/event.h"
#include "../core/record.h"

/* A record of a page that could not be read: quarantined by the engine. */
struct bad_record {
	char *remote_id;        /* may be NULL when the record has no id */
	char *reason;
};

struct connector_page {
	struct record *recs;
	int nrecs;
	struct event *events;
	int nevents;
	struct bad_record *bad;
	int nbad;
	/* Set by the caller before a contacts listing is read, or NULL: 1 when
	 * the record of this id and raw digest (record.raw) is one it already
	 * holds unchanged, 0 when it compared and it differs, -1 when it did
	 * not compare. A record held unchanged is not parsed: it comes as
	 * remote_id and updated_ms with listed_same set; one that differs
	 * comes parsed, with listed_changed set. */
	int (*same)(void *arg, const char *remote_id, const unsigned char *raw);
	void *same_arg;
};

struct field_change {
	int field;
	const char *old_value;  /* what the snapshot holds; NULL if unknown */
	const char *new_value;
};

#define FIELD_BIT(f) (1UL << (f))
/* The contact fields every contact system carries, and the opt-outs. */
#define CONTACT_FIELDS (FIELD_BIT(F_FIRST_NAME) | FIELD_BIT(F_LAST_NAME) | FIELD_BIT(F_PHONE) | \
			FIELD_BIT(F_EMAIL) | FIELD_BIT(F_ADDRESS1) | FIELD_BIT(F_CITY) | \
			FIELD_BIT(F_STATE) | FIELD_BIT(F_POSTAL_CODE) | FIELD_BIT(F_COUNTRY) | \
			FIELD_BIT(F_TIMEZONE))
#define OPTOUT_FIELDS (FIELD_BIT(F_OPTOUT_SMS) | FIELD_BIT(F_OPTOUT_CALL) | FIELD_BIT(F_OPTOUT_EMAIL))

/* What a system can and cannot do, as the engine must treat it: declared
 * by its connector (struct connector.caps), one bit each. What only the
 * configuration's defaults depend on (a listing that is only our contract,
 * call lists, the required location) is in its system_kind instead. */
enum connector_cap {
	/* It keeps opt-outs by phone, not contacts (the texting system): its
	 * records never make a person appear in other systems, a record is
	 * created in it only to hold an opt-out, and it takes no part in
	 * linking by natural keys. */
	CAP_OPTOUTS_ONLY = 1u << 0,
	/* Its API records opt-outs but cannot opt a number back in: the engine
	 * never plans an opt-in there (it reports it instead). */
	CAP_OPTOUTS_ONE_WAY = 1u << 1,
	/* Its listing leaves fields unsaid (GHL search: per-channel DND): a
	 * new or changed record is read whole with fetch before the engine
	 * observes it. */
	CAP_LISTING_PARTIAL = 1u << 2,
	/* It can only remove a contact from every call list at once: the
	 * engine hands list_change the lists to keep, for it to re-add. */
	CAP_LISTS_REMOVE_ALL = 1u << 3,
	/* Its create never makes a second record holding the same natural key:
	 * it answers with the one that holds it and says so (create's
	 * *existed). A create is then sent without a lookup first, even one
	 * repeated after a crash or an unknown outcome (I2). */
	CAP_CREATE_BY_KEY = 1u << 4,
};

struct connector {
	const char *name;
	/* Its settings table and what the configuration loader must know of
	 * it (core/config.h); handed to the loader by connector_kinds. */
	const struct system_kind *kind;
	unsigned caps;                  /* enum connector_cap bits */
	unsigned long fields;           /* built-in fields carried (FIELD_BIT) */
	unsigned long writable;         /* built-in fields its API can change */
	int required_for_create;        /* field that must be valid, or -1 */

	/* Opens the connector for one configured system; returns its handle. */
	void *(*open)(const struct system_conf *sc, const struct config *cfg, struct df_err *err);
	void (*close)(void *self);

	/* Reads one page of contacts changed at or after since_ms. *cursor is
	 * NULL for the first page; the connector replaces it with the next
	 * page's cursor (owned by the caller) or NULL after the last page. */
	int (*poll_contacts)(void *self, long long since_ms, char **cursor,
			     struct connector_page *page, struct df_err *err);

	/* Finds the record holding want's natural keys (phone, email) so that a
	 * create is never repeated; found->remote_id stays NULL if none. */
	int (*lookup)(void *self, const struct record *want, struct record *found,
		      struct df_err *err);

	/* Creates rec; fills created (remote_id at least). A connector with
	 * CAP_CREATE_BY_KEY sets *existed when the system answered with the
	 * record already holding rec's natural keys instead of making one;
	 * the others leave it alone. */
	int (*create)(void *self, const struct record *rec, struct record *created,
		      bool *existed, struct df_err *err);

	/* Changes only the given fields of the record current (its snapshot).
	 * Fills updated with the system's copy when the answer carries one
	 * (updated->remote_id NULL otherwise). */
	int (*update)(void *self, const struct record *current,
		      const struct field_change *ch, int nch,
		      struct record *updated, struct df_err *err);

	long (*requests)(void *self);   /* requests sent this run */
	/* Requests the system still allows today, as its last answer stated
	 * (those sent since counted off), and its daily limit in *limit; -1
	 * when it states none. NULL when it never states one. */
	long long (*daily_left)(void *self, long long *limit);

	/* Resolves the names the configuration gives this system's custom
	 * fields (GHL: fieldKeys to ids and dataTypes, from the location's
	 * definitions), once per run before anything is read. Sets why[f]
	 * (caller frees) for a custom field the system cannot carry this run;
	 * the engine reports it and leaves that field alone there. NULL when
	 * the configured names are the system's own keys. */
	int (*resolve_fields)(void *self, char **why, struct df_err *err);

	/* Event streams this system is a source of ("calls", "messages"),
	 * NULL-terminated; NULL when none. */
	const char *const *streams;
	/* One page of a stream's events changed at or after since_ms; paging
	 * as poll_contacts. Bad items become page->bad entries. */
	int (*poll_events)(void *self, const char *stream, long long since_ms, char **cursor,
			   struct connector_page *page, struct df_err *err);

	/* Delivers an event to the record contact_id of this system (GHL:
	 * a call as a note and optionally a Call message, a text into the
	 * contact's conversation). Finds an earlier delivery of the same event
	 * first, so a delivery repeated after a crash is not made twice.
	 * *remote_id (caller frees) names what was made or found. NULL when the
	 * system takes no deliveries. */
	int (*deliver)(void *self, const char *contact_id, const struct event *ev,
		       char **remote_id, struct df_err *err);

	/* Call lists (Aloware): adds the contact to lists[0] (add), or removes
	 * it from the nlists lists while keeping it in the nkeep lists of keep
	 * (a system that can only remove from every list at once re-adds
	 * those). *note (caller frees) is set when the system could not make
	 * the change exactly as asked: what it could not do, for the report.
	 * NULL when the system has no lists. */
	int (*list_change)(void *self, const struct record *contact, const char *const *lists,
			   int nlists, bool add, const char *const *keep, int nkeep, char **note,
			   struct df_err *err);

	/* Deletes a record (a delete propagated from another system). NULL
	 * when the system's API cannot delete. */
	int (*remove)(void *self, const struct record *current, struct df_err *err);

	/* Reads the current copy of one linked record (the sweep). *gone is set
	 * when the system no longer has it. */
	int (*fetch)(void *self, const struct record *current, struct record *out, bool *gone,
		     struct df_err *err);
};

const struct connector *connector_find(const char *name);
/* Every connector's system_kind, NULL-terminated: main hands them to the
 * configuration loader (config_set_kinds). */
const struct system_kind *const *connector_kinds(void);
/* Whether c declares capability cap. */
static inline bool connector_has(const struct connector *c, enum connector_cap cap)
{
	return (c->caps & cap) != 0;
}
/* Whether system sc carries field f (built-in by the connector's mask,
 * custom when the config maps a key for it). */
bool connector_carries(const struct connector *c, const struct system_conf *sc, int f);
bool connector_can_write(const struct connector *c, const struct system_conf *sc, int f);

void connector_page_clear(struct connector_page *page);

#endif
