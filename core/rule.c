/*
 * rule.c - parsing a merge rule ("two-way", "always:ghl", ...).
 */
#include <stdio.h>
#include <string.h>

#include "rule.h"

static int system_index(const char *name, size_t len, const char *const *systems, int nsys)
{
	for (int i = 0; i < nsys; i++)
		if (strlen(systems[i]) == len && strncmp(systems[i], name, len) == 0)
			return i;
	return -1;
}

int merge_rule_parse(const char *text, const char *const *systems, int nsys,
		     struct merge_rule *out, char *why, size_t whylen)
{
	static const struct { const char *name; enum rule_kind kind; } plain[] = {
		{ "two-way", RULE_TWO_WAY }, { "newest", RULE_NEWEST },
		{ "union", RULE_UNION }, { "prefer-valid", RULE_PREFER_VALID },
		{ "sticky-true", RULE_STICKY_TRUE }, { "none", RULE_NONE },
	};
	const char *sys, *end;

	memset(out, 0, sizeof(*out));
	out->system = -1;
	snprintf(out->text, sizeof(out->text), "%s", text);
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		if (strcmp(text, plain[i].name) == 0) {
			out->kind = plain[i].kind;
			return 0;
		}
	}
	if (strncmp(text, "always:", 7) == 0) {
		out->kind = RULE_ALWAYS;
		sys = text + 7;
		end = sys + strlen(sys);
	} else if (strncmp(text, "prefer:", 7) == 0 &&
		   strlen(text) > 20 && strcmp(text + strlen(text) - 13, "-unless-blank") == 0) {
		out->kind = RULE_PREFER_UNLESS_BLANK;
		sys = text + 7;
		end = text + strlen(text) - 13;
	} else {
		snprintf(why, whylen, "unknown rule \"%s\" (expected two-way, always:<system>, "
			 "prefer:<system>-unless-blank, newest, union, prefer-valid, sticky-true or none)", text);
		return -1;
	}
	out->system = system_index(sys, (size_t)(end - sys), systems, nsys);
	if (out->system < 0) {
		snprintf(why, whylen, "rule \"%s\" names a system that is not configured", text);
		return -1;
	}
	return 0;
}
