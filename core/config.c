/*
 * config.c - loading and checking the libconfig file.
 *
 * Relative paths in the file (state_path, token_file) are taken relative to
 * the directory of the configuration file, so a tenant's directory can be
 * moved as a whole.
 */
#include <errno.h>
#include <stdarg.h>
#include <libconfig.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "normalize.h"
#include "str.h"

static const struct system_kind *const *kinds;

void config_set_kinds(const struct system_kind *const *k)
{
	kinds = k;
}

static const struct system_kind *kind_find(const char *name)
{
	for (int i = 0; kinds && kinds[i]; i++)
		if (strcmp(kinds[i]->name, name) == 0)
			return kinds[i];
	return NULL;
}

/* "ghl, aloware, verity, texting" for an error message. */
static void kind_names(char *out, size_t n)
{
	size_t len = 0;

	out[0] = '\0';
	for (int i = 0; kinds && kinds[i] && len < n; i++)
		len += (size_t)snprintf(out + len, n - len, "%s%s", i ? ", " : "", kinds[i]->name);
}

static int own_index(const struct system_kind *k, const char *name)
{
	for (int i = 0; k && k->settings && k->settings[i].name; i++)
		if (strcmp(k->settings[i].name, name) == 0)
			return i;
	return -1;
}

const char *config_own(const struct system_conf *sc, const char *name)
{
	int i = own_index(sc->kind, name);

	return i < 0 ? NULL : sc->own[i];
}

long long config_own_num(const struct system_conf *sc, const char *name)
{
	const char *v = config_own(sc, name);

	if (v == NULL)
		return 0;
	if (strcmp(v, "true") == 0)
		return 1;
	return strtoll(v, NULL, 10);
}

struct loader {
	const char *file;
	bool secrets;           /* read tokens (not for report or status) */
	struct config *cfg;
	struct df_err *err;
	char dir[4096];
};

static int bad(struct loader *ld, const config_setting_t *s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int bad(struct loader *ld, const config_setting_t *s, const char *fmt, ...)
{
	char what[384];
	va_list ap;
	char *path = NULL;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (s != NULL) {
		/* Build the dotted path of the setting for the message. */
		struct strbuf sb;
		const config_setting_t *chain[16];
		int n = 0;
		for (const config_setting_t *p = s; p && config_setting_parent(p) && n < 16;
		     p = config_setting_parent(p))
			chain[n++] = p;
		sb_init(&sb);
		while (n-- > 0) {
			const char *nm = config_setting_name(chain[n]);
			if (nm) {
				if (sb.len)
					sb_add(&sb, ".");
				sb_add(&sb, nm);
			} else {
				sb_addf(&sb, "[%d]", config_setting_index(chain[n]));
			}
		}
		path = sb_detach(&sb);
		df_fail(ld->err, DF_FAIL_CONFIG, "%s:%d: %s: %s", ld->file,
			config_setting_source_line(s), path, what);
	} else {
		df_fail(ld->err, DF_FAIL_CONFIG, "%s: %s", ld->file, what);
	}
	free(path);
	return -1;
}

/* A misspelt setting would silently fall back to a default: refuse it.
 * extra, when not NULL, is a second list (system names in custom fields). */
static int known_keys(struct loader *ld, const config_setting_t *grp, const char *const *keys,
		      const struct config *extra)
{
	if (grp == NULL || !config_setting_is_group(grp))
		return 0;
	for (int i = 0; i < config_setting_length(grp); i++) {
		const config_setting_t *s = config_setting_get_elem(grp, (unsigned)i);
		const char *name = config_setting_name(s);
		bool ok = false;
		for (int k = 0; keys[k] && !ok; k++)
			ok = strcmp(keys[k], name) == 0;
		for (int k = 0; extra && k < extra->nsys && !ok; k++)
			ok = strcmp(extra->sys[k].name, name) == 0;
		if (!ok)
			return bad(ld, s, "unknown setting");
	}
	return 0;
}

static char *resolve_path(struct loader *ld, const char *p)
{
	if (p[0] == '/' || ld->dir[0] == '\0')
		return xstrdup(p);
	return xasprintf("%s/%s", ld->dir, p);
}

/* Optional string member; *out keeps its default when absent. */
static int get_string(struct loader *ld, const config_setting_t *grp, const char *name, char **out)
{
	const config_setting_t *s = config_setting_get_member(grp, name);

	if (s == NULL)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return bad(ld, s, "must be a string");
	free(*out);
	*out = xstrdup(config_setting_get_string(s));
	return 0;
}

static int get_int(struct loader *ld, const config_setting_t *grp, const char *name,
		   int *out, int min, int max)
{
	const config_setting_t *s = config_setting_get_member(grp, name);
	long long v;

	if (s == NULL)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64)
		return bad(ld, s, "must be a whole number");
	v = config_setting_get_int64(s);
	if (v < min || v > max)
		return bad(ld, s, "must be between %d and %d", min, max);
	*out = (int)v;
	return 0;
}

static int get_double(struct loader *ld, const config_setting_t *grp, const char *name,
		      double *out, double min, double max)
{
	const config_setting_t *s = config_setting_get_member(grp, name);
	double v;

	if (s == NULL)
		return 0;
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_FLOAT: v = config_setting_get_float(s); break;
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64: v = (double)config_setting_get_int64(s); break;
	default: return bad(ld, s, "must be a number");
	}
	if (v < min || v > max)
		return bad(ld, s, "must be between %g and %g", min, max);
	*out = v;
	return 0;
}

static int get_bool(struct loader *ld, const config_setting_t *grp, const char *name, bool *out)
{
	const config_setting_t *s = config_setting_get_member(grp, name);

	if (s == NULL)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return bad(ld, s, "must be true or false");
	*out = config_setting_get_bool(s);
	return 0;
}

static int read_token_file(struct loader *ld, const config_setting_t *s, const char *path,
			   char **out)
{
	char buf[4096];
	size_t n;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return bad(ld, s, "cannot read token file %s: %s", path, strerror(errno));
	n = fread(buf, 1, sizeof(buf) - 1, f);
	if (n == sizeof(buf) - 1 && fgetc(f) != EOF) {
		fclose(f);
		return bad(ld, s, "token file %s is longer than %zu bytes", path, sizeof(buf) - 1);
	}
	fclose(f);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	if (n == 0)
		return bad(ld, s, "token file %s is empty", path);
	*out = xstrdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

/* OAuth credentials (GHL: its kind says it takes them): client id, its
 * secret (inline or from a file) and the token file. Credentials stay in
 * core with token and token_file: read, resolved and kept secret in one
 * place. The token file is only checked here: the connector
 * reads it when the run starts and rewrites it when it renews the pair. */
static int load_oauth(struct loader *ld, const config_setting_t *grp, struct system_conf *sc,
		      bool has_token)
{
	const config_setting_t *secret = config_setting_get_member(grp, "oauth_client_secret");
	const config_setting_t *secretfile = config_setting_get_member(grp, "oauth_client_secret_file");
	const config_setting_t *oauthfile = config_setting_get_member(grp, "oauth_token_file");

	if (!sc->kind->oauth)
		return bad(ld, grp, "%s takes no OAuth settings (only a token)", sc->name);
	if (has_token)
		return bad(ld, grp, "either token/token_file or the oauth_* settings, not both");
	if (sc->oauth_client_id == NULL || str_blank(sc->oauth_client_id))
		return bad(ld, grp, "oauth_client_id is required with OAuth");
	if (oauthfile == NULL || config_setting_type(oauthfile) != CONFIG_TYPE_STRING)
		return bad(ld, oauthfile ? oauthfile : grp, "oauth_token_file (a string) is required with OAuth");
	if ((secret != NULL) == (secretfile != NULL))
		return bad(ld, grp, "exactly one of oauth_client_secret or oauth_client_secret_file is required");
	sc->oauth_token_file = resolve_path(ld, config_setting_get_string(oauthfile));
	sc->token_source = xstrdup("oauth");
	/* Read and rewritten by the run: both must be allowed. */
	if (ld->secrets && access(sc->oauth_token_file, R_OK | W_OK) != 0)
		return bad(ld, oauthfile, "cannot use token file %s: %s", sc->oauth_token_file, strerror(errno));
	if (secret != NULL) {
		if (config_setting_type(secret) != CONFIG_TYPE_STRING || str_blank(config_setting_get_string(secret)))
			return bad(ld, secret, "must be a non-empty string");
		sc->oauth_client_secret = xstrdup(config_setting_get_string(secret));
		return 0;
	}
	if (config_setting_type(secretfile) != CONFIG_TYPE_STRING)
		return bad(ld, secretfile, "must be a string");
	if (ld->secrets) {
		char *path = resolve_path(ld, config_setting_get_string(secretfile));
		int rc = read_token_file(ld, secretfile, path, &sc->oauth_client_secret);
		free(path);
		return rc;
	}
	return 0;
}

/* The settings of kind k that grp holds, read through k's table. */
static int load_own(struct loader *ld, const config_setting_t *grp, struct system_conf *sc)
{
	const struct setting *t = sc->kind->settings;

	for (int i = 0; t && t[i].name && i < DF_MAX_OWN; i++) {
		const config_setting_t *s = config_setting_get_member(grp, t[i].name);
		char buf[32];
		int rc = 0;

		sc->own[i] = t[i].def ? xstrdup(t[i].def) : NULL;
		if (s == NULL)
			continue;
		switch (t[i].type) {
		case SETTING_STRING:
			rc = get_string(ld, grp, t[i].name, &sc->own[i]);
			break;
		case SETTING_INT:
			if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64)
				return bad(ld, s, "must be a whole number");
			if (config_setting_get_int64(s) < t[i].min || config_setting_get_int64(s) > t[i].max)
				return bad(ld, s, "must be between %lld and %lld", t[i].min, t[i].max);
			snprintf(buf, sizeof(buf), "%lld", config_setting_get_int64(s));
			free(sc->own[i]);
			sc->own[i] = xstrdup(buf);
			break;
		case SETTING_BOOL:
			if (config_setting_type(s) != CONFIG_TYPE_BOOL)
				return bad(ld, s, "must be true or false");
			free(sc->own[i]);
			sc->own[i] = xstrdup(config_setting_get_bool(s) ? "true" : "false");
			break;
		}
		if (rc)
			return -1;
	}
	return 0;
}

/* A required own setting that is missing. */
static int own_required(struct loader *ld, const config_setting_t *grp, const struct system_conf *sc)
{
	const struct setting *t = sc->kind->settings;

	for (int i = 0; t && t[i].name && i < DF_MAX_OWN; i++)
		if (t[i].required && sc->own[i] == NULL)
			return bad(ld, grp, "%s is required for %s", t[i].name, sc->name);
	return 0;
}

static int load_system(struct loader *ld, const config_setting_t *grp, struct system_conf *sc)
{
	const config_setting_t *tok = config_setting_get_member(grp, "token");
	const config_setting_t *tokfile = config_setting_get_member(grp, "token_file");
	const struct system_kind *kind = kind_find(sc->name);
	const char *keys[64];
	int nkeys = 0;
	char names[256];

	/* The settings every system takes; the kind's own come from its table. */
	static const char *const generic_keys[] = {
		"base_url", "token", "token_file", "rate_limit", "rate_window",
		"page_size", "lookback", "timeout", "max_attempts", "max_retry_after", "max_requests",
		"tls_verify", "create", "listing", "events", "sweep", "sweep_interval", "propagate_deletes",
		"recheck_after",
		"delete_checks", "quota_reserve", "oauth_client_id", "oauth_client_secret",
		"oauth_client_secret_file", "oauth_token_file", NULL,
	};
	const config_setting_t *secret = config_setting_get_member(grp, "oauth_client_secret");
	const config_setting_t *secretfile = config_setting_get_member(grp, "oauth_client_secret_file");
	const config_setting_t *oauthfile = config_setting_get_member(grp, "oauth_token_file");

	if (kind == NULL) {
		kind_names(names, sizeof(names));
		return bad(ld, grp, "unknown system (known: %s)", names);
	}
	sc->kind = kind;
	for (int i = 0; generic_keys[i]; i++)
		keys[nkeys++] = generic_keys[i];
	/* Its own settings; another kind's are accepted and ignored, as they
	 * always were (location_id under aloware). */
	for (int k = 0; kinds[k]; k++)
		for (int i = 0; kinds[k]->settings && kinds[k]->settings[i].name && nkeys < 63; i++)
			keys[nkeys++] = kinds[k]->settings[i].name;
	keys[nkeys] = NULL;
	if (known_keys(ld, grp, keys, NULL))
		return -1;
	sc->rate_limit = kind->default_rate_limit;
	sc->rate_window = 10;
	sc->page_size = 100;
	sc->lookback = 300;
	sc->timeout = 30;
	sc->max_attempts = 4;
	sc->max_retry_after = 60;
	sc->max_requests = 20000;
	sc->tls_verify = true;
	sc->create = true;
	/* A listing that is only our contract (Aloware's relay) is off unless
	 * the configuration says a relay serves it. */
	sc->listing = !kind->listing_ours;
	sc->events = !kind->listing_ours;
	sc->sweep = -1;
	sc->sweep_interval = -1;
	sc->delete_checks = 100;
	sc->quota_reserve = 2000;
	sc->recheck_after = 60;
	if (get_string(ld, grp, "base_url", &sc->base_url) ||
	    get_int(ld, grp, "quota_reserve", &sc->quota_reserve, 0, 100000000) ||
	    get_string(ld, grp, "oauth_client_id", &sc->oauth_client_id) ||
	    load_own(ld, grp, sc) ||
	    get_int(ld, grp, "rate_limit", &sc->rate_limit, 0, 100000) ||
	    get_double(ld, grp, "rate_window", &sc->rate_window, 0.001, 86400) ||
	    get_int(ld, grp, "page_size", &sc->page_size, 1, kind->max_page_size) ||
	    get_int(ld, grp, "lookback", &sc->lookback, 0, 7 * 86400) ||
	    get_int(ld, grp, "timeout", &sc->timeout, 1, 600) ||
	    get_int(ld, grp, "max_attempts", &sc->max_attempts, 1, 20) ||
	    get_int(ld, grp, "max_retry_after", &sc->max_retry_after, 0, 3600) ||
	    get_int(ld, grp, "max_requests", &sc->max_requests, 1, 10000000) ||
	    get_bool(ld, grp, "tls_verify", &sc->tls_verify) ||
	    get_bool(ld, grp, "create", &sc->create) ||
	    get_bool(ld, grp, "listing", &sc->listing) ||
	    get_bool(ld, grp, "events", &sc->events) ||
	    get_int(ld, grp, "sweep", &sc->sweep, 0, 100000) ||
	    get_int(ld, grp, "sweep_interval", &sc->sweep_interval, 0, 30 * 86400) ||
	    get_bool(ld, grp, "propagate_deletes", &sc->propagate_deletes) ||
	    get_int(ld, grp, "delete_checks", &sc->delete_checks, 0, 100000) ||
	    get_int(ld, grp, "recheck_after", &sc->recheck_after, 0, 3600))
		return -1;
	/* Without a listing the sweep is the only way to see changes; with
	 * one it is a slow drift check. */
	if (sc->sweep < 0)
		sc->sweep = sc->listing ? 5 : 50;
	if (sc->sweep_interval < 0)
		sc->sweep_interval = sc->listing ? 3600 : 0;
	if (sc->base_url == NULL)
		return bad(ld, grp, "base_url is required");
	if (strncmp(sc->base_url, "http://", 7) != 0 && strncmp(sc->base_url, "https://", 8) != 0)
		return bad(ld, config_setting_get_member(grp, "base_url"), "must start with http:// or https://");
	if (own_required(ld, grp, sc))
		return -1;
	if (oauthfile != NULL || sc->oauth_client_id != NULL || secret != NULL || secretfile != NULL)
		return load_oauth(ld, grp, sc, tok != NULL || tokfile != NULL);
	if ((tok != NULL) == (tokfile != NULL))
		return bad(ld, grp, "exactly one of token or token_file is required");
	if (tok != NULL) {
		if (config_setting_type(tok) != CONFIG_TYPE_STRING || str_blank(config_setting_get_string(tok)))
			return bad(ld, tok, "must be a non-empty string");
		sc->token = xstrdup(config_setting_get_string(tok));
		sc->token_source = xstrdup("inline");
	} else {
		char *path;
		if (config_setting_type(tokfile) != CONFIG_TYPE_STRING)
			return bad(ld, tokfile, "must be a string");
		path = resolve_path(ld, config_setting_get_string(tokfile));
		sc->token_source = path;
		if (ld->secrets && read_token_file(ld, tokfile, path, &sc->token))
			return -1;
	}
	return 0;
}

static int load_systems(struct loader *ld, config_t *lc)
{
	struct config *cfg = ld->cfg;
	config_setting_t *systems = config_lookup(lc, "systems");
	config_setting_t *order = config_lookup(lc, "source_order");
	int n;

	if (systems == NULL || !config_setting_is_group(systems) || config_setting_length(systems) == 0)
		return bad(ld, systems, "a \"systems\" group with at least one system is required");
	n = config_setting_length(systems);
	if (n > DF_MAX_SYSTEMS)
		return bad(ld, systems, "at most %d systems", DF_MAX_SYSTEMS);
	/* The source-of-truth order decides the index of each system. */
	if (order != NULL) {
		if (!config_setting_is_array(order) || config_setting_length(order) != n)
			return bad(ld, order, "must list every configured system exactly once");
		for (int i = 0; i < n; i++) {
			const char *name = config_setting_get_string_elem(order, i);
			if (name == NULL || config_setting_get_member(systems, name) == NULL)
				return bad(ld, order, "entry %d is not a configured system", i + 1);
			for (int j = 0; j < i; j++)
				if (strcmp(cfg->sys[j].name, name) == 0)
					return bad(ld, order, "lists %s twice", name);
			cfg->sys[i].name = xstrdup(name);
		}
	} else {
		for (int i = 0; i < n; i++)
			cfg->sys[i].name = xstrdup(config_setting_name(config_setting_get_elem(systems, (unsigned)i)));
	}
	cfg->nsys = n;
	for (int i = 0; i < n; i++)
		if (load_system(ld, config_setting_get_member(systems, cfg->sys[i].name), &cfg->sys[i]))
			return -1;
	return 0;
}

static const char *default_rule(const struct config *cfg, int f)
{
	switch (f) {
	case F_PHONE: return "prefer-valid";
	case F_TAGS: return "union";
	case F_OPTOUT_SMS: case F_OPTOUT_CALL: case F_OPTOUT_EMAIL: return "sticky-true";
	case F_ADDRESS1: case F_CITY: case F_STATE: case F_POSTAL_CODE:
	case F_COUNTRY: case F_TIMEZONE:
		/* The first system that is the authority on addresses (GHL). */
		for (int s = 0; s < cfg->nsys; s++)
			if (cfg->sys[s].kind->address_authority) {
				static char rule[64];
				snprintf(rule, sizeof(rule), "prefer:%s-unless-blank", cfg->sys[s].name);
				return rule;
			}
		return "two-way";
	default: return "two-way";
	}
}

static int set_rule(struct loader *ld, const config_setting_t *s, int f, const char *text)
{
	const char *names[DF_MAX_SYSTEMS];
	char why[256];

	config_system_names(ld->cfg, names);
	if (merge_rule_parse(text, names, ld->cfg->nsys, &ld->cfg->rule[f], why, sizeof(why)))
		return bad(ld, s, "%s", why);
	if ((ld->cfg->rule[f].kind == RULE_UNION) != (field_get(f)->kind == FIELD_SET))
		return bad(ld, s, "union is the rule for sets (tags) and only for them");
	/* I4: no configuration may let a merge clear an opt-out. */
	if ((ld->cfg->rule[f].kind == RULE_STICKY_TRUE) != field_is_optout(f))
		return bad(ld, s, "sticky-true is the rule for opt-outs and the only one they take");
	return 0;
}

static int load_custom_fields(struct loader *ld, config_t *lc)
{
	config_setting_t *list = config_lookup(lc, "custom_fields");

	if (list == NULL)
		return 0;
	if (!config_setting_is_list(list))
		return bad(ld, list, "must be a list of groups ( { name = ...; ... } )");
	for (int i = 0; i < config_setting_length(list); i++) {
		config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		const config_setting_t *rs = config_setting_get_member(g, "rule");
		const char *name = NULL, *rule = "two-way";
		int f;

		static const char *const keys[] = { "name", "rule", NULL };

		if (!config_setting_is_group(g) || !config_setting_lookup_string(g, "name", &name))
			return bad(ld, g, "needs a name");
		if (known_keys(ld, g, keys, ld->cfg))
			return -1;
		if (rs != NULL && config_setting_type(rs) != CONFIG_TYPE_STRING)
			return bad(ld, rs, "must be a rule string");
		if (rs != NULL)
			rule = config_setting_get_string(rs);
		if (field_find(name) >= 0)
			return bad(ld, g, "field %s is defined twice", name);
		f = fields_add_custom(name);
		if (f < 0)
			return bad(ld, g, "too many fields (at most %d)", DF_MAX_FIELDS);
		if (set_rule(ld, config_setting_get_member(g, "rule") ? config_setting_get_member(g, "rule") : g, f, rule))
			return -1;
		for (int s = 0; s < ld->cfg->nsys; s++)
			if (get_string(ld, g, ld->cfg->sys[s].name, &ld->cfg->sys[s].field_key[f]))
				return -1;
	}
	return 0;
}

static int load_fields(struct loader *ld, config_t *lc)
{
	config_setting_t *fields = config_lookup(lc, "fields");

	for (int f = 0; f < F_NBUILTIN; f++)
		if (set_rule(ld, NULL, f, default_rule(ld->cfg, f)))
			return -1;
	if (fields == NULL)
		return 0;
	if (!config_setting_is_group(fields))
		return bad(ld, fields, "must be a group of field = \"rule\" settings");
	for (int i = 0; i < config_setting_length(fields); i++) {
		config_setting_t *s = config_setting_get_elem(fields, (unsigned)i);
		int f = field_find(config_setting_name(s));
		if (f < 0 || f >= F_NBUILTIN)
			return bad(ld, s, "unknown field (custom fields go in custom_fields)");
		if (config_setting_type(s) != CONFIG_TYPE_STRING)
			return bad(ld, s, "must be a rule string");
		if (set_rule(ld, s, f, config_setting_get_string(s)))
			return -1;
	}
	return 0;
}

/* A rule's target, as the lists system's kind makes it from the members
 * it declares (kind->list_keys). */
static int list_target(struct loader *ld, config_setting_t *g, const struct system_kind *kind,
		       struct list_rule *lr)
{
	char *values[16] = { 0 };
	char why[384];
	int n = 0, at = -1, rc = 0;

	for (; kind->list_keys[n] && n < 15; n++)
		if (get_string(ld, g, kind->list_keys[n], &values[n]))
			rc = -1;
	if (rc == 0 && kind->list_target((const char *const *)values, &lr->list_id, &at, why, sizeof(why)))
		rc = bad(ld, at < 0 ? g : config_setting_get_member(g, kind->list_keys[at]), "%s", why);
	for (int i = 0; i < n; i++)
		free(values[i]);
	return rc;
}

/* call_lists = { system = "aloware"; rules = ( { tag; match; <target>; } ); }
 * The target's members are the lists system's (Aloware: user_id | tag_id). */
static int load_lists(struct loader *ld, config_t *lc)
{
	config_setting_t *grp = config_lookup(lc, "call_lists"), *rules;
	struct config *cfg = ld->cfg;
	const struct system_kind *kind;
	const char *rule_keys[20] = { "tag", "match" };
	int sys, nkeys = 2;

	static const char *const keys[] = { "system", "rules", NULL };

	if (grp == NULL)
		return 0;
	if (known_keys(ld, grp, keys, NULL))
		return -1;
	/* By default the first kind that holds call lists (Aloware). */
	for (int k = 0; kinds[k] && cfg->lists_system == NULL; k++)
		if (kinds[k]->list_target != NULL)
			cfg->lists_system = xstrdup(kinds[k]->name);
	if (get_string(ld, grp, "system", &cfg->lists_system))
		return -1;
	sys = cfg->lists_system ? config_system(cfg, cfg->lists_system) : -1;
	if (sys < 0 || cfg->sys[sys].kind->list_target == NULL)
		return bad(ld, grp, "%s is not a configured system with call lists",
			   cfg->lists_system ? cfg->lists_system : "(none)");
	kind = cfg->sys[sys].kind;
	for (int i = 0; kind->list_keys[i] && nkeys < 19; i++)
		rule_keys[nkeys++] = kind->list_keys[i];
	rule_keys[nkeys] = NULL;
	rules = config_setting_get_member(grp, "rules");
	if (rules == NULL || !config_setting_is_list(rules))
		return bad(ld, grp, "rules must be a list of { tag = ...; user_id = ...; } groups");
	cfg->nlists = config_setting_length(rules);
	cfg->lists = xcalloc((size_t)cfg->nlists + 1, sizeof(*cfg->lists));
	for (int i = 0; i < cfg->nlists; i++) {
		config_setting_t *g = config_setting_get_elem(rules, (unsigned)i);
		struct list_rule *lr = &cfg->lists[i];
		char *match = NULL;
		if (known_keys(ld, g, (const char *const *)rule_keys, NULL))
			return -1;
		if (list_target(ld, g, kind, lr) || get_string(ld, g, "tag", &lr->tag) ||
		    get_string(ld, g, "match", &match))
			return -1;
		if (lr->tag == NULL)
			return bad(ld, g, "needs tag");
		lr->match = match == NULL || strcmp(match, "case-insensitive") == 0 ? MATCH_NOCASE :
			    strcmp(match, "exact") == 0 ? MATCH_EXACT : strcmp(match, "regex") == 0 ? MATCH_REGEX : -1;
		free(match);
		if ((int)lr->match < 0)
			return bad(ld, config_setting_get_member(g, "match"),
				   "must be exact, case-insensitive or regex");
		if (lr->match == MATCH_REGEX) {
			lr->regex = xmalloc(sizeof(regex_t));
			if (regcomp(lr->regex, lr->tag, REG_EXTENDED | REG_NOSUB) != 0) {
				free(lr->regex);
				lr->regex = NULL;
				return bad(ld, config_setting_get_member(g, "tag"), "is not a valid regular expression");
			}
		}
	}
	return 0;
}

/* optouts.opt_in: "never", "same-system" or a comma-separated list of
 * systems whose clearing of an opt-out is an opt-in. */
static int load_optouts(struct loader *ld, config_t *lc)
{
	config_setting_t *s = config_lookup(lc, "optouts.opt_in");
	const char *v;
	char *copy, *tok, *save = NULL;
	int rc = 0;

	static const char *const keys[] = { "opt_in", "keyword_opt_in", NULL };
	config_setting_t *kw = config_lookup(lc, "optouts.keyword_opt_in");

	ld->cfg->opt_in = OPTIN_SAME_SYSTEM;
	ld->cfg->keyword_opt_in = KEYWORD_OPTIN_SAME_SYSTEM;
	if (known_keys(ld, config_lookup(lc, "optouts"), keys, NULL))
		return -1;
	if (kw != NULL) {
		const char *k = config_setting_type(kw) == CONFIG_TYPE_STRING ? config_setting_get_string(kw) : "";
		if (strcmp(k, "same-system") == 0)
			ld->cfg->keyword_opt_in = KEYWORD_OPTIN_SAME_SYSTEM;
		else if (strcmp(k, "any") == 0)
			ld->cfg->keyword_opt_in = KEYWORD_OPTIN_ANY;
		else if (strcmp(k, "never") == 0)
			ld->cfg->keyword_opt_in = KEYWORD_OPTIN_NEVER;
		else
			return bad(ld, kw, "must be \"same-system\", \"any\" or \"never\"");
	}
	if (s == NULL)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return bad(ld, s, "must be \"never\", \"same-system\" or a list of systems");
	v = config_setting_get_string(s);
	if (strcmp(v, "never") == 0) {
		ld->cfg->opt_in = OPTIN_NEVER;
		return 0;
	}
	if (strcmp(v, "same-system") == 0)
		return 0;
	ld->cfg->opt_in = OPTIN_LISTED;
	copy = xstrdup(v);
	for (tok = strtok_r(copy, ", ", &save); tok && rc == 0; tok = strtok_r(NULL, ", ", &save)) {
		int i = config_system(ld->cfg, tok);
		if (i < 0)
			rc = bad(ld, s, "%s is not a configured system", tok);
		else
			ld->cfg->opt_in_from[i] = true;
	}
	free(copy);
	return rc;
}

static int load_top(struct loader *ld, config_t *lc)
{
	struct config *cfg = ld->cfg;
	config_setting_t *root = config_root_setting(lc);
	config_setting_t *safety = config_lookup(lc, "safety");
	config_setting_t *writes = config_lookup(lc, "writes");
	static const char *const keys[] = {
		"state_path", "lock_path", "default_country", "log_level", "log_target", "log_format",
		"source_order", "systems",
		"fields", "custom_fields", "keep_tag_prefix", "safety", "writes", "max_pages",
		"deadline", "max_response_mb", "progress_interval", "optouts", "call_lists",
		"metrics_file", "healthcheck_url", NULL,
	};
	static const char *const safety_keys[] = { "max_change_share", "min_records", NULL };
	static const char *const writes_keys[] = { "max_attempts", "backoff", NULL };
	char *level = NULL, *state = NULL, *lock = NULL, *target = NULL, *format = NULL, *metrics = NULL;
	int rc = 0;

	if (known_keys(ld, root, keys, NULL) || known_keys(ld, safety, safety_keys, NULL) ||
	    known_keys(ld, writes, writes_keys, NULL))
		return -1;

	cfg->default_country = xstrdup("US");
	cfg->keep_tag_prefix = xstrdup("SYS:");
	cfg->log_level = LOG_INFO;
	cfg->max_change_share = 0.5;
	cfg->safety_min_records = 10;
	cfg->write_max_attempts = 10;
	cfg->write_backoff = 60;
	cfg->max_pages = 10000;
	cfg->deadline = 300;
	cfg->max_response_mb = 32;
	cfg->progress_interval = 10;
	if (get_string(ld, root, "state_path", &state) || get_string(ld, root, "lock_path", &lock) ||
	    get_string(ld, root, "default_country", &cfg->default_country) ||
	    get_string(ld, root, "log_level", &level) ||
	    get_string(ld, root, "log_target", &target) || get_string(ld, root, "log_format", &format) ||
	    get_string(ld, root, "keep_tag_prefix", &cfg->keep_tag_prefix) ||
	    get_int(ld, root, "max_pages", &cfg->max_pages, 1, 1000000) ||
	    get_int(ld, root, "deadline", &cfg->deadline, 1, 86400) ||
	    get_int(ld, root, "max_response_mb", &cfg->max_response_mb, 1, 1024) ||
	    get_int(ld, root, "progress_interval", &cfg->progress_interval, 0, 3600) ||
	    get_string(ld, root, "metrics_file", &metrics) ||
	    get_string(ld, root, "healthcheck_url", &cfg->healthcheck_url))
		rc = -1;
	else if (state == NULL)
		rc = bad(ld, NULL, "state_path is required");
	else if (country_calling_code(cfg->default_country) == 0)
		rc = bad(ld, config_setting_get_member(root, "default_country"),
			 "unknown country \"%s\" (an ISO-3166 alpha-2 code such as US or GB)",
			 cfg->default_country);
	else if (level && log_parse_level(level, &cfg->log_level))
		rc = bad(ld, config_setting_get_member(root, "log_level"),
			 "must be error, warn, info or debug");
	else if (target && log_parse_target(target, &cfg->log_target))
		rc = bad(ld, config_setting_get_member(root, "log_target"), "must be stderr or syslog");
	else if (format && log_parse_format(format, &cfg->log_format))
		rc = bad(ld, config_setting_get_member(root, "log_format"), "must be text or json");
	else if (safety && (get_double(ld, safety, "max_change_share", &cfg->max_change_share, 0, 1) ||
			    get_int(ld, safety, "min_records", &cfg->safety_min_records, 0, 100000000)))
		rc = -1;
	else if (writes && (get_int(ld, writes, "max_attempts", &cfg->write_max_attempts, 1, 1000) ||
			    get_int(ld, writes, "backoff", &cfg->write_backoff, 0, 86400)))
		rc = -1;
	else if (metrics && *metrics == '\0')
		rc = bad(ld, config_setting_get_member(root, "metrics_file"), "must name a file");
	else if (cfg->healthcheck_url && strncmp(cfg->healthcheck_url, "https://", 8) &&
		 strncmp(cfg->healthcheck_url, "http://", 7))
		/* Not echoed: the URL is a secret. */
		rc = bad(ld, config_setting_get_member(root, "healthcheck_url"), "must start with https:// or http://");
	if (rc == 0) {
		cfg->state_path = resolve_path(ld, state);
		cfg->lock_path = lock ? resolve_path(ld, lock) : xasprintf("%s.lock", cfg->state_path);
		cfg->metrics_file = metrics ? resolve_path(ld, metrics) : NULL;
	}
	free(metrics);
	free(level);
	free(target);
	free(format);
	free(state);
	free(lock);
	return rc;
}

static struct config *load(const char *path, bool secrets, struct df_err *err)
{
	struct loader ld = { .file = path, .err = err, .secrets = secrets };
	struct config *cfg = xcalloc(1, sizeof(*cfg));
	const char *slash = strrchr(path, '/');
	config_t lc;
	int rc;

	ld.cfg = cfg;
	cfg->path = xstrdup(path);
	if (slash)
		snprintf(ld.dir, sizeof(ld.dir), "%.*s", (int)(slash - path), path);
	fields_reset();
	config_init(&lc);
	if (!config_read_file(&lc, path)) {
		if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
			df_fail(err, DF_FAIL_CONFIG, "%s: cannot read: %s", path, strerror(errno));
		else
			df_fail(err, DF_FAIL_CONFIG, "%s:%d: %s", path, config_error_line(&lc),
				config_error_text(&lc));
		rc = -1;
	} else {
		rc = load_top(&ld, &lc) || load_systems(&ld, &lc) || load_fields(&ld, &lc) ||
		     load_custom_fields(&ld, &lc) || load_optouts(&ld, &lc) || load_lists(&ld, &lc) ? -1 : 0;
	}
	config_destroy(&lc);
	if (rc) {
		config_free(cfg);
		return NULL;
	}
	log_set_level(cfg->log_level);
	log_set_output(cfg->log_target, cfg->log_format);
	return cfg;
}

struct config *config_load(const char *path, struct df_err *err)
{
	return load(path, true, err);
}

struct config *config_load_public(const char *path, struct df_err *err)
{
	return load(path, false, err);
}

void config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (int i = 0; i < DF_MAX_SYSTEMS; i++) {
		struct system_conf *sc = &cfg->sys[i];
		free(sc->name);
		free(sc->base_url);
		if (sc->token)
			explicit_bzero(sc->token, strlen(sc->token));
		free(sc->token);
		free(sc->token_source);
		free(sc->oauth_client_id);
		if (sc->oauth_client_secret)
			explicit_bzero(sc->oauth_client_secret, strlen(sc->oauth_client_secret));
		free(sc->oauth_client_secret);
		free(sc->oauth_token_file);
		for (int o = 0; o < DF_MAX_OWN; o++)
			free(sc->own[o]);
		for (int f = 0; f < DF_MAX_FIELDS; f++)
			free(sc->field_key[f]);
	}
	for (int i = 0; cfg->lists && i < cfg->nlists; i++) {
		free(cfg->lists[i].tag);
		free(cfg->lists[i].list_id);
		if (cfg->lists[i].regex)
			regfree(cfg->lists[i].regex);
		free(cfg->lists[i].regex);
	}
	free(cfg->lists);
	free(cfg->lists_system);
	free(cfg->path);
	free(cfg->state_path);
	free(cfg->lock_path);
	free(cfg->metrics_file);
	free(cfg->healthcheck_url);
	free(cfg->default_country);
	free(cfg->keep_tag_prefix);
	free(cfg);
}

int config_system(const struct config *cfg, const char *name)
{
	for (int i = 0; i < cfg->nsys; i++)
		if (strcmp(cfg->sys[i].name, name) == 0)
			return i;
	return -1;
}

void config_system_names(const struct config *cfg, const char **names)
{
	for (int i = 0; i < cfg->nsys; i++)
		names[i] = cfg->sys[i].name;
}

void config_print(const struct config *cfg)
{
	printf("config: %s\nstate_path: %s\nlock_path: %s\ndefault_country: %s\n",
	       cfg->path, cfg->state_path, cfg->lock_path, cfg->default_country);
	printf("safety: max_change_share=%g min_records=%d\n", cfg->max_change_share,
	       cfg->safety_min_records);
	printf("metrics_file: %s\nhealthcheck_url: %s\n", cfg->metrics_file ? cfg->metrics_file : "(none)",
	       cfg->healthcheck_url ? "set (not shown)" : "(none)");
	for (int i = 0; i < cfg->nsys; i++) {
		const struct system_conf *sc = &cfg->sys[i];
		printf("system %d: %s base_url=%s token=%s page_size=%d lookback=%ds rate=%d/%gs%s%s%s%s\n",
		       i + 1, sc->name, sc->base_url,
		       strcmp(sc->token_source, "inline") == 0 ? "inline" :
		       strcmp(sc->token_source, "oauth") == 0 ? "oauth" : "from-file",
		       sc->page_size, sc->lookback, sc->rate_limit, sc->rate_window,
		       sc->tls_verify ? "" : " tls_verify=off", sc->create ? "" : " create=off",
		       sc->listing ? "" : " listing=off", sc->events ? "" : " events=off");
		/* Its own settings, from its connector's table. */
		for (int o = 0; sc->kind->settings && sc->kind->settings[o].name; o++)
			printf("system %d %s: %s = %s (%s)\n", i + 1, sc->name, sc->kind->settings[o].name,
			       sc->own[o] ? sc->own[o] : "unset", sc->kind->settings[o].help);
	}
	for (int f = 0; f < fields_count(); f++)
		printf("field %s: %s\n", field_get(f)->name, cfg->rule[f].text);
}

/* FNV-1a over one setting, with a separator so that "ab","c" and "a","bc"
 * differ. */
static void fp_add(unsigned long long *h, const char *s)
{
	for (; s && *s; s++) {
		*h ^= (unsigned char)*s;
		*h *= 1099511628211ULL;
	}
	*h ^= 0xff;
	*h *= 1099511628211ULL;
}

void config_fingerprint(const struct config *cfg, char out[17])
{
	unsigned long long h = 14695981039346656037ULL;

	/* Tokens are left out: a refused write is not a credentials matter, and
	 * nothing derived from a secret goes into the state (I9). */
	for (int i = 0; i < cfg->nsys; i++) {
		const struct system_conf *sc = &cfg->sys[i];
		fp_add(&h, sc->name);
		fp_add(&h, sc->base_url);
		for (int o = 0; sc->kind && sc->kind->settings && sc->kind->settings[o].name; o++)
			if (sc->kind->settings[o].shapes_writes)
				fp_add(&h, sc->own[o]);
		fp_add(&h, sc->create ? "create" : "no-create");
		for (int f = 0; f < DF_MAX_FIELDS; f++)
			fp_add(&h, sc->field_key[f]);
	}
	for (int f = 0; f < fields_count(); f++)
		fp_add(&h, cfg->rule[f].text);
	fp_add(&h, cfg->keep_tag_prefix);
	fp_add(&h, cfg->lists_system);
	for (int i = 0; i < cfg->nlists; i++) {
		fp_add(&h, cfg->lists[i].tag);
		fp_add(&h, cfg->lists[i].list_id);
	}
	snprintf(out, 17, "%016llx", h);
}
