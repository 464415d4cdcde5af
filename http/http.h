/*
 * http.h - the one HTTP layer under every connector.
 *
 * One client per system keeps one libcurl handle, so the connection is
 * reused for the whole run. The client owns the politeness rules: a token
 * bucket per system (rate_limit requests per rate_window seconds), retries
 * of 408, 429, 500, 502, 503, 504 and transport failures with exponential
 * backoff and jitter (Retry-After honoured up to max_retry_after), at most
 * max_attempts tries per request and max_requests requests per run. Log
 * lines carry the method, the path without its query string and the
 * status: never a header, a query (Aloware puts its token there) or a body.
 * Two more bounds keep one remote side from holding a run: an answer larger
 * than max_body is refused as it arrives (never buffered whole), and nothing
 * is sent once the run's deadline has passed (a request in flight is cut at
 * it; DF_FAIL_BUDGET, nothing was sent).
 *
 * Every outcome is classified once, here (http_classify, I11):
 *   401, 403          DF_FAIL_AUTH: the client then refuses to send anything
 *                     more to this system for the rest of the run
 *   408, 429, 503     DF_FAIL_TEMP: the server did not take the request, so
 *                     even a POST is sent again in place
 *   500, 502, 504,    DF_FAIL_TEMP for an idempotent request (GET, PUT,
 *   network after     DELETE, PATCH, a read-only POST), retried in place;
 *   sending           DF_FAIL_UNKNOWN for a POST: it may have been made, so
 *                     it is never sent again in place
 *   network before    DF_FAIL_TEMP, retried in place (nothing was sent)
 *   sending
 *   other statuses    DF_FAIL_REMOTE, final for this request; the message
 *                     holds the status and a short excerpt of the answer
 *   budget used up    DF_FAIL_BUDGET: nothing was sent
 *   daily quota       DF_FAIL_BUDGET: the server said none is left today
 *   used up           (X-RateLimit-Daily-Remaining 0, or a 429 with it), so
 *                     nothing is sent until a later run
 *
 * Limits the server states (GHL's X-RateLimit-* headers, read from every
 * answer) pace the client on top of its own token bucket: within the
 * stated interval it never sends more than X-RateLimit-Remaining allowed,
 * and waits out the interval when that is used up. A 429 without
 * Retry-After waits the stated interval (or backs off when none is known).
 * What the server said is kept for the connector (http_limits).
 *
 * Credentials that expire (OAuth) are renewed through a hook the connector
 * sets (http_set_reauth): called before a request when the access token is
 * due to expire, and once when an answer is 401; the request is then sent
 * again with the new token. A hook that fails stops the system for the run
 * as a 401 does (DF_FAIL_AUTH).
 */
#ifndef DF_HTTP_H
#define DF_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "../core/err.h"
#include "../core/str.h"

struct http_opts {
	const char *system;             /* for log lines */
	const char *base_url;
	const char *auth_header;        /* e.g. "Authorization: Bearer ..."; may be NULL */
	const char *secret;             /* the system's token: never in an error; may be NULL */
	int timeout;
	int max_attempts;
	int max_retry_after;
	int rate_limit;
	double rate_window;
	int max_requests;
	bool tls_verify;
	size_t max_body;                /* bytes; 0 = no cap */
	long long deadline_ms;          /* wall clock ms; 0 = none */
};

struct http_response {
	long status;
	char *body;             /* NUL-terminated, owned */
	size_t len;
};

struct http_client;

/* What the server said of its limits; -1 where it said nothing. */
struct http_limits {
	long burst_max;                 /* X-RateLimit-Max */
	long burst_remaining;           /* X-RateLimit-Remaining */
	long interval_ms;               /* X-RateLimit-Interval-Milliseconds */
	long long daily_limit;          /* X-RateLimit-Limit-Daily */
	long long daily_remaining;      /* X-RateLimit-Daily-Remaining */
	long retry_after;               /* Retry-After, seconds */
};

/* Sets every member of l to -1 (nothing known). */
void http_limits_clear(struct http_limits *l);
/* Reads one header line (as libcurl hands it: "Name: value\r\n", len
 * bytes, not NUL-terminated) into l when it is one of the headers above;
 * names are case-insensitive, a value that is not a whole non-negative
 * number is ignored. Returns whether the line was one of them. Pure. */
bool http_limits_header(const char *line, size_t len, struct http_limits *l);

/* Copies what it needs from opts. NULL with err on failure. */
struct http_client *http_new(const struct http_opts *opts, struct df_err *err);
void http_free(struct http_client *c);

/* Sends method base_url+path (path may carry a query) with an optional JSON
 * body and extra headers (NULL-terminated, may be NULL). Returns 0 on a 2xx
 * answer. Otherwise -1 with err classified as above: for DF_FAIL_REMOTE resp
 * holds status and body so callers can read e.g. a 404 or a duplicate's id.
 * The caller frees resp in every case. */
int http_request(struct http_client *c, const char *method, const char *path,
		 const char *body, const char *const *headers,
		 struct http_response *resp, struct df_err *err);
/* The same for a POST that only reads (a search): retried in place like a
 * GET, since sending it twice changes nothing. */
int http_request_read(struct http_client *c, const char *method, const char *path,
		      const char *body, const char *const *headers,
		      struct http_response *resp, struct df_err *err);

/* What one attempt's outcome means. status is the HTTP status, 0 for a
 * transport failure; sent says whether any of the request left us (only
 * read for status 0); idempotent says sending it twice changes nothing.
 * *again says the request may be sent again within this call. Pure. */
enum df_fail http_classify(long status, bool sent, bool idempotent, bool *again);
/* Whether method is idempotent by itself (GET, HEAD, PUT, DELETE, PATCH:
 * our PATCHes set fields to values, so a second one changes nothing). */
bool http_method_idempotent(const char *method);
void http_response_free(struct http_response *resp);

long http_requests_sent(const struct http_client *c);

/* The limits of the last answer that stated them, with the requests sent
 * since counted off the remaining ones (an estimate of what is left now). */
void http_limits_now(const struct http_client *c, struct http_limits *out);

/* New credentials from a reauth hook; the client takes the strings. */
struct http_auth {
	char *header;                   /* "Authorization: Bearer ..." */
	char *secret;                   /* the token, blanked in excerpts */
	long long expires_ms;           /* wall clock ms; 0 = unknown */
};
/* Returns 0 with *out filled, or -1 with err (any class: the client
 * reports it as DF_FAIL_AUTH). */
typedef int (*http_reauth_fn)(void *arg, struct http_auth *out, struct df_err *err);
/* Sets the hook that renews the credentials (arg stays the caller's).
 * expires_ms is when the current ones expire (0: renew before the first
 * request, as when none are known yet). */
void http_set_reauth(struct http_client *c, http_reauth_fn fn, void *arg, long long expires_ms);

/* One GET to url (a health check's ping: url, or url/fail when failed),
 * bounded by timeout_s in all, never retried, answer discarded. url is a
 * secret: the error names only the outcome (a curl error or the status). */
int http_ping(const char *url, bool failed, int timeout_s, struct df_err *err);

/* Appends to sb at most max bytes of text (an answer's body) on one line:
 * control characters become spaces, each of the nsecrets strings secrets
 * becomes "[redacted]", and a cut text ends with "..." (never inside a
 * UTF-8 sequence). Pure. */
void http_excerpt(struct strbuf *sb, const char *text, size_t max, const char *const *secrets,
		  int nsecrets);

/* Appends s to buf percent-encoded for a query value. */
void http_query_escape(struct strbuf *sb, const char *s);
/* Appends s percent-encoded as ONE path segment: everything but A-Z a-z
 * 0-9 - _ . ~ is encoded ('/' too), and a segment that is "." or ".." has
 * its dots encoded, so a remote id can never name another path. */
void http_path_escape(struct strbuf *sb, const char *s);
/* prefix + the path-escaped segment + suffix (may be NULL); caller frees.
 * Every connector builds a path holding a remote id with this. */
char *http_path(const char *prefix, const char *segment, const char *suffix);

#endif
