/*
 * merge.h - per-field three-way merge under the configured rules.
 *
 * Pure: values in, decision and reason out; no I/O, no state. Systems are
 * numbered in source-of-truth order (0 wins ties under two-way).
 *
 * Three-way means each system's value is compared with the base, the value
 * all systems last agreed on. A system whose value equals the base did not
 * change the field. When exactly one distinct new value appears, it wins
 * everywhere and there is no conflict. When several systems changed the
 * field to different values, the rule decides and the result is flagged as a
 * conflict. `always:<system>` and the set/flag rules (union, sticky-true)
 * apply whether or not there is a conflict.
 */
#ifndef DF_MERGE_H
#define DF_MERGE_H

#include <stdbool.h>
#include <stddef.h>

#include "../core/record.h"

enum rule_kind {
	RULE_TWO_WAY, RULE_ALWAYS, RULE_PREFER_UNLESS_BLANK, RULE_NEWEST,
	RULE_UNION, RULE_PREFER_VALID, RULE_STICKY_TRUE, RULE_NONE,
};

struct merge_rule {
	enum rule_kind kind;
	int system;             /* for always:/prefer:, else -1 */
	char text[64];          /* as configured, for reports */
};

struct merge_input {
	enum field_kind kind;
	const char *base;                       /* NULL: never agreed */
	int nsys;
	const char *value[DF_MAX_SYSTEMS];      /* NULL: system has no value */
	long long updated_ms[DF_MAX_SYSTEMS];   /* for newest */
	const char *keep_prefix;                /* union: members never removed */
};

struct merge_result {
	char *value;            /* owned; NULL when the rule is none */
	int winner;             /* system index, -1 when no single system won */
	bool changed;           /* value differs from base */
	bool conflict;
	const char *reason;     /* static text */
};

/* Parses a rule ("two-way", "always:ghl", "prefer:ghl-unless-blank",
 * "newest", "union", "prefer-valid", "sticky-true", "none"); systems names
 * the configured systems in order. Returns -1 and fills why on error. */
int merge_rule_parse(const char *text, const char *const *systems, int nsys,
		     struct merge_rule *out, char *why, size_t whylen);

void merge_field(const struct merge_rule *rule, const struct merge_input *in,
		 struct merge_result *out);
void merge_result_free(struct merge_result *r);

#endif
