/*
 * jsonmap.h - the translation helpers every connector shares: a table that
 * maps canonical fields to one system's JSON keys, and the reading and
 * writing of values through it. Only connectors include this file.
 */
#ifndef DF_JSONMAP_H
#define DF_JSONMAP_H

#include <json-c/json.h>

#include "connector.h"
#include "../http/http.h"

/* What every connector keeps: its HTTP client and its configuration. */
struct conn {
	struct http_client *http;
	const struct system_conf *sc;
	void *auth;             /* the connector's renewable credentials, or NULL */
	/* Custom fields as the system names them this run, when the
	 * configuration's name must be resolved first (GHL: a fieldKey ->
	 * the field's id and dataType); NULL: the configured name as it is. */
	char *field_id[DF_MAX_FIELDS];
	char *field_type[DF_MAX_FIELDS];
};

/* Open a struct conn (the connector's open): with jm_open_bearer requests
 * carry "Authorization: Bearer <token>"; Aloware puts its token in query
 * and body instead (jm_open_plain). */
void *jm_open_bearer(const struct system_conf *sc, const struct config *cfg, struct df_err *err);
void *jm_open_plain(const struct system_conf *sc, const struct config *cfg, struct df_err *err);
void jm_close(void *self);
/* As jm_open_bearer with the given token (NULL: no Authorization header,
 * as before a first OAuth refresh). */
void *jm_open_token(const struct system_conf *sc, const struct config *cfg, const char *token,
		    struct df_err *err);
/* The connector's quota: what http_limits_now says is left today. */
long long jm_daily_left(void *self, long long *limit);
long jm_requests(void *self);

struct field_key {
	int field;
	const char *key;
};

/* Parses a response body; DF_FAIL_TEMP when it is not a JSON object (a
 * broken answer is retried on a later run, never trusted). */
json_object *jm_parse(const struct http_response *resp, const char *system, struct df_err *err);
/* Parses len bytes of JSON text (NULL when it is not JSON). Nesting up to
 * 512 levels; integers beyond 64 bits are kept exactly for jm_id_text.
 * Every connector parses through this, never json_tokener_parse. */
json_object *jm_parse_text(const char *text, size_t len);
/* The text of the JSON string v, NULL with DF_FAIL_INPUT naming key when
 * it holds a NUL (json-c would cut it short there), is not valid UTF-8, or
 * is an integer beyond 64 bits. Borrowed from v. */
const char *jm_string_of(json_object *v, const char *key, struct df_err *err);
/* An id as exact text (caller frees *out): a JSON integer (any size) by
 * its digits, never through int64 or double, or a string that is not
 * blank, checked as by jm_string_of and shorter than 256 bytes. */
int jm_id_text(json_object *v, const char *key, char **out, struct df_err *err);

/* Reads the string member key of o into *out (copied; NULL when absent or
 * null). Numbers are malformed input: a system that sends a phone as a
 * number has a record we cannot trust. Returns -1 with DF_FAIL_INPUT. */
int jm_get_string(json_object *o, const char *key, char **out, struct df_err *err);

/* Reads every mapped key of o into r. */
int jm_read_fields(json_object *o, const struct field_key *map, struct record *r,
		   struct df_err *err);
/* Reads a JSON array of strings as a canonical set into r->value[f]. */
int jm_read_set(json_object *o, const char *key, struct record *r, int f, struct df_err *err);
/* Reads a boolean opt-out member into r->value[f] as "true"/"false"; an
 * absent member leaves the value NULL (the answer does not say). A member
 * that is not a boolean reads as "true", opted out, the safe direction
 * (I4), and is noted in r->problem naming parent.key (parent may be NULL)
 * so that it is reported. */
int jm_read_flag(json_object *o, const char *parent, const char *key, struct record *r, int f,
		 struct df_err *err);
/* Reads the record id (string or integer) into r->remote_id. */
int jm_read_id(json_object *o, const char *key, struct record *r, struct df_err *err);
/* Reads an ISO timestamp member into r->updated_ms. */
int jm_read_time(json_object *o, const char *key, struct record *r, struct df_err *err);

/* The JSON key of field f in map, NULL if the map has none. */
const char *jm_key(const struct field_key *map, int f);
/* Sets o[key] to value, or to JSON null when blank_as_null and value is blank. */
void jm_put(json_object *o, const char *key, const char *value, bool blank_as_null);
/* A JSON array of the members of a canonical set. */
json_object *jm_set_array(const char *set);

/* Appends a page record parsed by parse(); a DF_FAIL_INPUT failure becomes
 * a bad record instead of failing the page. */
int jm_page_add(struct connector_page *page, json_object *item, const char *id_key,
		int (*parse)(void *self, json_object *o, struct record *r, struct df_err *err),
		void *self, struct df_err *err);

/* The same for events. */
int jm_page_add_event(struct connector_page *page, json_object *item, const char *id_key,
		      int (*parse)(void *self, json_object *o, struct event *ev, struct df_err *err),
		      void *self, struct df_err *err);
/* Copies member key of o (string, number or boolean) to attribute attr. */
int jm_event_attr(json_object *o, const char *key, struct event *ev, const char *attr,
		  struct df_err *err);

/* One of OUR changed-since listings (tests/sim/README.md): GET
 * path?updated_since=&limit=&cursor= answering {items: [...], next: cursor}
 * sorted by (update time, id). Each item is parsed by record() or event(). */
struct jm_listing {
	const char *path;
	const char *items;      /* key of the item array */
	const char *next;       /* key of the next cursor */
	bool token_in_query;    /* Aloware: api_token=<token> in the query */
	int (*record)(void *self, json_object *o, struct record *r, struct df_err *err);
	int (*event)(void *self, json_object *o, struct event *ev, struct df_err *err);
	/* Key of a record's update time, for a record listing read the cheap
	 * way (jm_raw_listing); NULL: every item is parsed. */
	const char *time_key;
};
/*
 * A record listing's answer read the cheap way: the items are split by
 * their brackets, and an item the caller holds unchanged (page->same, by
 * its id and digest) is not parsed; the others are parsed by parse as
 * jm_page_add does. Returns 1 when the page is filled, with out->next the
 * cursor's text (not NUL-terminated, NULL when the answer has no string
 * there; borrowed from text) and out->last the final item's text; 0 when
 * the answer must be parsed whole (page->same unset, or a shape this
 * reader does not take: the page is left empty); -1 on failure (err).
 */
struct jm_raw {
	const char *items;      /* key of the item array */
	const char *next;       /* key of the next cursor, or NULL */
	const char *time_key;   /* key of a record's update time */
	int (*parse)(void *self, json_object *o, struct record *r, struct df_err *err);
};
struct jm_raw_out {
	const char *next;
	size_t next_len;
	const char *last;
	size_t last_len;
	size_t count;           /* items in the answer */
};
int jm_raw_listing(struct conn *c, const char *text, size_t len, const struct jm_raw *l,
		   struct connector_page *page, struct jm_raw_out *out, struct df_err *err);

/* Drops what a cheap read put in page (keeping page->same), for the
 * answer to be read whole. */
void jm_page_restart(struct connector_page *page);

int jm_list_page(struct conn *c, const struct jm_listing *l, long long since_ms, char **cursor,
		 struct connector_page *page, struct df_err *err);

char *jm_to_string(json_object *o);    /* compact text, caller frees */

/* The HTTP client for a configured system; auth is a header line or NULL.
 * It takes the run's limits from cfg: the deadline (counted from now) and
 * the largest answer it reads. */
struct http_client *jm_http_open(const struct system_conf *sc, const struct config *cfg,
				 const char *auth, struct df_err *err);

#endif
