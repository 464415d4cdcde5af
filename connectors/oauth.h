/*
 * oauth.h - OAuth 2.0 refresh-token credentials for a connector (GHL).
 *
 * The token file (oauth_token_file) holds the pair as JSON,
 * {"access_token": "...", "refresh_token": "...", "expires_at": <epoch s>};
 * an admin may start it with the refresh token alone, as JSON or as the bare
 * token on one line. The access token is renewed with POST /oauth/token
 * (grant_type=refresh_token, form-encoded) when it is due to expire or an
 * answer is 401; the server rotates the refresh token, so the new pair is
 * written back (tokenfile_write: 0600, atomic) before it is used. No token
 * ever goes into a log line, an error message or the state file.
 */
#ifndef DF_OAUTH_H
#define DF_OAUTH_H

#include "jsonmap.h"

struct oauth;

/* Reads sc->oauth_token_file. NULL with err (DF_FAIL_CONFIG) when it
 * cannot be read or holds no refresh token. */
struct oauth *oauth_open(const struct system_conf *sc, const struct config *cfg, struct df_err *err);
void oauth_free(struct oauth *o);
/* The stored access token while it is valid, else NULL (borrowed). */
const char *oauth_access(const struct oauth *o);
/* When the stored access token expires (wall clock ms; 0 when none). */
long long oauth_expires_ms(const struct oauth *o);
/* The http_reauth_fn: renews the pair, stores it, fills out. */
int oauth_renew(void *arg, struct http_auth *out, struct df_err *err);

#endif
