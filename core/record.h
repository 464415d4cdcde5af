/*
 * record.h - the canonical contact record every connector produces and the
 * engine works on. The engine never sees a system's JSON; connectors never
 * see SQL or merge rules.
 *
 * Fields are numbered: the built-in ones first, then the custom fields the
 * configuration declares (fields_add_custom). value[f] == NULL means "this
 * system does not carry field f" or, from a connector, "this answer does not
 * say" (the snapshot's value stands); "" means "carried, but blank".
 * Opt-outs are flags per channel, "true" or "false". Sets (tags)
 * are held in one canonical string: members sorted case-insensitively,
 * de-duplicated, joined by '\n'.
 */
#ifndef DF_RECORD_H
#define DF_RECORD_H

#include <stdbool.h>

#define DF_MAX_FIELDS 48
#define DF_MAX_SYSTEMS 8
#define DF_MAX_VALUE 4096   /* longer values are malformed input */

enum field_kind { FIELD_TEXT, FIELD_PHONE, FIELD_EMAIL, FIELD_SET, FIELD_FLAG };

enum builtin_field {
	F_FIRST_NAME, F_LAST_NAME, F_PHONE, F_EMAIL, F_ADDRESS1, F_CITY,
	F_STATE, F_POSTAL_CODE, F_COUNTRY, F_TIMEZONE, F_TAGS,
	F_OPTOUT_SMS, F_OPTOUT_CALL, F_OPTOUT_EMAIL,   /* flags: "true"/"false" */
	F_NBUILTIN
};

struct field_def {
	const char *name;
	enum field_kind kind;
	bool custom;
};

/* The field table; built-ins exist from the start. Returns -1 when full or
 * when the name is taken. */
int fields_add_custom(const char *name);
int fields_count(void);
const struct field_def *field_get(int f);
int field_find(const char *name);       /* -1 when unknown */
bool field_is_optout(int f);
const char *optout_channel(int f);      /* "sms", "call", "email" */
void fields_reset(void);                /* back to built-ins only (tests) */

#define RECORD_RAW_DIGEST 16

struct record {
	char *remote_id;
	long long updated_ms;   /* the system's own update time, -1 if unknown */
	bool deleted;
	char *value[DF_MAX_FIELDS];
	/* Set by a connector when a value was malformed and read in the safe
	 * direction (an opt-out read as opted out): the record is used, and
	 * the problem is reported. NULL otherwise. */
	char *problem;
	/* A listed record's digest by the connector (has_raw): the answer's
	 * bytes of it and how the connector reads them, so equal digests mean
	 * the same record read the same way. */
	bool has_raw;
	unsigned char raw[RECORD_RAW_DIGEST];
	/* Not parsed: the listing's caller found it unchanged by its digest
	 * (connector_page.same); only remote_id, updated_ms and raw hold. */
	bool listed_same;
	/* Parsed because the listing's caller compared it and found it changed
	 * (connector_page.same said 0): it need not be compared again. */
	bool listed_changed;
};

void record_init(struct record *r);
void record_clear(struct record *r);   /* frees members, re-inits */
void record_set(struct record *r, int f, const char *value); /* copies */
void record_take(struct record *r, int f, char *value);      /* owns */
/* Adds a problem (printf-style) to r->problem, "; "-separated. */
void record_problem(struct record *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends v as a JSON string, escaped as json-c escapes it (the state's
 * JSON texts are built by hand, so they read back the same). */
struct strbuf;
void json_quote(struct strbuf *sb, const char *v);
/* Reads a JSON string at *p (after its opening quote) into out (at most
 * cap bytes with its NUL) and moves *p past it; false for what a fast
 * reader leaves to a full parser: a raw control character, \u0000, a
 * surrogate, a bad escape, no room. */
bool json_read_string(const char **p, char *out, size_t cap);
const char *json_skip_space(const char *p);
/* Canonical JSON of the carried fields, keys in field order; caller frees. */
char *record_to_json(const struct record *r);
/* Fills r's values from record_to_json() output; unknown keys are ignored
 * (a field removed from the config). Returns -1 on malformed text. */
int record_from_json(struct record *r, const char *json);

/* Canonical set text from members (n of them); caller frees. */
char *set_from_array(const char *const *members, int n);
/* Splits canonical set text; *out is an array of n pointers into one
 * allocation; free(*out) releases all. */
int set_split(const char *set, char ***out);
bool set_contains(const char *set, const char *member); /* case-insensitive */

#endif
