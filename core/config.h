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

struct system_conf {
	char *name;                     /* connector name: ghl, aloware, verity */
	char *base_url;
	char *token;                    /* secret */
	char *token_source;             /* "inline" or the token file's path */
	char *location_id;              /* GHL sub-account */
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
	char *conversation_provider_id; /* GHL: for Call messages */
	int quota_reserve;              /* daily requests kept for reads and opt-outs */
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
	enum { OPTIN_NEVER, OPTIN_SAME_SYSTEM, OPTIN_LISTED } opt_in;
	bool opt_in_from[DF_MAX_SYSTEMS]; /* OPTIN_LISTED: who may opt back in */
	/* START/UNSTOP/YES texts: lift an SMS opt-out recorded by the system
	 * the text came through (default), any SMS opt-out, or none. */
	enum { KEYWORD_OPTIN_SAME_SYSTEM, KEYWORD_OPTIN_ANY, KEYWORD_OPTIN_NEVER } keyword_opt_in;
	char *lists_system;             /* the system holding call lists */
	int nlists;
	struct list_rule *lists;        /* GHL tag -> call list */
};

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
