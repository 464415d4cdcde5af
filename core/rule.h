/*
 * rule.h - a field's merge rule as the configuration names it: parsed
 * when the configuration is loaded, applied by the engine (engine/merge.h).
 * Here in core so that the configuration needs nothing above it.
 */
#ifndef DF_RULE_H
#define DF_RULE_H

#include <stddef.h>

enum rule_kind {
	RULE_TWO_WAY, RULE_ALWAYS, RULE_PREFER_UNLESS_BLANK, RULE_NEWEST,
	RULE_UNION, RULE_PREFER_VALID, RULE_STICKY_TRUE, RULE_NONE,
};

struct merge_rule {
	enum rule_kind kind;
	int system;             /* for always:/prefer:, else -1 */
	char text[64];          /* as configured, for reports */
};

/* Parses a rule ("two-way", "always:ghl", "prefer:ghl-unless-blank",
 * "newest", "union", "prefer-valid", "sticky-true", "none"); systems names
 * the configured systems in order. Returns -1 and fills why on error. */
int merge_rule_parse(const char *text, const char *const *systems, int nsys,
		     struct merge_rule *out, char *why, size_t whylen);

#endif
