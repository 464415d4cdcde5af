/*
 * oauth.c - renewing OAuth access tokens with a refresh token (see
 * oauth.h). Translation of the token endpoint's form and answer only; the
 * HTTP client decides when to renew (http_set_reauth).
 *
 * The old refresh token stops working once the server answers, so the new
 * pair must reach the disk: the file is checked writable before the
 * request, and a pair that cannot be stored is a credentials failure.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oauth.h"
#include "../core/log.h"
#include "../core/str.h"
#include "../core/tokenfile.h"

struct oauth {
	const struct system_conf *sc;
	struct http_client *http;       /* to the token endpoint, no bearer */
	char *access, *refresh;         /* secrets */
	long long expires_ms;
};

static void blank_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* A string member of o that is not blank, copied; NULL otherwise. */
static char *member(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string) ||
	    str_blank(json_object_get_string(v)))
		return NULL;
	return xstrdup(json_object_get_string(v));
}

static int parse_file(struct oauth *o, char *text, struct df_err *err)
{
	const char *path = o->sc->oauth_token_file;
	char *p = text, *end;
	json_object *j, *v;

	while (isspace((unsigned char)*p))
		p++;
	end = p + strlen(p);
	while (end > p && isspace((unsigned char)end[-1]))
		*--end = '\0';
	if (*p != '{') {
		/* The bare refresh token an admin put there. */
		if (*p == '\0' || strpbrk(p, " \t\r\n"))
			return df_fail(err, DF_FAIL_CONFIG, "token file %s holds neither JSON nor one refresh token",
				       path);
		o->refresh = xstrdup(p);
		return 0;
	}
	j = jm_parse_text(p, strlen(p));
	if (j == NULL || !json_object_is_type(j, json_type_object)) {
		json_object_put(j);
		return df_fail(err, DF_FAIL_CONFIG, "token file %s is not a JSON object", path);
	}
	o->refresh = member(j, "refresh_token");
	o->access = member(j, "access_token");
	if (json_object_object_get_ex(j, "expires_at", &v) && json_object_is_type(v, json_type_int))
		o->expires_ms = json_object_get_int64(v) * 1000LL;
	json_object_put(j);
	if (o->refresh == NULL)
		return df_fail(err, DF_FAIL_CONFIG, "token file %s has no refresh_token", path);
	if (o->access == NULL || o->expires_ms <= 0) {
		blank_free(o->access);
		o->access = NULL;
		o->expires_ms = 0;
	}
	return 0;
}

struct oauth *oauth_open(const struct system_conf *sc, const struct config *cfg, struct df_err *err)
{
	struct oauth *o = xcalloc(1, sizeof(*o));
	char *text = NULL;
	int rc;

	o->sc = sc;
	if (tokenfile_read(sc->oauth_token_file, &text, err)) {
		free(o);
		return NULL;
	}
	rc = parse_file(o, text, err);
	blank_free(text);
	if (rc == 0)
		o->http = jm_http_open(sc, cfg, NULL, err);
	if (rc || o->http == NULL) {
		oauth_free(o);
		return NULL;
	}
	return o;
}

void oauth_free(struct oauth *o)
{
	if (o == NULL)
		return;
	http_free(o->http);
	blank_free(o->access);
	blank_free(o->refresh);
	free(o);
}

const char *oauth_access(const struct oauth *o)
{
	return o->access;
}

long long oauth_expires_ms(const struct oauth *o)
{
	return o->access ? o->expires_ms : 0;
}

static void form_add(struct strbuf *sb, const char *key, const char *value)
{
	sb_addf(sb, "%s%s=", sb->len ? "&" : "", key);
	http_query_escape(sb, value);
}

/* The token endpoint's error code ("invalid_grant"), when it gives a short
 * plain one: the rest of its answer is never repeated (it may echo). */
static void error_code(const struct http_response *resp, char *out, size_t n)
{
	json_object *j = resp->body ? jm_parse_text(resp->body, resp->len) : NULL, *v;
	const char *code;

	out[0] = '\0';
	if (j && json_object_is_type(j, json_type_object) && json_object_object_get_ex(j, "error", &v) &&
	    json_object_is_type(v, json_type_string)) {
		code = json_object_get_string(v);
		if (strlen(code) < 40 && strspn(code, "abcdefghijklmnopqrstuvwxyz_") == strlen(code))
			snprintf(out, n, " %s", code);
	}
	json_object_put(j);
}

/* Writes the pair to the token file, 0600, atomically. */
static int store(struct oauth *o, struct df_err *err)
{
	json_object *j = json_object_new_object();
	char *text;
	int rc;

	json_object_object_add(j, "access_token", json_object_new_string(o->access));
	json_object_object_add(j, "refresh_token", json_object_new_string(o->refresh));
	json_object_object_add(j, "expires_at", json_object_new_int64(o->expires_ms / 1000));
	text = xasprintf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
	json_object_put(j);
	rc = tokenfile_write(o->sc->oauth_token_file, text, err);
	blank_free(text);
	return rc;
}

int oauth_renew(void *arg, struct http_auth *out, struct df_err *err)
{
	static const char *const form_hdr[] = { "Content-Type: application/x-www-form-urlencoded", NULL };
	struct oauth *o = arg;
	struct http_response resp;
	struct strbuf body;
	struct df_err e = { 0 };
	json_object *j = NULL, *v;
	char code[48], *access, *refresh;
	long long expires_in = 0;
	int rc;

	if (tokenfile_writable(o->sc->oauth_token_file, err))
		return df_wrap(err, "OAuth tokens not renewed (the new pair could not be kept)");
	sb_init(&body);
	form_add(&body, "client_id", o->sc->oauth_client_id);
	form_add(&body, "client_secret", o->sc->oauth_client_secret);
	form_add(&body, "grant_type", "refresh_token");
	form_add(&body, "refresh_token", o->refresh);
	form_add(&body, "user_type", "Location");
	rc = http_request(o->http, "POST", "/oauth/token", body.buf, form_hdr, &resp, &e);
	explicit_bzero(body.buf, body.len);
	sb_free(&body);
	if (rc) {
		error_code(&resp, code, sizeof(code));
		http_response_free(&resp);
		if (e.fail == DF_FAIL_REMOTE || e.fail == DF_FAIL_AUTH)
			return df_fail(err, DF_FAIL_AUTH, "OAuth token refresh refused (HTTP %ld%s): authorise the "
				       "app again and put its refresh token in %s", resp.status, code,
				       o->sc->oauth_token_file);
		return df_fail(err, DF_FAIL_AUTH, "OAuth token refresh failed (%s)%s", e.msg,
			       e.fail == DF_FAIL_UNKNOWN ? "; if the server renewed the pair, the refresh token "
			       "is lost: authorise the app again" : "");
	}
	j = jm_parse_text(resp.body, resp.len);
	http_response_free(&resp);
	access = j && json_object_is_type(j, json_type_object) ? member(j, "access_token") : NULL;
	refresh = access ? member(j, "refresh_token") : NULL;
	if (access && json_object_object_get_ex(j, "expires_in", &v) && json_object_is_type(v, json_type_int))
		expires_in = json_object_get_int64(v);
	json_object_put(j);
	if (access == NULL || expires_in <= 0) {
		blank_free(access);
		blank_free(refresh);
		return df_fail(err, DF_FAIL_AUTH, "OAuth token refresh answered without access_token or expires_in");
	}
	blank_free(o->access);
	o->access = access;
	if (refresh) {
		blank_free(o->refresh);
		o->refresh = refresh;
	}
	o->expires_ms = time_now_ms() + expires_in * 1000LL;
	if (store(o, err))
		return df_wrap(err, "OAuth tokens renewed but not kept: authorise the app again");
	log_info("event=token-renewed system=%s expires_in=%lld file=%s", o->sc->name, expires_in,
		 o->sc->oauth_token_file);
	out->header = xasprintf("Authorization: Bearer %s", o->access);
	out->secret = xstrdup(o->access);
	out->expires_ms = o->expires_ms;
	return 0;
}
