/*
 * test_config.c - loading and checking the configuration (core/config.c).
 *
 * Every test writes files into a fresh directory from mkdtemp in /tmp. One
 * minimal valid configuration (three systems, inline tokens) is the start
 * of every case; a case changes it with a few text edits, so each row shows
 * only what it breaks. Errors must name the file, the line and the setting:
 * the expected message is built from the line on which the case's marker
 * text stands in the file actually written.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <ftw.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

#include "../../connectors/connector.h"
#include "../../core/config.h"
#include "../../core/str.h"


static const char minimal[] =
	"# minimal: three systems, inline tokens, every default\n"
	"state_path = \"state.db\";\n"
	"systems = {\n"
	"  ghl = {\n"
	"    base_url = \"http://127.0.0.1:9001\";\n"
	"    location_id = \"loc-demo\";\n"
	"    token = \"ghl-test-token\";\n"
	"  };\n"
	"  aloware = {\n"
	"    base_url = \"http://127.0.0.1:9002\";\n"
	"    token = \"aloware-test-token\";\n"
	"  };\n"
	"  verity = {\n"
	"    base_url = \"https://verity.example.com\";\n"
	"    token = \"verity-test-token\";\n"
	"  };\n"
	"};\n";

/* Replace the first occurrence of from with to; from "" appends to. */
struct edit {
	const char *from, *to;
};

struct fixture {
	char dir[64];
	char path[96];
	struct df_err err;
};

static int setup(void **state)
{
	struct fixture *fx = xcalloc(1, sizeof(*fx));

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_config-XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	snprintf(fx->path, sizeof(fx->path), "%s/dfreconcile.conf", fx->dir);
	*state = fx;
	return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(path);
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	nftw(fx->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
		fail_msg("cannot write %s", path);
}

/* Writes name (relative to the fixture's directory) holding text. */
static void write_in_dir(struct fixture *fx, const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", fx->dir, name);

	write_file(path, text);
	free(path);
}

/* The minimal configuration with edits applied; caller frees. */
static char *config_text(const struct edit *edits, int n)
{
	struct strbuf sb;
	char *text = xstrdup(minimal);

	for (int i = 0; i < n && edits[i].from != NULL; i++) {
		const char *at = edits[i].from[0] ? strstr(text, edits[i].from) : text + strlen(text);
		if (at == NULL)
			fail_msg("edit: \"%s\" is not in the configuration", edits[i].from);
		sb_init(&sb);
		sb_addn(&sb, text, (size_t)(at - text));
		sb_add(&sb, edits[i].to);
		sb_add(&sb, at + strlen(edits[i].from));
		free(text);
		text = sb_detach(&sb);
	}
	return text;
}

/* 1-based line of the first line of text holding marker. */
static int line_of(const char *text, const char *marker)
{
	const char *at = strstr(text, marker);
	int line = 1;

	if (at == NULL)
		fail_msg("marker \"%s\" is not in the configuration", marker);
	for (const char *p = text; p < at; p++)
		line += *p == '\n';
	return line;
}

/* s with every "{dir}" replaced by dir; caller frees. */
static char *with_dir(const char *s, const char *dir)
{
	struct strbuf sb;
	const char *at;

	sb_init(&sb);
	while ((at = strstr(s, "{dir}")) != NULL) {
		sb_addn(&sb, s, (size_t)(at - s));
		sb_add(&sb, dir);
		s = at + 5;
	}
	sb_add(&sb, s);
	return sb_detach(&sb);
}

/* Writes the edited minimal configuration and loads it. */
static struct config *load_edited(struct fixture *fx, const struct edit *edits, int n)
{
	char *text = config_text(edits, n);
	struct config *cfg;

	write_file(fx->path, text);
	free(text);
	df_err_clear(&fx->err);
	cfg = config_load(fx->path, &fx->err);
	if (cfg == NULL)
		fail_msg("config_load: %s", fx->err.msg);
	return cfg;
}

/* The valid minimal configuration */

static void test_minimal_defaults(void **state)
{
	static const struct { int field; const char *rule; enum rule_kind kind; int system; } rules[] = {
		{ F_FIRST_NAME, "two-way", RULE_TWO_WAY, -1 },
		{ F_LAST_NAME, "two-way", RULE_TWO_WAY, -1 },
		{ F_PHONE, "prefer-valid", RULE_PREFER_VALID, -1 },
		{ F_EMAIL, "two-way", RULE_TWO_WAY, -1 },
		{ F_ADDRESS1, "prefer:ghl-unless-blank", RULE_PREFER_UNLESS_BLANK, 0 },
		{ F_CITY, "prefer:ghl-unless-blank", RULE_PREFER_UNLESS_BLANK, 0 },
		{ F_STATE, "prefer:ghl-unless-blank", RULE_PREFER_UNLESS_BLANK, 0 },
		{ F_POSTAL_CODE, "prefer:ghl-unless-blank", RULE_PREFER_UNLESS_BLANK, 0 },
		{ F_COUNTRY, "prefer:ghl-unless-blank", RULE_PREFER_UNLESS_BLANK, 0 },
		{ F_TIMEZONE, "prefer:ghl-unless-blank", RULE_PREFER_UNLESS_BLANK, 0 },
		{ F_TAGS, "union", RULE_UNION, -1 },
		{ F_OPTOUT_SMS, "sticky-true", RULE_STICKY_TRUE, -1 },
		{ F_OPTOUT_CALL, "sticky-true", RULE_STICKY_TRUE, -1 },
		{ F_OPTOUT_EMAIL, "sticky-true", RULE_STICKY_TRUE, -1 },
	};
	static const struct { const char *name, *token; int rate_limit; const char *location; } sys[] = {
		{ "ghl", "ghl-test-token", 90, "loc-demo" },
		{ "aloware", "aloware-test-token", 50, NULL },
		{ "verity", "verity-test-token", 100, NULL },
	};
	struct fixture *fx = *state;
	struct config *cfg = load_edited(fx, NULL, 0);
	char *want;

	assert_int_equal(N(rules), F_NBUILTIN);
	assert_string_equal(cfg->path, fx->path);
	want = xasprintf("%s/state.db", fx->dir);
	assert_string_equal(cfg->state_path, want);
	free(want);
	want = xasprintf("%s/state.db.lock", fx->dir);
	assert_string_equal(cfg->lock_path, want);
	free(want);
	assert_string_equal(cfg->default_country, "US");
	assert_string_equal(cfg->keep_tag_prefix, "SYS:");
	assert_int_equal(cfg->log_level, LOG_INFO);
	assert_true(cfg->max_change_share == 0.5);
	assert_int_equal(cfg->safety_min_records, 10);
	assert_int_equal(cfg->write_max_attempts, 10);
	assert_int_equal(cfg->write_backoff, 60);
	assert_int_equal(cfg->max_pages, 10000);

	/* Without source_order the systems keep the file's order. */
	assert_int_equal(cfg->nsys, 3);
	for (int i = 0; i < N(sys); i++) {
		const struct system_conf *sc = &cfg->sys[i];
		assert_string_equal(sc->name, sys[i].name);
		assert_int_equal(config_system(cfg, sys[i].name), i);
		assert_string_equal(sc->token, sys[i].token);
		assert_string_equal(sc->token_source, "inline");
		if (sys[i].location)
			assert_string_equal(config_own(sc, "location_id"), sys[i].location);
		else
			assert_null(config_own(sc, "location_id"));
		assert_int_equal(sc->rate_limit, sys[i].rate_limit);
		assert_true(sc->rate_window == 10.0);
		assert_int_equal(sc->page_size, 100);
		assert_int_equal(sc->lookback, 300);
		assert_int_equal(sc->timeout, 30);
		assert_int_equal(sc->max_attempts, 4);
		assert_int_equal(sc->max_retry_after, 60);
		assert_int_equal(sc->max_requests, 20000);
		assert_true(sc->tls_verify);
		assert_true(sc->create);
	}
	assert_string_equal(cfg->sys[2].base_url, "https://verity.example.com");
	assert_int_equal(config_system(cfg, "hubspot"), -1);

	assert_int_equal(fields_count(), F_NBUILTIN);
	for (int i = 0; i < N(rules); i++) {
		const struct merge_rule *r = &cfg->rule[rules[i].field];
		if (strcmp(r->text, rules[i].rule) != 0 || r->kind != rules[i].kind ||
		    r->system != rules[i].system)
			fail_msg("field %s: rule \"%s\" (kind %d, system %d), want \"%s\" (kind %d, system %d)",
				 field_get(rules[i].field)->name, r->text, r->kind, r->system,
				 rules[i].rule, rules[i].kind, rules[i].system);
	}
	config_free(cfg);
}

/* source_order decides each system's index, and so the prefer: default. */
static void test_source_order(void **state)
{
	static const struct edit edits[] = {
		{ "", "source_order = [ \"verity\", \"ghl\", \"aloware\" ];\n" },
	};
	struct fixture *fx = *state;
	struct config *cfg = load_edited(fx, edits, N(edits));
	const char *names[DF_MAX_SYSTEMS];

	assert_int_equal(cfg->nsys, 3);
	config_system_names(cfg, names);
	assert_string_equal(names[0], "verity");
	assert_string_equal(names[1], "ghl");
	assert_string_equal(names[2], "aloware");
	assert_string_equal(cfg->sys[0].token, "verity-test-token");
	assert_string_equal(config_own(&cfg->sys[1], "location_id"), "loc-demo");
	assert_int_equal(cfg->rule[F_ADDRESS1].system, 1);
	assert_int_equal(cfg->rule[F_TIMEZONE].system, 1);
	config_free(cfg);
}

/* Without ghl there is no system to prefer: address falls back to two-way. */
static void test_defaults_without_ghl(void **state)
{
	static const struct edit edits[] = {
		{ "  ghl = {\n    base_url = \"http://127.0.0.1:9001\";\n    location_id = \"loc-demo\";\n"
		  "    token = \"ghl-test-token\";\n  };\n", "" },
	};
	struct fixture *fx = *state;
	struct config *cfg = load_edited(fx, edits, N(edits));

	assert_int_equal(cfg->nsys, 2);
	assert_string_equal(cfg->sys[0].name, "aloware");
	assert_int_equal(config_system(cfg, "ghl"), -1);
	for (int f = F_ADDRESS1; f <= F_TIMEZONE; f++) {
		assert_string_equal(cfg->rule[f].text, "two-way");
		assert_int_equal(cfg->rule[f].system, -1);
	}
	assert_int_equal(cfg->rule[F_PHONE].kind, RULE_PREFER_VALID);
	assert_int_equal(cfg->rule[F_TAGS].kind, RULE_UNION);
	config_free(cfg);
}

static void test_settings_override_defaults(void **state)
{
	static const struct edit edits[] = {
		{ "    location_id = \"loc-demo\";\n",
		  "    location_id = \"loc-demo\";\n    page_size = 500;\n    rate_window = 2;\n"
		  "    tls_verify = false;\n    create = false;\n" },
		{ "state_path = \"state.db\";\n",
		  "state_path = \"/var/lib/df/state.db\";\nlock_path = \"run.lock\";\n"
		  "default_country = \"GB\";\nlog_level = \"debug\";\nkeep_tag_prefix = \"KEEP-\";\n"
		  "safety = { max_change_share = 0.25; min_records = 5; };\n"
		  "writes = { max_attempts = 3; backoff = 0; };\n" },
		{ "", "fields = { email = \"always:aloware\"; city = \"newest\"; first_name = \"none\"; "
		      "tags = \"union\"; };\n" },
	};
	struct fixture *fx = *state;
	struct config *cfg = load_edited(fx, edits, N(edits));
	char *want = xasprintf("%s/run.lock", fx->dir);

	assert_string_equal(cfg->state_path, "/var/lib/df/state.db");
	assert_string_equal(cfg->lock_path, want);
	assert_string_equal(cfg->default_country, "GB");
	assert_int_equal(cfg->log_level, LOG_DEBUG);
	assert_string_equal(cfg->keep_tag_prefix, "KEEP-");
	assert_true(cfg->max_change_share == 0.25);
	assert_int_equal(cfg->safety_min_records, 5);
	assert_int_equal(cfg->write_max_attempts, 3);
	assert_int_equal(cfg->write_backoff, 0);
	assert_int_equal(cfg->sys[0].page_size, 500);
	assert_true(cfg->sys[0].rate_window == 2.0);
	assert_false(cfg->sys[0].tls_verify);
	assert_false(cfg->sys[0].create);
	assert_true(cfg->sys[1].tls_verify);
	assert_int_equal(cfg->rule[F_EMAIL].kind, RULE_ALWAYS);
	assert_int_equal(cfg->rule[F_EMAIL].system, 1);
	assert_string_equal(cfg->rule[F_EMAIL].text, "always:aloware");
	assert_int_equal(cfg->rule[F_CITY].kind, RULE_NEWEST);
	assert_int_equal(cfg->rule[F_FIRST_NAME].kind, RULE_NONE);
	assert_int_equal(cfg->rule[F_PHONE].kind, RULE_PREFER_VALID);
	free(want);
	config_free(cfg);
}

/* Tokens from files */

static void test_token_file_relative_to_config(void **state)
{
	struct fixture *fx = *state;
	char *abs_token = xasprintf("%s/abs.token", fx->dir);
	char *abs_line = xasprintf("    token_file = \"%s\";\n", abs_token);
	const struct edit edits[] = {
		{ "    token = \"ghl-test-token\";\n", "    token_file = \"secrets/ghl.token\";\n" },
		{ "    token = \"verity-test-token\";\n", abs_line },
	};
	struct config *cfg;
	char *want;

	want = xasprintf("%s/secrets", fx->dir);
	assert_int_equal(mkdir(want, 0700), 0);
	free(want);
	write_in_dir(fx, "secrets/ghl.token", "file-token-1\n");
	write_in_dir(fx, "abs.token", "file-token-2 \r\n\n");
	/* The working directory holds no such file: only the config's does. */
	assert_int_not_equal(access("secrets/ghl.token", F_OK), 0);

	cfg = load_edited(fx, edits, N(edits));
	assert_string_equal(cfg->sys[0].token, "file-token-1");
	want = xasprintf("%s/secrets/ghl.token", fx->dir);
	assert_string_equal(cfg->sys[0].token_source, want);
	free(want);
	assert_string_equal(cfg->sys[2].token, "file-token-2");
	assert_string_equal(cfg->sys[2].token_source, abs_token);
	assert_string_equal(cfg->sys[1].token_source, "inline");
	config_free(cfg);

	/* A config named without a directory reads from the working one. */
	char cwd[4096];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(fx->dir), 0);
	cfg = config_load("dfreconcile.conf", &fx->err);
	assert_int_equal(chdir(cwd), 0);
	if (cfg == NULL)
		fail_msg("config_load: %s", fx->err.msg);
	assert_string_equal(cfg->sys[0].token, "file-token-1");
	assert_string_equal(cfg->sys[0].token_source, "secrets/ghl.token");
	assert_string_equal(cfg->state_path, "state.db");
	config_free(cfg);
	free(abs_line);
	free(abs_token);
}

/* Errors: file, line, setting, reason */

struct error_case {
	const char *label;
	struct edit edits[3];
	const char *marker;     /* text on the line the error must name */
	const char *setting;
	const char *what;       /* "{dir}" stands for the fixture's directory */
};

static const struct error_case error_cases[] = {
	{ "unknown system name",
	  { { "  verity = {\n", "  hubspot = {\n" } },
	  "hubspot = {", "systems.hubspot", "unknown system (known: ghl, aloware, verity, texting)" },
	{ "missing base_url",
	  { { "    base_url = \"http://127.0.0.1:9002\";\n", "" } },
	  "aloware = {", "systems.aloware", "base_url is required" },
	{ "base_url without scheme",
	  { { "\"http://127.0.0.1:9002\"", "\"127.0.0.1:9002\"" } },
	  "127.0.0.1:9002", "systems.aloware.base_url", "must start with http:// or https://" },
	{ "ghl without location_id",
	  { { "    location_id = \"loc-demo\";\n", "" } },
	  "ghl = {", "systems.ghl", "location_id is required for ghl" },
	{ "page_size above the system's maximum",
	  { { "    location_id = \"loc-demo\";\n", "    location_id = \"loc-demo\";\n    page_size = 900;\n" } },
	  "page_size", "systems.ghl.page_size", "must be between 1 and 500" },
	{ "page_size zero",
	  { { "    token = \"verity-test-token\";\n", "    token = \"verity-test-token\";\n    page_size = 0;\n" } },
	  "page_size", "systems.verity.page_size", "must be between 1 and 500" },
	{ "page_size not a number",
	  { { "    token = \"verity-test-token\";\n", "    token = \"verity-test-token\";\n    page_size = \"100\";\n" } },
	  "page_size", "systems.verity.page_size", "must be a whole number" },
	{ "tls_verify not a boolean",
	  { { "    token = \"verity-test-token\";\n", "    token = \"verity-test-token\";\n    tls_verify = 0;\n" } },
	  "tls_verify", "systems.verity.tls_verify", "must be true or false" },
	{ "bad rule text",
	  { { "", "fields = {\n  phone = \"sometimes\";\n};\n" } },
	  "phone = \"sometimes\"", "fields.phone",
	  "unknown rule \"sometimes\" (expected two-way, always:<system>, prefer:<system>-unless-blank, "
	  "newest, union, prefer-valid, sticky-true or none)" },
	{ "rule naming a system that is not configured",
	  { { "", "fields = {\n  email = \"always:hubspot\";\n};\n" } },
	  "always:hubspot", "fields.email", "rule \"always:hubspot\" names a system that is not configured" },
	{ "union on a non-set field",
	  { { "", "fields = {\n  email = \"union\";\n};\n" } },
	  "email = \"union\"", "fields.email", "union is the rule for sets (tags) and only for them" },
	{ "a set field without union",
	  { { "", "fields = {\n  tags = \"two-way\";\n};\n" } },
	  "tags = ", "fields.tags", "union is the rule for sets (tags) and only for them" },
	{ "unknown field",
	  { { "", "fields = {\n  nickname = \"two-way\";\n};\n" } },
	  "nickname", "fields.nickname", "unknown field (custom fields go in custom_fields)" },
	{ "source_order missing a system",
	  { { "", "source_order = [ \"ghl\", \"aloware\" ];\n" } },
	  "source_order", "source_order", "must list every configured system exactly once" },
	{ "source_order naming an unknown system",
	  { { "", "source_order = [ \"ghl\", \"aloware\", \"hubspot\" ];\n" } },
	  "source_order", "source_order", "entry 3 is not a configured system" },
	{ "source_order naming a system twice",
	  { { "", "source_order = [ \"ghl\", \"aloware\", \"ghl\" ];\n" } },
	  "source_order", "source_order", "lists ghl twice" },
	{ "token and token_file both set",
	  { { "    token = \"ghl-test-token\";\n", "    token = \"ghl-test-token\";\n    token_file = \"ghl.token\";\n" } },
	  "ghl = {", "systems.ghl", "exactly one of token or token_file is required" },
	{ "neither token nor token_file",
	  { { "    token = \"aloware-test-token\";\n", "" } },
	  "aloware = {", "systems.aloware", "exactly one of token or token_file is required" },
	{ "blank inline token",
	  { { "\"aloware-test-token\"", "\"  \"" } },
	  "token = \"  \"", "systems.aloware.token", "must be a non-empty string" },
	{ "missing token file",
	  { { "    token = \"verity-test-token\";\n", "    token_file = \"missing.token\";\n" } },
	  "missing.token", "systems.verity.token_file",
	  "cannot read token file {dir}/missing.token: No such file or directory" },
	{ "empty token file",
	  { { "    token = \"verity-test-token\";\n", "    token_file = \"empty.token\";\n" } },
	  "empty.token", "systems.verity.token_file", "token file {dir}/empty.token is empty" },
	{ "unknown default_country",
	  { { "", "default_country = \"ZZ\";\n" } },
	  "default_country", "default_country",
	  "unknown country \"ZZ\" (an ISO-3166 alpha-2 code such as US or GB)" },
	{ "bad log_level",
	  { { "", "log_level = \"loud\";\n" } },
	  "log_level", "log_level", "must be error, warn, info or debug" },
	{ "max_change_share above 1",
	  { { "", "safety = {\n  max_change_share = 1.5;\n};\n" } },
	  "max_change_share", "safety.max_change_share", "must be between 0 and 1" },
	{ "custom field named like a built-in",
	  { { "", "custom_fields = (\n  { name = \"phone\"; }\n);\n" } },
	  "name = \"phone\"", "custom_fields[0]", "field phone is defined twice" },
	{ "custom field defined twice",
	  { { "", "custom_fields = (\n  { name = \"tier\"; },\n  { name = \"tier\"; }\n);\n" } },
	  "{ name = \"tier\"; }\n);", "custom_fields[1]", "field tier is defined twice" },
	{ "custom field without a name",
	  { { "", "custom_fields = (\n  { rule = \"two-way\"; }\n);\n" } },
	  "rule = ", "custom_fields[0]", "needs a name" },
	{ "custom field with union",
	  { { "", "custom_fields = (\n  { name = \"tier\";\n    rule = \"union\"; }\n);\n" } },
	  "rule = \"union\"", "custom_fields[0].rule", "union is the rule for sets (tags) and only for them" },
	{ "custom field key not a string",
	  { { "", "custom_fields = (\n  { name = \"tier\";\n    aloware = 1; }\n);\n" } },
	  "aloware = 1", "custom_fields[0].aloware", "must be a string" },

	/* Opt-outs take sticky-true, and only they (I4). */
	{ "sticky-true on a field that is no opt-out",
	  { { "", "fields = {\n  first_name = \"sticky-true\";\n};\n" } },
	  "first_name = ", "fields.first_name", "sticky-true is the rule for opt-outs and the only one they take" },
	{ "sticky-true on a set field",
	  { { "", "fields = {\n  tags = \"sticky-true\";\n};\n" } },
	  "tags = ", "fields.tags", "union is the rule for sets (tags) and only for them" },
	{ "an opt-out with another rule",
	  { { "", "fields = {\n  optout_sms = \"two-way\";\n};\n" } },
	  "optout_sms = ", "fields.optout_sms", "sticky-true is the rule for opt-outs and the only one they take" },
	{ "an opt-out that would not sync",
	  { { "", "fields = {\n  optout_call = \"none\";\n};\n" } },
	  "optout_call = ", "fields.optout_call", "sticky-true is the rule for opt-outs and the only one they take" },
	{ "a custom field with sticky-true",
	  { { "", "custom_fields = (\n  { name = \"dnc\";\n    rule = \"sticky-true\"; }\n);\n" } },
	  "rule = \"sticky-true\"", "custom_fields[0].rule",
	  "sticky-true is the rule for opt-outs and the only one they take" },

	/* optouts.opt_in */
	{ "opt_in naming a system that is not configured",
	  { { "", "optouts = {\n  opt_in = \"ghl, hubspot\";\n};\n" } },
	  "opt_in = ", "optouts.opt_in", "hubspot is not a configured system" },
	{ "opt_in naming a known but unconfigured system",
	  { { "", "optouts = {\n  opt_in = \"texting\";\n};\n" } },
	  "opt_in = ", "optouts.opt_in", "texting is not a configured system" },
	{ "opt_in not a string",
	  { { "", "optouts = {\n  opt_in = true;\n};\n" } },
	  "opt_in = ", "optouts.opt_in", "must be \"never\", \"same-system\" or a list of systems" },

	/* call_lists */
	{ "call lists in an unknown system",
	  { { "", "call_lists = {\n  system = \"hubspot\";\n  rules = ( { tag = \"vip\"; user_id = \"101\"; } );\n};\n" } },
	  "call_lists = {", "call_lists", "hubspot is not a configured system with call lists" },
	{ "call lists in a system without lists",
	  { { "", "call_lists = {\n  system = \"ghl\";\n  rules = ( { tag = \"vip\"; user_id = \"101\"; } );\n};\n" } },
	  "call_lists = {", "call_lists", "ghl is not a configured system with call lists" },
	{ "call lists default to aloware, which is not configured",
	  { { "  aloware = {\n    base_url = \"http://127.0.0.1:9002\";\n    token = \"aloware-test-token\";\n  };\n", "" },
	    { "", "call_lists = {\n  rules = ( { tag = \"vip\"; user_id = \"101\"; } );\n};\n" } },
	  "call_lists = {", "call_lists", "aloware is not a configured system with call lists" },
	{ "call lists without rules",
	  { { "", "call_lists = {\n  system = \"aloware\";\n};\n" } },
	  "call_lists = {", "call_lists", "rules must be a list of { tag = ...; user_id = ...; } groups" },
	{ "call list rules not a list",
	  { { "", "call_lists = {\n  rules = \"vip\";\n};\n" } },
	  "call_lists = {", "call_lists", "rules must be a list of { tag = ...; user_id = ...; } groups" },
	{ "call list rule with a bad match",
	  { { "", "call_lists = {\n  rules = (\n    { tag = \"vip\"; user_id = \"101\";\n"
		  "      match = \"fuzzy\"; }\n  );\n};\n" } },
	  "match = \"fuzzy\"", "call_lists.rules[0].match", "must be exact, case-insensitive or regex" },
	{ "call list rule with a match of the wrong case",
	  { { "", "call_lists = {\n  rules = (\n    { tag = \"vip\"; user_id = \"101\";\n"
		  "      match = \"Exact\"; }\n  );\n};\n" } },
	  "match = \"Exact\"", "call_lists.rules[0].match", "must be exact, case-insensitive or regex" },
	{ "call list rule with a bad regex",
	  { { "", "call_lists = {\n  rules = (\n    { tag = \"vip\"; user_id = \"101\"; match = \"regex\"; },\n"
		  "    { user_id = \"102\"; match = \"regex\";\n      tag = \"(unclosed\"; }\n  );\n};\n" } },
	  "tag = \"(unclosed\"", "call_lists.rules[1].tag", "is not a valid regular expression" },
	{ "call list rule without a target",
	  { { "", "call_lists = {\n  rules = (\n    { tag = \"vip\"; user_id = \"101\"; },\n"
		  "    { tag = \"buyer\"; match = \"exact\"; }\n  );\n};\n" } },
	  "{ tag = \"buyer\"", "call_lists.rules[1]", "needs exactly one of user_id or tag_id" },
	{ "call list rule with both targets",
	  { { "", "call_lists = {\n  rules = (\n    { tag = \"vip\"; user_id = \"101\"; tag_id = \"5\"; }\n  );\n};\n" } },
	  "{ tag = \"vip\"", "call_lists.rules[0]", "needs exactly one of user_id or tag_id" },
	{ "call list rule without tag",
	  { { "", "call_lists = {\n  rules = (\n    { user_id = \"101\"; }\n  );\n};\n" } },
	  "{ user_id = ", "call_lists.rules[0]", "needs tag" },
	{ "call list rule with a user_id that is no number",
	  { { "", "call_lists = {\n  rules = (\n    { tag = \"vip\";\n      user_id = \"L1\"; }\n  );\n};\n" } },
	  "user_id = \"L1\"", "call_lists.rules[0].user_id", "must be a number" },
	{ "call list rule with a tag_id that is no number",
	  { { "", "call_lists = {\n  rules = (\n    { tag = \"vip\";\n      tag_id = \"\"; }\n  );\n};\n" } },
	  "tag_id = \"\"", "call_lists.rules[0].tag_id", "must be a number" },
	{ "call list rule with a user_id that is no string",
	  { { "", "call_lists = {\n  rules = (\n    { tag = \"vip\";\n      user_id = 7; }\n  );\n};\n" } },
	  "user_id = 7", "call_lists.rules[0].user_id", "must be a string" },
	/* Aloware documents no endpoint that adds to a list by id. */
	{ "call list rule with the undocumented list_id",
	  { { "", "call_lists = {\n  rules = (\n    { tag = \"vip\";\n      list_id = \"101\"; }\n  );\n};\n" } },
	  "list_id = \"101\"", "call_lists.rules[0].list_id",
	  "is not supported: Aloware has no documented endpoint that adds a contact to a list by id; "
	  "name the list's owner with user_id (its Power Dialer) or an Aloware tag with tag_id" },

	/* The sweep */
	{ "negative sweep budget",
	  { { "    token = \"aloware-test-token\";\n", "    token = \"aloware-test-token\";\n    sweep = -1;\n" } },
	  "sweep = -1", "systems.aloware.sweep", "must be between 0 and 100000" },
	{ "sweep interval above 30 days",
	  { { "    token = \"aloware-test-token\";\n",
	      "    token = \"aloware-test-token\";\n    sweep_interval = 2592001;\n" } },
	  "sweep_interval", "systems.aloware.sweep_interval", "must be between 0 and 2592000" },
	{ "negative delete checks",
	  { { "    token = \"aloware-test-token\";\n",
	      "    token = \"aloware-test-token\";\n    delete_checks = -1;\n" } },
	  "delete_checks", "systems.aloware.delete_checks", "must be between 0 and 100000" },
	/* Credentials: a static token or OAuth (GHL only), never both */
	{ "OAuth and a token both set",
	  { { "    location_id = \"loc-demo\";\n", "    location_id = \"loc-demo\";\n    oauth_client_id = \"cid\";\n"
	      "    oauth_client_secret = \"cs\";\n    oauth_token_file = \"ghl-oauth.json\";\n" } },
	  "ghl = {", "systems.ghl", "either token/token_file or the oauth_* settings, not both" },
	{ "OAuth without a client id",
	  { { "    token = \"ghl-test-token\";\n", "    oauth_client_secret = \"cs\";\n"
	      "    oauth_token_file = \"ghl-oauth.json\";\n" } },
	  "ghl = {", "systems.ghl", "oauth_client_id is required with OAuth" },
	{ "OAuth without a token file",
	  { { "    token = \"ghl-test-token\";\n", "    oauth_client_id = \"cid\";\n    oauth_client_secret = \"cs\";\n" } },
	  "ghl = {", "systems.ghl", "oauth_token_file (a string) is required with OAuth" },
	{ "OAuth without a client secret",
	  { { "    token = \"ghl-test-token\";\n", "    oauth_client_id = \"cid\";\n"
	      "    oauth_token_file = \"ghl-oauth.json\";\n" } },
	  "ghl = {", "systems.ghl", "exactly one of oauth_client_secret or oauth_client_secret_file is required" },
	{ "OAuth for a system that has only tokens",
	  { { "    token = \"verity-test-token\";\n", "    oauth_client_id = \"cid\";\n    oauth_client_secret = \"cs\";\n"
	      "    oauth_token_file = \"v.json\";\n" } },
	  "verity = {", "systems.verity", "verity takes no OAuth settings (only a token)" },
	{ "OAuth token file missing",
	  { { "    token = \"ghl-test-token\";\n", "    oauth_client_id = \"cid\";\n    oauth_client_secret = \"cs\";\n"
	      "    oauth_token_file = \"missing-oauth.json\";\n" } },
	  "missing-oauth.json", "systems.ghl.oauth_token_file",
	  "cannot use token file {dir}/missing-oauth.json: No such file or directory" },
	{ "quota_reserve negative",
	  { { "    location_id = \"loc-demo\";\n", "    location_id = \"loc-demo\";\n    quota_reserve = -1;\n" } },
	  "quota_reserve", "systems.ghl.quota_reserve", "must be between 0 and 100000000" },
	{ "listing not a boolean",
	  { { "    token = \"aloware-test-token\";\n", "    token = \"aloware-test-token\";\n    listing = \"no\";\n" } },
	  "listing = ", "systems.aloware.listing", "must be true or false" },
};

static void test_errors_name_file_line_setting(void **state)
{
	struct fixture *fx = *state;
	int wrong = 0;

	write_in_dir(fx, "empty.token", "\n");
	for (int i = 0; i < N(error_cases); i++) {
		const struct error_case *c = &error_cases[i];
		char *text = config_text(c->edits, N(c->edits));
		char *what = with_dir(c->what, fx->dir);
		char *want = xasprintf("%s:%d: %s: %s", fx->path, line_of(text, c->marker), c->setting, what);
		struct config *cfg;

		write_file(fx->path, text);
		df_err_clear(&fx->err);
		cfg = config_load(fx->path, &fx->err);
		if (cfg != NULL) {
			print_error("%s: loaded, want \"%s\"\n", c->label, want);
			wrong++;
			config_free(cfg);
		} else if (fx->err.fail != DF_FAIL_CONFIG || strcmp(fx->err.msg, want) != 0) {
			print_error("%s:\n  got  [%s] \"%s\"\n  want [config] \"%s\"\n", c->label,
				    df_fail_name(fx->err.fail), fx->err.msg, want);
			wrong++;
		}
		free(want);
		free(what);
		free(text);
	}
	if (wrong)
		fail_msg("%d of %d error cases wrong", wrong, N(error_cases));
}

/* Errors that have no line to point at, or come from libconfig itself. */
static void test_errors_without_setting(void **state)
{
	static const struct edit no_state[] = { { "state_path = \"state.db\";\n", "" } };
	static const struct edit syntax[] = { { "\"aloware-test-token\";", ";" } };
	struct fixture *fx = *state;
	char *text, *want;

	text = config_text(no_state, N(no_state));
	write_file(fx->path, text);
	free(text);
	assert_null(config_load(fx->path, &fx->err));
	assert_int_equal(fx->err.fail, DF_FAIL_CONFIG);
	want = xasprintf("%s: state_path is required", fx->path);
	assert_string_equal(fx->err.msg, want);
	free(want);

	text = config_text(syntax, N(syntax));
	write_file(fx->path, text);
	want = xasprintf("%s:%d: syntax error", fx->path, line_of(text, "token = ;"));
	free(text);
	assert_null(config_load(fx->path, &fx->err));
	assert_int_equal(fx->err.fail, DF_FAIL_CONFIG);
	assert_string_equal(fx->err.msg, want);
	free(want);

	want = xasprintf("%s/nothing.conf", fx->dir);
	assert_null(config_load(want, &fx->err));
	assert_int_equal(fx->err.fail, DF_FAIL_CONFIG);
	text = xasprintf("%s: cannot read: No such file or directory", want);
	assert_string_equal(fx->err.msg, text);
	free(text);
	free(want);
}

/* A custom field's rule of the wrong type must be refused, not replaced by
 * the default: the check names the setting like every other error. */
static void test_custom_field_rule_must_be_text(void **state)
{
	static const struct edit edits[] = {
		{ "", "custom_fields = (\n  { name = \"dnc\";\n    rule = true; }\n);\n" },
	};
	struct fixture *fx = *state;
	char *text = config_text(edits, N(edits));
	char *prefix = xasprintf("%s:%d: custom_fields[0].rule: ", fx->path, line_of(text, "rule = true"));
	struct config *cfg;

	write_file(fx->path, text);
	free(text);
	cfg = config_load(fx->path, &fx->err);
	if (cfg != NULL) {
		int f = field_find("dnc");
		print_error("loaded with rule \"%s\" for dnc\n", f >= 0 ? cfg->rule[f].text : "?");
		config_free(cfg);
		free(prefix);
		fail_msg("a non-text custom field rule was accepted");
	}
	assert_int_equal(fx->err.fail, DF_FAIL_CONFIG);
	if (strncmp(fx->err.msg, prefix, strlen(prefix)) != 0)
		fail_msg("got \"%s\", want it to start with \"%s\"", fx->err.msg, prefix);
	free(prefix);
}

/* Custom fields */

static void test_custom_fields(void **state)
{
	static const struct edit edits[] = {
		{ "", "custom_fields = (\n"
		      "  { name = \"investor_tier\"; rule = \"newest\"; ghl = \"cf_abc\"; aloware = \"csf1\"; },\n"
		      "  { name = \"dnc\"; rule = \"newest\"; verity = \"doNotCall\"; },\n"
		      "  { name = \"nickname\"; ghl = \"cf_nick\"; }\n"
		      ");\n" },
	};
	static const struct {
		const char *name, *rule;
		enum rule_kind kind;
		const char *key[3];     /* ghl, aloware, verity */
	} want[] = {
		{ "investor_tier", "newest", RULE_NEWEST, { "cf_abc", "csf1", NULL } },
		{ "dnc", "newest", RULE_NEWEST, { NULL, NULL, "doNotCall" } },
		{ "nickname", "two-way", RULE_TWO_WAY, { "cf_nick", NULL, NULL } },
	};
	struct fixture *fx = *state;
	struct config *cfg = load_edited(fx, edits, N(edits));

	assert_int_equal(fields_count(), F_NBUILTIN + N(want));
	for (int i = 0; i < N(want); i++) {
		int f = field_find(want[i].name);
		assert_int_equal(f, F_NBUILTIN + i);
		assert_true(field_get(f)->custom);
		assert_int_equal(field_get(f)->kind, FIELD_TEXT);
		assert_string_equal(cfg->rule[f].text, want[i].rule);
		assert_int_equal(cfg->rule[f].kind, want[i].kind);
		for (int s = 0; s < 3; s++) {
			const char *got = cfg->sys[s].field_key[f];
			if (!(got == NULL ? want[i].key[s] == NULL
					  : want[i].key[s] != NULL && strcmp(got, want[i].key[s]) == 0))
				fail_msg("%s: key in %s is %s, want %s", want[i].name, cfg->sys[s].name,
					 got ? got : "NULL", want[i].key[s] ? want[i].key[s] : "NULL");
		}
	}
	config_free(cfg);

	/* Loading again starts from the built-in fields. */
	cfg = load_edited(fx, NULL, 0);
	assert_int_equal(fields_count(), F_NBUILTIN);
	assert_int_equal(field_find("investor_tier"), -1);
	config_free(cfg);
}

/* Call lists, opt-ins and the sweep */

static void test_call_lists(void **state)
{
	static const struct edit edits[] = {
		{ "", "call_lists = {\n  rules = (\n"
		      "    { tag = \"VIP\"; user_id = \"101\"; },\n"
		      "    { tag = \"Buyer\"; user_id = \"102\"; match = \"exact\"; },\n"
		      "    { tag = \"^hot-\"; user_id = \"103\"; match = \"regex\"; },\n"
		      "    { tag = \"seller\"; tag_id = \"55\"; match = \"case-insensitive\"; }\n"
		      "  );\n};\n" },
	};
	static const struct { const char *tag; int match; const char *list; } want[] = {
		{ "VIP", MATCH_NOCASE, "101" },
		{ "Buyer", MATCH_EXACT, "102" },
		{ "^hot-", MATCH_REGEX, "103" },
		{ "seller", MATCH_NOCASE, "tag:55" },
	};
	struct fixture *fx = *state;
	struct config *cfg = load_edited(fx, edits, N(edits));

	assert_string_equal(cfg->lists_system, "aloware");
	assert_int_equal(cfg->nlists, N(want));
	for (int i = 0; i < N(want); i++) {
		const struct list_rule *lr = &cfg->lists[i];
		assert_string_equal(lr->tag, want[i].tag);
		assert_string_equal(lr->list_id, want[i].list);
		if ((int)lr->match != want[i].match)
			fail_msg("rule %d: match %d, want %d", i, (int)lr->match, want[i].match);
		if ((lr->regex != NULL) != (want[i].match == MATCH_REGEX))
			fail_msg("rule %d: regex %s", i, lr->regex ? "compiled" : "missing");
	}
	/* Compiled as an extended expression. */
	assert_int_equal(regexec(cfg->lists[2].regex, "hot-lead", 0, NULL, 0), 0);
	assert_int_not_equal(regexec(cfg->lists[2].regex, "not-hot-lead", 0, NULL, 0), 0);
	config_free(cfg);

	/* Without call_lists: no lists system, no rules. */
	cfg = load_edited(fx, NULL, 0);
	assert_null(cfg->lists_system);
	assert_int_equal(cfg->nlists, 0);
	config_free(cfg);

	/* An empty rule list is allowed. */
	{
		static const struct edit none[] = {
			{ "", "call_lists = {\n  system = \"aloware\";\n  rules = ( );\n};\n" },
		};
		cfg = load_edited(fx, none, N(none));
		assert_string_equal(cfg->lists_system, "aloware");
		assert_int_equal(cfg->nlists, 0);
		config_free(cfg);
	}
}

static void test_opt_in(void **state)
{
	static const struct {
		const char *setting;    /* NULL: not set */
		int want;
		bool from[3];           /* ghl, aloware, verity */
	} cases[] = {
		{ NULL, OPTIN_SAME_SYSTEM, { false, false, false } },
		{ "same-system", OPTIN_SAME_SYSTEM, { false, false, false } },
		{ "never", OPTIN_NEVER, { false, false, false } },
		{ "verity", OPTIN_LISTED, { false, false, true } },
		{ "verity, ghl", OPTIN_LISTED, { true, false, true } },
		{ "aloware,ghl", OPTIN_LISTED, { true, true, false } },
	};
	struct fixture *fx = *state;

	for (int i = 0; i < N(cases); i++) {
		char *line = cases[i].setting ? xasprintf("optouts = { opt_in = \"%s\"; };\n", cases[i].setting)
					      : xstrdup("");
		const struct edit edits[] = { { "", line } };
		struct config *cfg = load_edited(fx, edits, N(edits));

		if ((int)cfg->opt_in != cases[i].want)
			fail_msg("opt_in %s: %d, want %d", cases[i].setting ? cases[i].setting : "(unset)",
				 (int)cfg->opt_in, cases[i].want);
		for (int s = 0; s < 3; s++)
			if (cfg->opt_in_from[s] != cases[i].from[s])
				fail_msg("opt_in %s: %s %s, want %s", cases[i].setting ? cases[i].setting : "(unset)",
					 cfg->sys[s].name, cfg->opt_in_from[s] ? "allowed" : "not allowed",
					 cases[i].from[s] ? "allowed" : "not allowed");
		config_free(cfg);
		free(line);
	}
}

static void test_sweep_settings(void **state)
{
	static const struct edit edits[] = {
		{ "    token = \"ghl-test-token\";\n",
		  "    token = \"ghl-test-token\";\n    listing = false;\n" },
		{ "    token = \"aloware-test-token\";\n",
		  "    token = \"aloware-test-token\";\n    listing = false;\n    sweep = 0;\n"
		  "    sweep_interval = 60;\n    propagate_deletes = true;\n    delete_checks = 7;\n" },
		{ "    token = \"verity-test-token\";\n",
		  "    token = \"verity-test-token\";\n    sweep = 200;\n" },
	};
	struct fixture *fx = *state;
	struct config *cfg = load_edited(fx, NULL, 0);

	/* With a listing the sweep is a slow drift check. Aloware's listing
	 * and events are our relay contract: off unless configured. */
	assert_false(cfg->sys[1].listing);
	assert_false(cfg->sys[1].events);
	assert_int_equal(cfg->sys[1].sweep, 50);
	assert_int_equal(cfg->sys[1].sweep_interval, 0);
	for (int s = 0; s < cfg->nsys; s += 2) {
		assert_true(cfg->sys[s].listing);
		assert_true(cfg->sys[s].events);
		assert_int_equal(cfg->sys[s].sweep, 5);
		assert_int_equal(cfg->sys[s].sweep_interval, 3600);
		assert_false(cfg->sys[s].propagate_deletes);
		assert_int_equal(cfg->sys[s].delete_checks, 100);
	}
	config_free(cfg);

	cfg = load_edited(fx, edits, N(edits));
	/* Without one it is how changes are seen. */
	assert_false(cfg->sys[0].listing);
	assert_int_equal(cfg->sys[0].sweep, 50);
	assert_int_equal(cfg->sys[0].sweep_interval, 0);
	/* Explicit settings win over either default. */
	assert_false(cfg->sys[1].listing);
	assert_int_equal(cfg->sys[1].sweep, 0);
	assert_int_equal(cfg->sys[1].sweep_interval, 60);
	assert_true(cfg->sys[1].propagate_deletes);
	assert_int_equal(cfg->sys[1].delete_checks, 7);
	assert_true(cfg->sys[2].listing);
	assert_int_equal(cfg->sys[2].sweep, 200);
	assert_int_equal(cfg->sys[2].sweep_interval, 3600);
	config_free(cfg);
}

/* The loader reads a kind's own settings from its table alone: types,
 * defaults, bounds and required, with no knowledge of the kind. */
static const struct setting fake_settings[] = {
	{ "depth", SETTING_INT, "3", 1, 9, false, true, "how deep" },
	{ "loud", SETTING_BOOL, "false", 0, 0, false, false, "whether loud" },
	{ "realm", SETTING_STRING, NULL, 0, 0, true, true, "the realm" },
	{ NULL, SETTING_STRING, NULL, 0, 0, false, false, NULL },
};

static const struct system_kind fake_kind = {
	.name = "fake", .settings = fake_settings, .max_page_size = 50, .default_rate_limit = 7,
};

static struct config *load_fake(struct fixture *fx, const char *own)
{
	static const struct system_kind *const fake_kinds[] = { &fake_kind, NULL };
	char text[512];
	struct config *cfg;

	snprintf(text, sizeof(text), "state_path = \"s.db\";\nsystems = { fake = {\n"
		 "  base_url = \"http://127.0.0.1:1\"; token = \"t\";\n%s\n}; };\n", own);
	write_file(fx->path, text);
	config_set_kinds(fake_kinds);
	cfg = config_load(fx->path, &fx->err);
	config_set_kinds(connector_kinds());
	return cfg;
}

static void test_kind_settings_from_its_table(void **state)
{
	struct fixture *fx = *state;
	struct config *cfg = load_fake(fx, "realm = \"north\";");

	assert_non_null(cfg);
	assert_int_equal(cfg->sys[0].rate_limit, 7);
	assert_string_equal(config_own(&cfg->sys[0], "realm"), "north");
	assert_int_equal(config_own_num(&cfg->sys[0], "depth"), 3);
	assert_int_equal(config_own_num(&cfg->sys[0], "loud"), 0);
	config_free(cfg);
	cfg = load_fake(fx, "realm = \"r\"; depth = 9; loud = true;");
	assert_non_null(cfg);
	assert_int_equal(config_own_num(&cfg->sys[0], "depth"), 9);
	assert_int_equal(config_own_num(&cfg->sys[0], "loud"), 1);
	config_free(cfg);

	assert_null(load_fake(fx, "realm = \"r\"; depth = 10;"));
	assert_non_null(strstr(fx->err.msg, "systems.fake.depth: must be between 1 and 9"));
	assert_null(load_fake(fx, "realm = \"r\"; loud = 1;"));
	assert_non_null(strstr(fx->err.msg, "systems.fake.loud: must be true or false"));
	assert_null(load_fake(fx, "depth = 2;"));
	assert_non_null(strstr(fx->err.msg, "realm is required for fake"));
	assert_null(load_fake(fx, "realm = \"r\"; location_id = \"x\";"));
	assert_non_null(strstr(fx->err.msg, "systems.fake.location_id: unknown setting"));
	assert_null(load_fake(fx, "realm = \"r\"; page_size = 51;"));
	assert_non_null(strstr(fx->err.msg, "must be between 1 and 50"));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	config_set_kinds(connector_kinds());
	const struct CMUnitTest tests[] = {
		T(test_minimal_defaults),
		T(test_kind_settings_from_its_table),
		T(test_source_order),
		T(test_defaults_without_ghl),
		T(test_settings_override_defaults),
		T(test_token_file_relative_to_config),
		T(test_errors_name_file_line_setting),
		T(test_errors_without_setting),
		T(test_custom_field_rule_must_be_text),
		T(test_custom_fields),
		T(test_call_lists),
		T(test_opt_in),
		T(test_sweep_settings),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
