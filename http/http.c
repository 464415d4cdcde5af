/*
 * http.c - libcurl with reuse, rate limiting and retries.
 *
 * The retry loop is bounded twice: per request by max_attempts and per run
 * by max_requests, so no remote answer can keep a run alive for ever. Only
 * what http_classify allows is sent again in place: a POST whose answer did
 * not come may have been made, and a second one would be a duplicate.
 */
#include <curl/curl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "../core/log.h"
#include "../core/str.h"

#define ANSWER_RING 1024
#define HEADER_SETS 4

/* A request's header list, built once and kept for the client's life:
 * the same few sets (with or without a body, each connector's extra
 * headers) serve every request, and libcurl reads the list, never keeps
 * or changes it. */
struct header_set {
	struct curl_slist *list;        /* NULL: slot unused */
	struct curl_slist *extra;       /* where the caller's headers start in list */
	bool body;
};

struct http_client {
	CURL *curl;
	char errbuf[CURL_ERROR_SIZE];
	struct header_set hsets[HEADER_SETS];
	char *system;
	char *base_url;
	char *auth_header;
	char *secret;
	struct http_opts o;
	double tokens;          /* token bucket */
	long long refilled_ms;
	long sent;
	unsigned seed;
	/* The system refused our credentials earlier in this run: nothing
	 * more is sent to it (I11). -1: they could not be renewed. */
	long refused_status;
	/* What the server last said of its limits, when, and the requests
	 * sent since (counted off its remaining numbers). */
	struct http_limits lim;
	long long lim_ms;
	long lim_sent;
	/* When the answers to our latest requests came (a ring): if the
	 * server counts only ours, a slot frees an interval after the oldest. */
	long long answered_ms[ANSWER_RING];
	unsigned answered;
	/* Renewing expiring credentials (OAuth). */
	http_reauth_fn reauth;
	void *reauth_arg;
	long long auth_expires_ms;
	int reauths;
};

/* Renew credentials this long before they expire, and at most this often
 * in one run (a server that keeps refusing fresh tokens is refused). */
#define REAUTH_MARGIN_MS 120000LL
#define MAX_REAUTHS 4

static size_t on_body(char *data, size_t size, size_t n, void *arg);
static size_t on_header(char *data, size_t size, size_t n, void *arg);

/* The options that are the same for every request of the client, set once
 * on its handle (a reset per request cost as much again as building the
 * request; attempt() sets the rest each time). */
static void handle_setup(struct http_client *c)
{
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, 10L);
	if (c->o.max_body)
		curl_easy_setopt(c->curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->o.max_body);
	curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, c->o.tls_verify ? 1L : 0L);
	curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, c->o.tls_verify ? 2L : 0L);
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(c->curl, CURLOPT_TCP_NODELAY, 1L);
}

/* Drops the kept header lists (they hold the credentials). */
static void header_sets_free(struct http_client *c)
{
	for (int i = 0; i < HEADER_SETS; i++) {
		for (struct curl_slist *l = c->hsets[i].list; l; l = l->next)
			explicit_bzero(l->data, strlen(l->data));
		curl_slist_free_all(c->hsets[i].list);
		c->hsets[i] = (struct header_set){ 0 };
	}
}

struct http_client *http_new(const struct http_opts *opts, struct df_err *err)
{
	struct http_client *c = xcalloc(1, sizeof(*c));

	c->curl = curl_easy_init();
	if (c->curl == NULL) {
		free(c);
		df_fail(err, DF_FAIL_TEMP, "%s: cannot initialise libcurl", opts->system);
		return NULL;
	}
	c->o = *opts;
	c->system = xstrdup(opts->system);
	c->base_url = xstrdup(opts->base_url);
	c->auth_header = xstrdup(opts->auth_header);
	c->secret = xstrdup(opts->secret);
	c->o.system = c->system;
	c->o.base_url = c->base_url;
	c->o.auth_header = c->auth_header;
	c->o.secret = c->secret;
	c->tokens = opts->rate_limit;
	c->refilled_ms = time_now_ms();
	c->seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	http_limits_clear(&c->lim);
	handle_setup(c);
	return c;
}

void http_free(struct http_client *c)
{
	if (c == NULL)
		return;
	curl_easy_cleanup(c->curl);
	header_sets_free(c);
	free(c->system);
	free(c->base_url);
	if (c->auth_header)
		explicit_bzero(c->auth_header, strlen(c->auth_header));
	free(c->auth_header);
	if (c->secret)
		explicit_bzero(c->secret, strlen(c->secret));
	free(c->secret);
	free(c);
}

long http_requests_sent(const struct http_client *c)
{
	return c->sent;
}

void http_limits_clear(struct http_limits *l)
{
	l->burst_max = l->burst_remaining = l->interval_ms = l->retry_after = -1;
	l->daily_limit = l->daily_remaining = -1;
}

bool http_limits_header(const char *line, size_t len, struct http_limits *l)
{
	static const struct { const char *name; int which; } names[] = {
		{ "Retry-After", 0 }, { "X-RateLimit-Max", 1 }, { "X-RateLimit-Remaining", 2 },
		{ "X-RateLimit-Interval-Milliseconds", 3 }, { "X-RateLimit-Limit-Daily", 4 },
		{ "X-RateLimit-Daily-Remaining", 5 },
	};
	const char *colon = memchr(line, ':', len), *p, *end = line + len;
	long long v = 0;
	bool digits = false;

	if (colon == NULL)
		return false;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t n = strlen(names[i].name);
		if ((size_t)(colon - line) != n || strncasecmp(line, names[i].name, n) != 0)
			continue;
		for (p = colon + 1; p < end && (*p == ' ' || *p == '\t'); p++)
			;
		for (; p < end && *p >= '0' && *p <= '9'; p++) {
			if (v > (LLONG_MAX - 9) / 10)
				return true;    /* absurdly large: ignored */
			v = v * 10 + (*p - '0');
			digits = true;
		}
		while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
			p++;
		if (!digits || p != end)
			return true;    /* not a whole number (e.g. an HTTP date): ignored */
		switch (names[i].which) {
		case 0: l->retry_after = v > LONG_MAX ? LONG_MAX : (long)v; break;
		case 1: l->burst_max = v > LONG_MAX ? LONG_MAX : (long)v; break;
		case 2: l->burst_remaining = v > LONG_MAX ? LONG_MAX : (long)v; break;
		case 3: l->interval_ms = v > LONG_MAX ? LONG_MAX : (long)v; break;
		case 4: l->daily_limit = v; break;
		default: l->daily_remaining = v; break;
		}
		return true;
	}
	return false;
}

void http_limits_now(const struct http_client *c, struct http_limits *out)
{
	*out = c->lim;
	if (out->burst_remaining >= 0)
		out->burst_remaining = out->burst_remaining > c->lim_sent ? out->burst_remaining - c->lim_sent : 0;
	if (out->daily_remaining >= 0)
		out->daily_remaining = out->daily_remaining > c->lim_sent ? out->daily_remaining - c->lim_sent : 0;
}

void http_set_reauth(struct http_client *c, http_reauth_fn fn, void *arg, long long expires_ms)
{
	c->reauth = fn;
	c->reauth_arg = arg;
	c->auth_expires_ms = expires_ms;
}

void http_response_free(struct http_response *resp)
{
	free(resp->body);
	resp->body = NULL;
	resp->len = 0;
}

void http_path_escape(struct strbuf *sb, const char *s)
{
	if (s && (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)) {
		for (; *s; s++)
			sb_add(sb, "%2E");
		return;
	}
	http_query_escape(sb, s);
}

char *http_path(const char *prefix, const char *segment, const char *suffix)
{
	struct strbuf sb;

	sb_init(&sb);
	sb_add(&sb, prefix);
	http_path_escape(&sb, segment);
	if (suffix)
		sb_add(&sb, suffix);
	return sb_detach(&sb);
}

void http_query_escape(struct strbuf *sb, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || strchr("-_.~", ch)) {
			sb_addn(sb, (const char *)&ch, 1);
		} else {
			char e[3] = { '%', hex[ch >> 4], hex[ch & 15] };
			sb_addn(sb, e, 3);
		}
	}
}

static void sleep_ms(long long ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

	if (ms > 0)
		while (nanosleep(&ts, &ts) != 0)
			;
}

/* A whole interval has passed since the last answer: the burst allowance
 * is whole again; the requests sent since still count against the day. */
static void burst_renewed(struct http_client *c)
{
	if (c->lim.daily_remaining >= 0)
		c->lim.daily_remaining = c->lim.daily_remaining > c->lim_sent ? c->lim.daily_remaining - c->lim_sent : 0;
	c->lim.burst_remaining = c->lim.burst_max >= 0 ? c->lim.burst_max : -1;
	c->lim_ms = time_now_ms();
	c->lim_sent = 0;
}

/* When the server's window frees a slot for us, as far as we can know:
 * an interval after the last answer (every request it counted has then
 * left a sliding or a fixed window), or earlier, an interval after the
 * oldest answer of the window, when the requests the server counted are
 * exactly ours of the last interval (we answered them all; the answer
 * comes after the server counted the request, so this is never early).
 * *whole says the whole allowance is back then. */
static long long slot_free_ms(const struct http_client *c, bool *whole)
{
	long long from = c->lim_ms - c->lim.interval_ms, oldest = 0;
	long counted = c->lim.burst_max - c->lim.burst_remaining, ours = 0;

	*whole = true;
	if (c->lim.burst_max <= 0 || counted <= 0 || counted > ANSWER_RING || c->lim_sent > 0)
		return c->lim_ms + c->lim.interval_ms;
	for (unsigned k = 1; k <= ANSWER_RING && k <= c->answered; k++) {
		long long t = c->answered_ms[(c->answered - k) % ANSWER_RING];
		if (t <= from)
			break;
		ours++;
		oldest = t;
	}
	if (ours != counted)
		return c->lim_ms + c->lim.interval_ms;
	*whole = false;
	return oldest + c->lim.interval_ms + 1;
}

/* Blocks, within the run's deadline, while the server's burst allowance
 * (X-RateLimit-Remaining of the last answer, less what was sent since) is
 * used up, until a slot is free again (slot_free_ms). */
static void server_wait(struct http_client *c)
{
	long long until, now = time_now_ms();
	bool whole;

	if (c->lim.burst_remaining < 0 || c->lim.interval_ms <= 0 || c->lim_sent < c->lim.burst_remaining)
		return;
	until = slot_free_ms(c, &whole);
	if (c->o.deadline_ms > 0 && until > c->o.deadline_ms)
		until = c->o.deadline_ms;
	if (until > now) {
		log_info("event=rate-wait system=%s wait_ms=%lld reason=\"X-RateLimit-Remaining used up\"",
			 c->system, until - now);
		sleep_ms(until - now);
	}
	burst_renewed(c);
	if (!whole)
		c->lim.burst_remaining = 1;     /* the next answer says more */
}

/* Blocks until the bucket has a token for this system. */
static void rate_wait(struct http_client *c)
{
	double per_ms;
	long long now;

	server_wait(c);
	if (c->o.rate_limit <= 0)
		return;
	per_ms = c->o.rate_limit / (c->o.rate_window * 1000.0);
	for (;;) {
		now = time_now_ms();
		c->tokens += (double)(now - c->refilled_ms) * per_ms;
		if (c->tokens > c->o.rate_limit)
			c->tokens = c->o.rate_limit;
		c->refilled_ms = now;
		if (c->tokens >= 1.0) {
			c->tokens -= 1.0;
			return;
		}
		sleep_ms((long long)((1.0 - c->tokens) / per_ms) + 1);
	}
}

struct body {
	struct strbuf sb;
	size_t cap;             /* 0: none */
	bool too_large;
};

/* Refuses the rest of an answer past the cap: returning short makes libcurl
 * stop the transfer, so memory never holds more than cap bytes. */
static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct body *b = arg;

	if (b->cap && b->sb.len + size * n > b->cap) {
		b->too_large = true;
		return 0;
	}
	sb_addn(&b->sb, data, size * n);
	return size * n;
}

/* Milliseconds left before the deadline (at least 1 while any is left);
 * 0 when it has passed; LLONG_MAX without one. */
static long long time_left_ms(const struct http_client *c)
{
	long long left;

	if (c->o.deadline_ms <= 0)
		return LLONG_MAX;
	left = c->o.deadline_ms - time_now_ms();
	return left > 0 ? left : 0;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
	struct http_limits *lim = arg;
	size_t len = size * n;

	/* A status line starts the headers of each answer (also of an
	 * interim 100 Continue): only the final answer's values count. */
	if (len > 5 && strncmp(data, "HTTP/", 5) == 0)
		http_limits_clear(lim);
	else
		http_limits_header(data, len, lim);
	return len;
}

/* One attempt. Returns the HTTP status, or 0 on a transport failure with
 * the reason in why. Only what differs between requests is set here: every
 * option attempt sets, it sets on every call, so nothing of an earlier
 * request (a body, a method) carries over. */
static long attempt(struct http_client *c, const char *method, const char *url,
		    const char *body, struct curl_slist *hdrs, struct body *out,
		    struct http_limits *lim, bool *sent, char *why, size_t whylen)
{
	long request_size = 0;
	long long timeout_ms = c->o.timeout * 1000LL, left = time_left_ms(c);
	long status = 0;
	CURLcode rc;

	if (left < timeout_ms)
		timeout_ms = left;

	c->errbuf[0] = '\0';
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	if (body != NULL) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	} else {
		/* Back to a GET: no body of an earlier request is sent. */
		curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	}
	/* GET needs no custom method; any other is named (libcurl sends a
	 * body-less request as GET and one with a body as POST otherwise). */
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, strcmp(method, "GET") == 0 ? NULL : method);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, lim);
	rc = curl_easy_perform(c->curl);
	/* Bytes of the request that left us: none means the server cannot
	 * have acted on it. */
	*sent = curl_easy_getinfo(c->curl, CURLINFO_REQUEST_SIZE, &request_size) != CURLE_OK ||
		request_size > 0;
	if (out->too_large || rc == CURLE_FILESIZE_EXCEEDED) {
		out->too_large = true;
		snprintf(why, whylen, "the answer is larger than %zu MiB (max_response_mb)",
			 c->o.max_body >> 20);
		return 0;
	}
	if (rc == CURLE_OPERATION_TIMEDOUT && timeout_ms < c->o.timeout * 1000LL) {
		snprintf(why, whylen, "cut off at the run's deadline");
		return 0;
	}
	if (rc != CURLE_OK) {
		/* curl's message names host and port at most, never the query. */
		snprintf(why, whylen, "%s", c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
		return 0;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	return status;
}

static long long backoff_ms(struct http_client *c, int n)
{
	long long base = 250LL << (n < 8 ? n : 8);

	return base + rand_r(&c->seed) % (base / 2 + 1);
}

bool http_method_idempotent(const char *method)
{
	static const char *const idem[] = { "GET", "HEAD", "PUT", "DELETE", "PATCH" };

	for (size_t i = 0; i < sizeof(idem) / sizeof(idem[0]); i++)
		if (strcmp(method, idem[i]) == 0)
			return true;
	return false;
}

enum df_fail http_classify(long status, bool sent, bool idempotent, bool *again)
{
	*again = false;
	if (status >= 200 && status < 300)
		return DF_OK;
	if (status == 401 || status == 403)
		return DF_FAIL_AUTH;
	/* The server says it did not take the request: safe to repeat. */
	if (status == 408 || status == 429 || status == 503 || (status == 0 && !sent)) {
		*again = true;
		return DF_FAIL_TEMP;
	}
	/* It may have acted on it; only an idempotent request is repeated. */
	if (status == 0 || status == 500 || status == 502 || status == 504) {
		*again = idempotent;
		return idempotent ? DF_FAIL_TEMP : DF_FAIL_UNKNOWN;
	}
	return DF_FAIL_REMOTE;
}

void http_excerpt(struct strbuf *sb, const char *text, size_t max, const char *const *secrets,
		  int nsecrets)
{
	size_t start = sb->len;

	while (text && *text && sb->len - start < max) {
		size_t n = 0;
		for (int k = 0; k < nsecrets && n == 0; k++)
			if (secrets[k] && *secrets[k] && strncmp(text, secrets[k], strlen(secrets[k])) == 0)
				n = strlen(secrets[k]);
		if (n) {
			sb_add(sb, "[redacted]");
			text += n;
		} else {
			char ch = (unsigned char)*text < 0x20 || *text == 0x7f ? ' ' : *text;
			if (!(ch == ' ' && sb->len > start && sb->buf[sb->len - 1] == ' '))
				sb_addn(sb, &ch, 1);
			text++;
		}
	}
	if (text && *text) {
		/* Cut: never end inside a UTF-8 sequence. */
		while (sb->len > start && ((unsigned char)sb->buf[sb->len - 1] & 0xC0) == 0x80)
			sb->len--;
		if (sb->len > start && (unsigned char)sb->buf[sb->len - 1] >= 0xC0)
			sb->len--;
		sb->buf[sb->len] = '\0';
		sb_add(sb, "...");
	}
}

/* The excerpt of an answer with every secret of the request blanked: the
 * token, the credential of the auth header and the query's values (a
 * system that echoes the request must not carry a token into a log or the
 * state file). */
static void add_excerpt(struct strbuf *sb, const struct http_client *c, const char *path,
			const char *text, size_t max)
{
	const char *secrets[16];
	int nsec = 0;
	char *q = strchr(path, '?') ? xstrdup(strchr(path, '?') + 1) : NULL, *save = NULL;

	if (c->secret && strlen(c->secret) >= 4)
		secrets[nsec++] = c->secret;
	if (c->auth_header && strrchr(c->auth_header, ' ') && strlen(strrchr(c->auth_header, ' ') + 1) >= 4)
		secrets[nsec++] = strrchr(c->auth_header, ' ') + 1;
	for (char *tok = q ? strtok_r(q, "&", &save) : NULL; tok && nsec < 16; tok = strtok_r(NULL, "&", &save))
		if (strchr(tok, '=') && strlen(strchr(tok, '=') + 1) >= 4)
			secrets[nsec++] = strchr(tok, '=') + 1;
	http_excerpt(sb, text, max, secrets, nsec);
	free(q);
}

#define EXCERPT_MAX 200

/* Whether the caller's part of a kept header list is exactly headers. */
static bool extra_same(const struct curl_slist *l, const char *const *headers)
{
	int i = 0;

	for (; l && headers && headers[i]; l = l->next, i++)
		if (strcmp(l->data, headers[i]) != 0)
			return false;
	return l == NULL && (headers == NULL || headers[i] == NULL);
}

/* The request's headers: Accept, a JSON Content-Type unless the caller
 * gives its own, no "Expect: 100-continue" (libcurl would otherwise wait
 * for the server's go-ahead, a round trip, before a body over 1 kB), the
 * User-Agent (as a header: CURLOPT_USERAGENT is formatted again for each
 * request), the credentials, then the caller's. Built once per set and kept (borrowed:
 * the client owns it); the oldest set gives way when all slots are used. */
static struct curl_slist *headers_for(struct http_client *c, const char *body,
				      const char *const *headers)
{
	struct header_set *hs;
	struct curl_slist *hdrs, *tail;
	bool own_type = false;
	int i;

	for (i = 0; i < HEADER_SETS && c->hsets[i].list; i++)
		if (c->hsets[i].body == (body != NULL) && extra_same(c->hsets[i].extra, headers))
			return c->hsets[i].list;
	if (i == HEADER_SETS) {
		/* All used: the first gives way (a client uses two or three). */
		for (struct curl_slist *l = c->hsets[0].list; l; l = l->next)
			explicit_bzero(l->data, strlen(l->data));
		curl_slist_free_all(c->hsets[0].list);
		memmove(&c->hsets[0], &c->hsets[1], (HEADER_SETS - 1) * sizeof(c->hsets[0]));
		i = HEADER_SETS - 1;
	}
	hs = &c->hsets[i];
	for (int k = 0; headers && headers[k]; k++)
		own_type |= strncasecmp(headers[k], "Content-Type:", 13) == 0;
	hdrs = curl_slist_append(NULL, "Accept: application/json");
	if (body && !own_type)
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "Expect:");
	hdrs = curl_slist_append(hdrs, "User-Agent: dfreconcile/" DF_VERSION);
	if (c->auth_header)
		hdrs = curl_slist_append(hdrs, c->auth_header);
	for (tail = hdrs; tail->next; tail = tail->next)
		;
	for (int k = 0; headers && headers[k]; k++)
		hdrs = curl_slist_append(hdrs, headers[k]);
	*hs = (struct header_set){ .list = hdrs, .extra = tail->next, .body = body != NULL };
	return hdrs;
}

static void replace_secret(char **slot, char *with)
{
	if (*slot) {
		explicit_bzero(*slot, strlen(*slot));
		free(*slot);
	}
	*slot = with;
}

/* Renews the credentials through the connector's hook. On failure the
 * system is refused for the rest of the run, as after a 401. */
static int renew(struct http_client *c, struct df_err *err)
{
	struct http_auth a = { 0 };
	struct df_err e = { 0 };

	if (c->reauths >= MAX_REAUTHS) {
		c->refused_status = -1;
		return df_fail(err, DF_FAIL_AUTH, "%s: credentials refused again after %d renewals in this run; "
			       "nothing more is sent to %s in this run", c->system, c->reauths, c->system);
	}
	c->reauths++;
	if (c->reauth(c->reauth_arg, &a, &e)) {
		c->refused_status = -1;
		return df_fail(err, DF_FAIL_AUTH, "%s: credentials could not be renewed: %s; nothing more is "
			       "sent to %s in this run", c->system, e.msg, c->system);
	}
	header_sets_free(c);       /* they carry the old credentials */
	replace_secret(&c->auth_header, a.header);
	replace_secret(&c->secret, a.secret);
	c->o.auth_header = c->auth_header;
	c->o.secret = c->secret;
	c->auth_expires_ms = a.expires_ms;
	return 0;
}

/* The time to wait before sending again after a 429 or 503: Retry-After,
 * else the server's interval when its burst allowance is used up, else
 * the backoff. -1 when waiting would exceed max_retry_after. */
static long long wait_before_again(struct http_client *c, long status, const struct http_limits *lim,
				   int n, struct df_err *err)
{
	long long wait = backoff_ms(c, n);

	if (lim->retry_after >= 0) {
		if (lim->retry_after > c->o.max_retry_after) {
			df_wrap(err, "Retry-After %lds exceeds max_retry_after", lim->retry_after);
			return -1;
		}
		wait = lim->retry_after * 1000LL;
	} else if (status == 429 && lim->burst_remaining == 0 && lim->interval_ms > 0) {
		if (lim->interval_ms > c->o.max_retry_after * 1000LL) {
			df_wrap(err, "X-RateLimit-Interval-Milliseconds %ld exceeds max_retry_after",
				lim->interval_ms);
			return -1;
		}
		wait = lim->interval_ms;
	}
	return wait;
}

static int request(struct http_client *c, const char *method, const char *path,
		   const char *body, const char *const *headers, bool idempotent,
		   struct http_response *resp, struct df_err *err)
{
	struct curl_slist *hdrs = NULL;
	char *url;
	size_t plen = strcspn(path, "?");
	char why[CURL_ERROR_SIZE + 32] = "";
	int n, rc = -1;
	bool renewed = false;

	memset(resp, 0, sizeof(*resp));
	if (c->refused_status) {
		if (c->refused_status < 0)
			return df_fail(err, DF_FAIL_AUTH, "%s: credentials could not be renewed earlier in this "
				       "run; %s %.*s not sent", c->system, method, (int)plen, path);
		return df_fail(err, DF_FAIL_AUTH, "%s: credentials refused (HTTP %ld) earlier in this run; "
			       "%s %.*s not sent", c->system, c->refused_status, method, (int)plen, path);
	}
	url = xasprintf("%s%s", c->base_url, path);

	for (n = 0; n < c->o.max_attempts; n++) {
		struct body out = { .cap = c->o.max_body };
		struct http_limits lim;
		long status;
		long long wait;
		bool sent = true, again;
		enum df_fail fail;

		if (c->sent >= c->o.max_requests) {
			df_fail(err, DF_FAIL_BUDGET, "%s: request budget of %d for this run is used up; "
				"%s %.*s not sent", c->system, c->o.max_requests, method, (int)plen, path);
			break;
		}
		if (c->lim.daily_remaining >= 0 && c->lim_sent >= c->lim.daily_remaining) {
			df_fail(err, DF_FAIL_BUDGET, "%s: the daily request quota is used up "
				"(X-RateLimit-Daily-Remaining 0 of %lld); %s %.*s not sent", c->system,
				c->lim.daily_limit, method, (int)plen, path);
			break;
		}
		if (c->reauth && c->auth_expires_ms - REAUTH_MARGIN_MS <= time_now_ms() &&
		    renew(c, err))
			break;
		rate_wait(c);
		if (time_left_ms(c) == 0) {
			df_fail(err, DF_FAIL_BUDGET, "%s: the run's deadline has passed; %s %.*s not sent",
				c->system, method, (int)plen, path);
			break;
		}
		c->sent++;
		c->lim_sent++;
		sb_init(&out.sb);
		http_limits_clear(&lim);
		hdrs = headers_for(c, body, headers);
		status = attempt(c, method, url, body, hdrs, &out, &lim, &sent, why, sizeof(why));
		log_debug("event=http system=%s method=%s path=%.*s status=%ld attempt=%d",
			  c->system, method, (int)plen, path, status, n + 1);
		if (status != 0)
			c->answered_ms[c->answered++ % ANSWER_RING] = time_now_ms();
		if (status != 0 && (lim.burst_remaining >= 0 || lim.daily_remaining >= 0)) {
			c->lim = lim;
			c->lim.retry_after = -1;
			c->lim_ms = time_now_ms();
			c->lim_sent = 0;
		}
		http_response_free(resp);
		resp->status = status;
		resp->len = out.sb.len;
		resp->body = sb_detach(&out.sb);
		fail = http_classify(status, sent, idempotent, &again);
		if (fail == DF_OK) {
			rc = 0;
			break;
		}
		if (out.too_large) {
			/* The same request would bring the same answer; a create
			 * may have been made all the same. */
			df_fail(err, idempotent ? DF_FAIL_REMOTE : DF_FAIL_UNKNOWN, "%s: %s %.*s: %s", c->system,
				method, (int)plen, path, why);
			break;
		}
		if (status == 401 && c->reauth && !renewed) {
			/* Expired (or revoked) early: renew once, send again. */
			log_info("event=credentials-expired system=%s method=%s path=%.*s", c->system, method,
				 (int)plen, path);
			renewed = true;
			if (renew(c, err))
				break;
			n--;
			continue;
		}
		if (fail == DF_FAIL_AUTH) {
			c->refused_status = status;
			df_fail(err, DF_FAIL_AUTH, "%s: credentials refused (HTTP %ld) on %s %.*s: check its token; "
				"nothing more is sent to %s in this run", c->system, status, method, (int)plen, path,
				c->system);
			break;
		}
		if (status == 429 && lim.daily_remaining == 0) {
			/* The day's quota is spent: the server did not take it, and
			 * no retry within this run can succeed. */
			df_fail(err, DF_FAIL_BUDGET, "%s: the daily request quota is used up (HTTP 429, "
				"X-RateLimit-Daily-Remaining 0 of %lld); %s %.*s not sent", c->system,
				lim.daily_limit, method, (int)plen, path);
			break;
		}
		if (fail == DF_FAIL_REMOTE) {
			struct strbuf msg;
			sb_init(&msg);
			sb_addf(&msg, "%s: %s %.*s: HTTP %ld", c->system, method, (int)plen, path, status);
			if (resp->body && *resp->body) {
				sb_add(&msg, ": ");
				add_excerpt(&msg, c, path, resp->body, EXCERPT_MAX);
			}
			df_fail(err, DF_FAIL_REMOTE, "%s", msg.buf);
			sb_free(&msg);
			break;
		}
		if (status != 0)
			snprintf(why, sizeof(why), "HTTP %ld", status);
		if (fail == DF_FAIL_UNKNOWN) {
			df_fail(err, DF_FAIL_UNKNOWN, "%s: %s %.*s: %s: outcome unknown; not sent again",
				c->system, method, (int)plen, path, why);
			break;
		}
		df_fail(err, DF_FAIL_TEMP, "%s: %s %.*s: %s after %d attempt%s", c->system, method,
			(int)plen, path, why, n + 1, n ? "s" : "");
		if (!again || n + 1 >= c->o.max_attempts)
			break;
		if ((wait = wait_before_again(c, status, &lim, n, err)) < 0)
			break;
		if (wait >= time_left_ms(c)) {
			df_wrap(err, "no time left before the run's deadline to try again");
			break;
		}
		log_info("event=retry system=%s method=%s path=%.*s status=%ld wait_ms=%lld",
			 c->system, method, (int)plen, path, status, wait);
		sleep_ms(wait);
		if (status == 429 && lim.retry_after < 0 && lim.burst_remaining == 0) {
			/* The interval was waited out just now. */
			burst_renewed(c);
		}
	}
	free(url);
	return rc;
}

int http_request(struct http_client *c, const char *method, const char *path,
		 const char *body, const char *const *headers,
		 struct http_response *resp, struct df_err *err)
{
	return request(c, method, path, body, headers, http_method_idempotent(method), resp, err);
}

int http_request_read(struct http_client *c, const char *method, const char *path,
		      const char *body, const char *const *headers,
		      struct http_response *resp, struct df_err *err)
{
	return request(c, method, path, body, headers, true, resp, err);
}

static size_t discard(char *ptr, size_t size, size_t n, void *arg)
{
	(void)ptr;
	(void)arg;
	return size * n;
}

int http_ping(const char *url, bool failed, int timeout_s, struct df_err *err)
{
	size_t len = strlen(url);
	char *target = failed ? xasprintf("%s%sfail", url, len && url[len - 1] == '/' ? "" : "/") : xstrdup(url);
	CURL *h = curl_easy_init();
	CURLcode cc;
	long status = 0;
	int rc = 0;

	if (h == NULL) {
		free(target);
		return df_fail(err, DF_FAIL_TEMP, "health check: cannot start libcurl");
	}
	curl_easy_setopt(h, CURLOPT_URL, target);
	curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)timeout_s);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)timeout_s);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "dfreconcile/" DF_VERSION);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	cc = curl_easy_perform(h);
	if (cc != CURLE_OK)
		rc = df_fail(err, DF_FAIL_TEMP, "health check: %s", curl_easy_strerror(cc));
	else if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && (status < 200 || status > 299))
		rc = df_fail(err, DF_FAIL_REMOTE, "health check: HTTP %ld", status);
	curl_easy_cleanup(h);
	free(target);
	return rc;
}
