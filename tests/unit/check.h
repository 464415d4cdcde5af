/*
 * check.h - what the unit tests share: cmocka's includes, the table size
 * macro and the checks that report a wrong table row without stopping, so
 * one run lists every wrong row.
 */
#ifndef DF_TEST_CHECK_H
#define DF_TEST_CHECK_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* 0 when got equals want (both may be NULL), else prints and returns 1. */
static inline int check_str(const char *label, const char *what, const char *got, const char *want)
{
	if (got == NULL && want == NULL)
		return 0;
	if (got != NULL && want != NULL && strcmp(got, want) == 0)
		return 0;
	print_error("%s: %s: got %s%s%s, want %s%s%s\n", label, what,
		    got ? "\"" : "", got ? got : "NULL", got ? "\"" : "",
		    want ? "\"" : "", want ? want : "NULL", want ? "\"" : "");
	return 1;
}

static inline int check_int(const char *label, const char *what, long long got, long long want)
{
	if (got == want)
		return 0;
	print_error("%s: %s: got %lld, want %lld\n", label, what, got, want);
	return 1;
}

/* Merges in under the rule (text, among the systems named) and checks
 * the decision; returns the number of wrong parts. */
#include "../../engine/merge.h"

struct merge_want {
	const char *value;
	int winner;
	bool changed, conflict;
	const char *reason;
};

static inline int check_merge(const char *label, const char *rule_text, const char *const *systems,
			      const struct merge_input *in, const struct merge_want *want)
{
	struct merge_rule rule;
	struct merge_result res;
	char why[256];
	int wrong = 0;

	if (merge_rule_parse(rule_text, systems, in->nsys, &rule, why, sizeof(why)) != 0)
		fail_msg("%s: rule %s: %s", label, rule_text, why);
	merge_field(&rule, in, &res);
	wrong += check_str(label, "value", res.value, want->value);
	wrong += check_int(label, "winner", res.winner, want->winner);
	wrong += check_int(label, "changed", res.changed, want->changed);
	wrong += check_int(label, "conflict", res.conflict, want->conflict);
	wrong += check_str(label, "reason", res.reason, want->reason);
	merge_result_free(&res);
	if (res.value != NULL)
		fail_msg("%s: merge_result_free left the value", label);
	return wrong;
}

#endif
