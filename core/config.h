/*
 * config.h - the run's configuration, read once with libconfig and checked
 * completely before any state is opened or any request is sent.
 *
 * Errors name the file, the line and the setting. Tokens are read from the
 * file or from the token_file it names; they live only in system_conf.token
 * and are never printed (check-config says where a token came from, not
 * what it is).
 */
#ifndef DF_CONFIG_H
#define DF_CONFIG_H

#include <stdbool.h>

#include "err.h"
#include "log.h"
#include "record.h"
#include "rule.h"

/*
 * A system's own settings. Every connector declares, in a table, the
 * settings only it takes (GHL: location_id, conversation_provider_id): the
 * loader reads them from that table (type, default, bounds), check-config
 * prints them, and tests/e2e/test_docs.py holds the man page and the
 * example configuration to them. The settings every system takes
 * (base_url, token, rate_limit, page_size, lookback, timeout, ...) stay
 * here in core. The tables are handed to the loader from above
 * (config_set_kinds, by main), so core knows no connector.
 */
enum setting_type { SETTING_STRING, SETTING_INT, SETTING_BOOL };

struct setting {
	const char *name;               /* NULL ends a table */
	enum setting_type type;
	const char *def;                /* default as text; NULL: unset */
	long long min, max;             /* bounds of an int */
	bool required;
	bool shapes_writes;             /* part of config_fingerprint (I11) */
	const char *help;               /* one line for check-config */
};

/* What the loader must know of a kind of system (a connector). */
struct system_kind {
	const char *name;               /* the group name under systems */
	const struct setting *settings; /* its own settings */
	int max_page_size;              /* upper bound of page_size */
	int default_rate_limit;         /* requests per rate_window */
	/* Its listings are only our contract (a relay): listing and events
	 * are off unless configured. */
	bool listing_ours;
	/* Call lists (it can be call_lists.system): the members of a rule that
	 * name the rule's target here, NULL-terminated, and how they make the
	 * target list_change is given. values[i] is keys[i]'s text or NULL.
	 * On error: -1, why, and *at the index of the member at fault (-1:
	 * the rule as a whole). NULL for a system without call lists. */
	const char *const *list_keys;
	int (*list_target)(const char *const *values, char **target, int *at, char *why, size_t n);
	/* Its address fields win unless blank by default (GHL). */
	bool address_authority;
	/* Its tokens may be OAuth access tokens renewed with a refresh token
	 * (the oauth_* settings, credentials read by core like token). */
	bool oauth;
};

#define DF_MAX_OWN 16

struct system_conf {
	char *name;                     /* connector name: ghl, aloware, verity */
	const struct system_kind *kind;
	char *own[DF_MAX_OWN];          /* kind->settings' values as text; NULL unset */
	char *base_url;
	char *token;                    /* secret */
	char *token_source;             /* "inline" or the token file's path */
	int rate_limit;                 /* requests per rate_window; 0 = none */
	double rate_window;             /* seconds */
	int page_size;
	int lookback;                   /* seconds re-read behind the cursor */
	int timeout;                    /* seconds per request */
	int max_attempts;               /* tries per request within a run */
	int max_retry_after;            /* longest Retry-After honoured, s */
	int max_requests;               /* request budget per run */
	bool tls_verify;
	bool create;                    /* create missing contacts here */
	bool listing;                   /* it serves a changed-since listing */
	bool events;                    /* ... and one of its calls/messages */
	int sweep;                      /* linked records re-read per run */
	int sweep_interval;             /* s before a record is re-read again */
	bool propagate_deletes;         /* a delete here deletes elsewhere */
	int delete_checks;              /* missing records confirmed per run */
	int quota_reserve;              /* daily requests kept for reads and opt-outs */
	/* s: an update of a record known as of less than this long ago in
	 * this run is sent without reading the record again; 0 = always read
	 * (engine/write.c, known_recently). */
	int recheck_after;
	/* OAuth instead of a static token (GHL): the app's client id and
	 * secret, and the file holding the refresh (and access) token, which
	 * the connector rewrites when it renews them. token is NULL then. */
	char *oauth_client_id;
	char *oauth_client_secret;      /* secret */
	char *oauth_token_file;
	char *field_key[DF_MAX_FIELDS]; /* custom field -> this system's key */
};

struct list_rule {
	char *tag;              /* tag text, or a regular expression */
	enum { MATCH_EXACT, MATCH_NOCASE, MATCH_REGEX } match;
	void *regex;            /* compiled regex_t for MATCH_REGEX */
	char *list_id;          /* the call list in the lists system */
};

struct config {
	char *path;
	char *state_path;
	char *lock_path;
	char *default_country;
	enum log_level log_level;
	enum log_target log_target;
	enum log_format log_format;
	int nsys;
	struct system_conf sys[DF_MAX_SYSTEMS];   /* source-of-truth order */
	struct merge_rule rule[DF_MAX_FIELDS];
	char *keep_tag_prefix;
	double max_change_share;        /* safety valve, 0..1 */
	int safety_min_records;
	int write_max_attempts;         /* runs a failed write is tried in */
	int write_backoff;              /* seconds, doubled per failed attempt */
	int max_pages;                  /* per system per run */
	int deadline;                   /* s a run may take before it stops sending */
	int max_response_mb;            /* largest answer read, MiB */
	int progress_interval;          /* s between progress lines */
	char *metrics_file;             /* Prometheus textfile after each run; NULL: none */
	char *healthcheck_url;          /* pinged after each run; NULL: none. A secret
					 * (it authorises pings): never printed */
	enum { OPTIN_NEVER, OPTIN_SAME_SYSTEM, OPTIN_LISTED } opt_in;
	bool opt_in_from[DF_MAX_SYSTEMS]; /* OPTIN_LISTED: who may opt back in */
	/* START/UNSTOP/YES texts: lift an SMS opt-out recorded by the system
	 * the text came through (default), any SMS opt-out, or none. */
	enum { KEYWORD_OPTIN_SAME_SYSTEM, KEYWORD_OPTIN_ANY, KEYWORD_OPTIN_NEVER } keyword_opt_in;
	char *lists_system;             /* the system holding call lists */
	int nlists;
	struct list_rule *lists;        /* GHL tag -> call list */
};

/* The kinds of system the loader knows (NULL-terminated); set once by
 * main before any config_load. */
void config_set_kinds(const struct system_kind *const *kinds);
/* The value of sc's own setting name as text, NULL when unset. */
const char *config_own(const struct system_conf *sc, const char *name);
/* Its value as a number (an int or bool setting; 0 when unset). */
long long config_own_num(const struct system_conf *sc, const char *name);

/* Reads and checks path. On error returns NULL with err (class CONFIG)
 * naming file, line and setting. */
struct config *config_load(const char *path, struct df_err *err);
/* The same without reading token files (their tokens stay NULL): for the
 * report and status, which talk to no system and may run as an auditor. */
struct config *config_load_public(const char *path, struct df_err *err);
void config_free(struct config *cfg);

/* Index of the named system, -1 if it is not configured. */
int config_system(const struct config *cfg, const char *name);
/* Names of the configured systems, in order, for merge_rule_parse. */
void config_system_names(const struct config *cfg, const char **names);
/* Writes a human summary without secrets to stdout (check-config). */
void config_print(const struct config *cfg);
/* A fingerprint (16 hex digits into out) of the settings that shape what
 * is sent to a system, without any secret: a write a system refused is
 * tried again once it changes (I11). */
void config_fingerprint(const struct config *cfg, char out[17]);

#endif
