/*
 * test_merge.c - every merge rule, with and without conflicts
 * (engine/merge.c), driven through merge_rule_parse and merge_field exactly
 * as the configuration and the reconciler use them.
 *
 * The systems are ghl, aloware and verity, in that source order (index 0, 1,
 * 2). Each row gives the base (the value last agreed, NULL if never), each
 * system's value (NULL: the system does not carry it), the update times for
 * `newest`, and the exact decision expected: value, winner, changed,
 * conflict and reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

#include "../../engine/merge.h"


static const char *const systems[] = { "ghl", "aloware", "verity" };
enum { GHL, ALOWARE, VERITY, NSYS };

struct merge_case {
	const char *label;
	const char *rule;
	enum field_kind kind;
	const char *base;
	const char *value[NSYS];
	long long updated_ms[NSYS];     /* only newest reads these */
	/* expected */
	const char *want;
	int winner;                     /* -1: no single system won */
	bool changed, conflict;
	const char *reason;
};

/* Merges every row and reports every wrong decision before failing. */
static void run_cases(const struct merge_case *cases, int n)
{
	int wrong = 0;

	for (int i = 0; i < n; i++) {
		const struct merge_case *c = &cases[i];
		struct merge_input in = { .kind = c->kind, .base = c->base, .nsys = NSYS,
					  .keep_prefix = "SYS:" };
		struct merge_want want = { c->want, c->winner, c->changed, c->conflict, c->reason };

		for (int s = 0; s < NSYS; s++) {
			in.value[s] = c->value[s];
			in.updated_ms[s] = c->updated_ms[s];
		}
		wrong += check_merge(c->label, c->rule, systems, &in, &want);
	}
	if (wrong)
		fail_msg("%d failed check(s) over %d rows", wrong, n);
}

static const char ONE[] = "changed in one system";
static const char SEVERAL[] = "same change in several systems";
static const char ORDER[] = "conflict: source order";
static const char UNCHANGED[] = "unchanged";
static const char NOVALUE[] = "no system carries a value";

static void test_two_way(void **state)
{
	static const struct merge_case cases[] = {
		{ "single change wins", "two-way", FIELD_TEXT, "Ann", { "Ann", "Anne", "Ann" }, { 0 },
		  "Anne", ALOWARE, true, false, ONE },
		{ "single change to blank wins", "two-way", FIELD_TEXT, "Ann", { "Ann", "Ann", "" }, { 0 },
		  "", VERITY, true, false, ONE },
		{ "same change in several", "two-way", FIELD_TEXT, "Ann", { "Anna", "Ann", "Anna" }, { 0 },
		  "Anna", GHL, true, false, SEVERAL },
		{ "conflict: first changed system in order", "two-way", FIELD_TEXT, "Ann",
		  { "Ann", "Anne", "Anna" }, { 0 }, "Anne", ALOWARE, true, true, ORDER },
		{ "conflict: ghl first", "two-way", FIELD_TEXT, "Ann", { "Annie", "Anne", "Anna" }, { 0 },
		  "Annie", GHL, true, true, ORDER },
		{ "conflict with a blank", "two-way", FIELD_TEXT, "Ann", { "", "Anne", "Ann" }, { 0 },
		  "", GHL, true, true, ORDER },
		{ "never agreed, one value", "two-way", FIELD_TEXT, NULL, { "Ann", NULL, NULL }, { 0 },
		  "Ann", GHL, true, false, ONE },
		{ "never agreed, conflict", "two-way", FIELD_TEXT, NULL, { NULL, "Ann", "Anne" }, { 0 },
		  "Ann", ALOWARE, true, true, ORDER },
		{ "blank vs NULL base is no change", "two-way", FIELD_TEXT, NULL, { "", "", NULL }, { 0 },
		  "", -1, false, false, UNCHANGED },
		{ "NULL value vs blank base is no change", "two-way", FIELD_TEXT, "", { "", NULL, "" }, { 0 },
		  "", -1, false, false, UNCHANGED },
		{ "unchanged keeps base", "two-way", FIELD_TEXT, "Ann", { "Ann", "Ann", NULL }, { 0 },
		  "Ann", -1, false, false, UNCHANGED },
		{ "no system carries it", "two-way", FIELD_TEXT, "Ann", { NULL, NULL, NULL }, { 0 },
		  "Ann", -1, false, false, NOVALUE },
		{ "no system carries it, never agreed", "two-way", FIELD_TEXT, NULL, { NULL, NULL, NULL },
		  { 0 }, "", -1, false, false, NOVALUE },
	};

	(void)state;
	run_cases(cases, N(cases));
}

static void test_always(void **state)
{
	static const char REVERTED[] = "always: other systems' edits reverted";
	static const struct merge_case cases[] = {
		{ "wins although others changed", "always:aloware", FIELD_EMAIL, "a@x.com",
		  { "b@x.com", "a@x.com", "c@x.com" }, { 0 }, "a@x.com", ALOWARE, false, true, REVERTED },
		{ "its change beats another", "always:aloware", FIELD_TEXT, "a", { "c", "b", "a" }, { 0 },
		  "b", ALOWARE, true, true, REVERTED },
		{ "its own change, no conflict", "always:aloware", FIELD_TEXT, "a", { "a", "b", "a" }, { 0 },
		  "b", ALOWARE, true, false, "always" },
		{ "others changed to its value", "always:aloware", FIELD_TEXT, "a", { "b", "b", "a" }, { 0 },
		  "b", ALOWARE, true, false, "always" },
		{ "nobody changed", "always:aloware", FIELD_TEXT, "a", { "a", "a", "a" }, { 0 },
		  "a", ALOWARE, false, false, "always" },
		{ "its blank wins", "always:verity", FIELD_TEXT, "a", { "b", "a", "" }, { 0 },
		  "", VERITY, true, true, REVERTED },
		{ "no value there: lone change wins", "always:aloware", FIELD_TEXT, "a", { "b", NULL, "a" },
		  { 0 }, "b", GHL, true, false, ONE },
		{ "no value there: conflict by order", "always:aloware", FIELD_TEXT, "a", { "b", NULL, "c" },
		  { 0 }, "b", GHL, true, true, ORDER },
		{ "no value there: unchanged", "always:aloware", FIELD_TEXT, "a", { "a", NULL, "a" },
		  { 0 }, "a", -1, false, false, UNCHANGED },
	};

	(void)state;
	run_cases(cases, N(cases));
}

static void test_prefer_unless_blank(void **state)
{
	static const char PREFERRED[] = "conflict: preferred system";
	static const char BLANK[] = "conflict: preferred system blank, first non-blank in source order";
	static const struct merge_case cases[] = {
		{ "preferred wins conflict", "prefer:verity-unless-blank", FIELD_TEXT, "1 Main St",
		  { "2 Oak Ave", "1 Main St", "3 Elm Rd" }, { 0 }, "3 Elm Rd", VERITY, true, true, PREFERRED },
		{ "preferred blank: first non-blank", "prefer:verity-unless-blank", FIELD_TEXT, "1 Main St",
		  { "", "4 Pine Ln", "" }, { 0 }, "4 Pine Ln", ALOWARE, true, true, BLANK },
		{ "preferred blank: ghl first", "prefer:verity-unless-blank", FIELD_TEXT, "1 Main St",
		  { "2 Oak Ave", "4 Pine Ln", "" }, { 0 }, "2 Oak Ave", GHL, true, true, BLANK },
		{ "preferred white space counts as blank", "prefer:verity-unless-blank", FIELD_TEXT,
		  "1 Main St", { "1 Main St", "4 Pine Ln", "  " }, { 0 }, "4 Pine Ln", ALOWARE, true, true,
		  BLANK },
		{ "lone change elsewhere wins", "prefer:verity-unless-blank", FIELD_TEXT, "1 Main St",
		  { "1 Main St", "4 Pine Ln", "1 Main St" }, { 0 }, "4 Pine Ln", ALOWARE, true, false, ONE },
		/* Three-way: a lone change wins under every rule but always:,
		 * even a blank from the preferred system. */
		{ "lone blank in preferred wins", "prefer:verity-unless-blank", FIELD_TEXT, "1 Main St",
		  { "1 Main St", "1 Main St", "" }, { 0 }, "", VERITY, true, false, ONE },
		{ "unchanged", "prefer:ghl-unless-blank", FIELD_TEXT, "1 Main St",
		  { "1 Main St", "1 Main St", NULL }, { 0 }, "1 Main St", -1, false, false, UNCHANGED },
	};

	(void)state;
	run_cases(cases, N(cases));
}

static void test_newest(void **state)
{
	static const char NEWEST[] = "conflict: newest update";
	static const struct merge_case cases[] = {
		{ "newest wins conflict", "newest", FIELD_TEXT, "a", { "b", "c", "d" }, { 100, 300, 200 },
		  "c", ALOWARE, true, true, NEWEST },
		{ "tie: source order", "newest", FIELD_TEXT, "a", { "b", "c", "d" }, { 300, 300, 100 },
		  "b", GHL, true, true, NEWEST },
		{ "tie among later systems", "newest", FIELD_TEXT, "a", { "b", "c", "d" }, { 100, 300, 300 },
		  "c", ALOWARE, true, true, NEWEST },
		{ "unknown time loses", "newest", FIELD_TEXT, "a", { "b", "c", "a" }, { 500, -1, 900 },
		  "b", GHL, true, true, NEWEST },
		{ "unchanged system's time does not count", "newest", FIELD_TEXT, "a", { "b", "c", "a" },
		  { 100, 200, 900 }, "c", ALOWARE, true, true, NEWEST },
		{ "lone change wins although older", "newest", FIELD_TEXT, "a", { "a", "b", "a" },
		  { 900, 100, 900 }, "b", ALOWARE, true, false, ONE },
		{ "same change, no conflict", "newest", FIELD_TEXT, "a", { "b", "a", "b" }, { 100, 900, 500 },
		  "b", GHL, true, false, SEVERAL },
	};

	(void)state;
	run_cases(cases, N(cases));
}

static void test_prefer_valid(void **state)
{
	static const char VALID[] = "conflict: first valid value in source order";
	static const struct merge_case cases[] = {
		{ "valid phone beats invalid", "prefer-valid", FIELD_PHONE, "+15550102030",
		  { "call office", "+15550109999", "+15550102030" }, { 0 },
		  "+15550109999", ALOWARE, true, true, VALID },
		{ "both valid: source order", "prefer-valid", FIELD_PHONE, "+15550102030",
		  { "+15550101111", "+15550102222", "+15550102030" }, { 0 },
		  "+15550101111", GHL, true, true, VALID },
		{ "none valid: source order", "prefer-valid", FIELD_PHONE, "+15550102030",
		  { "call office", "555-0102", "+15550102030" }, { 0 },
		  "call office", GHL, true, true, ORDER },
		{ "blank phone loses", "prefer-valid", FIELD_PHONE, "+15550102030",
		  { "", "+15550109999", NULL }, { 0 }, "+15550109999", ALOWARE, true, true, VALID },
		{ "valid email beats invalid", "prefer-valid", FIELD_EMAIL, "ann@example.com",
		  { "ann at example", "ann@example.org", "ann@example.com" }, { 0 },
		  "ann@example.org", ALOWARE, true, true, VALID },
		{ "text: non-blank is valid", "prefer-valid", FIELD_TEXT, "x", { "", "y", "x" }, { 0 },
		  "y", ALOWARE, true, true, VALID },
		{ "lone invalid change wins", "prefer-valid", FIELD_PHONE, "+15550102030",
		  { "+15550102030", "call office", "+15550102030" }, { 0 },
		  "call office", ALOWARE, true, false, ONE },
	};

	(void)state;
	run_cases(cases, N(cases));
}

static void test_union(void **state)
{
	static const char UNION[] = "union";
	static const struct merge_case cases[] = {
		{ "adds from any system", "union", FIELD_SET, "a\nb", { "a\nb\nc", "a\nb", "a\nb\nd" }, { 0 },
		  "a\nb\nc\nd", -1, true, false, UNION },
		{ "removal in one system", "union", FIELD_SET, "a\nb\nc", { "a\nc", "a\nb\nc", NULL }, { 0 },
		  "a\nc", -1, true, false, UNION },
		{ "add and remove in different systems", "union", FIELD_SET, "a\nb", { "a", "a\nb\nz", "a\nb" },
		  { 0 }, "a\nz", -1, true, false, UNION },
		{ "cleared in one system", "union", FIELD_SET, "a\nb", { "", "a\nb", "a\nb" }, { 0 },
		  "", -1, true, false, UNION },
		{ "keep prefix never removed", "union", FIELD_SET, "a\nSYS:locked", { "a", "a", "a" }, { 0 },
		  "a\nSYS:locked", -1, false, false, UNION },
		{ "keep prefix matched without case", "union", FIELD_SET, "a\nsys:locked", { "a", NULL, "" },
		  { 0 }, "sys:locked", -1, true, false, UNION },
		{ "base NULL: union of all", "union", FIELD_SET, NULL, { "b\na", NULL, "c\na" }, { 0 },
		  "a\nb\nc", -1, true, false, UNION },
		{ "case variants are one member", "union", FIELD_SET, "VIP", { "vip", "VIP", NULL }, { 0 },
		  "VIP", -1, false, false, UNION },
		{ "unchanged", "union", FIELD_SET, "a\nb", { "a\nb", "a\nb", "a\nb" }, { 0 },
		  "a\nb", -1, false, false, UNION },
		{ "no system carries it", "union", FIELD_SET, "a\nb", { NULL, NULL, NULL }, { 0 },
		  "a\nb", -1, false, false, NOVALUE },
	};

	(void)state;
	run_cases(cases, N(cases));
}

static void test_sticky_true(void **state)
{
	static const char STICKY[] = "sticky-true: set stays set";
	static const struct merge_case cases[] = {
		{ "true anywhere sets it", "sticky-true", FIELD_TEXT, "false", { "false", "true", "false" },
		  { 0 }, "true", ALOWARE, true, false, STICKY },
		{ "first true system wins", "sticky-true", FIELD_TEXT, "false", { "false", "true", "1" },
		  { 0 }, "true", ALOWARE, true, false, STICKY },
		{ "\"1\" counts as true", "sticky-true", FIELD_TEXT, NULL, { "1", NULL, NULL }, { 0 },
		  "true", GHL, true, false, STICKY },
		{ "never cleared by false", "sticky-true", FIELD_TEXT, "true", { "false", "false", "false" },
		  { 0 }, "true", -1, false, false, STICKY },
		{ "never cleared by blank", "sticky-true", FIELD_TEXT, "true", { "", NULL, "" }, { 0 },
		  "true", -1, false, false, STICKY },
		{ "false stays false", "sticky-true", FIELD_TEXT, "false", { "false", NULL, "no" }, { 0 },
		  "false", -1, false, false, STICKY },
		{ "never agreed, all false", "sticky-true", FIELD_TEXT, NULL, { "false", "", NULL }, { 0 },
		  "false", -1, true, false, STICKY },
	};

	(void)state;
	run_cases(cases, N(cases));
}

static void test_none(void **state)
{
	static const struct merge_case cases[] = {
		{ "values ignored", "none", FIELD_TEXT, "x", { "y", "z", "w" }, { 0 },
		  NULL, -1, false, false, "not synced" },
		{ "nothing anywhere", "none", FIELD_TEXT, NULL, { NULL, NULL, NULL }, { 0 },
		  NULL, -1, false, false, "not synced" },
	};

	(void)state;
	run_cases(cases, N(cases));
}

static void test_rule_parse(void **state)
{
	static const struct { const char *text; enum rule_kind kind; int system; } cases[] = {
		{ "two-way", RULE_TWO_WAY, -1 },
		{ "newest", RULE_NEWEST, -1 },
		{ "union", RULE_UNION, -1 },
		{ "prefer-valid", RULE_PREFER_VALID, -1 },
		{ "sticky-true", RULE_STICKY_TRUE, -1 },
		{ "none", RULE_NONE, -1 },
		{ "always:ghl", RULE_ALWAYS, GHL },
		{ "always:verity", RULE_ALWAYS, VERITY },
		{ "prefer:ghl-unless-blank", RULE_PREFER_UNLESS_BLANK, GHL },
		{ "prefer:aloware-unless-blank", RULE_PREFER_UNLESS_BLANK, ALOWARE },
	};
	int wrong = 0;

	(void)state;
	for (int i = 0; i < N(cases); i++) {
		struct merge_rule r;
		char why[256] = "";

		if (merge_rule_parse(cases[i].text, systems, NSYS, &r, why, sizeof(why)) != 0)
			fail_msg("%s: refused: %s", cases[i].text, why);
		wrong += check_int(cases[i].text, "kind", r.kind, cases[i].kind);
		wrong += check_int(cases[i].text, "system", r.system, cases[i].system);
		wrong += check_str(cases[i].text, "text", r.text, cases[i].text);
	}
	if (wrong)
		fail_msg("%d failed check(s) over %d rows", wrong, N(cases));
}

static void test_rule_parse_errors(void **state)
{
#define UNKNOWN(t) "unknown rule \"" t "\" (expected two-way, always:<system>, " \
	"prefer:<system>-unless-blank, newest, union, prefer-valid, sticky-true or none)"
#define NOSYS(t) "rule \"" t "\" names a system that is not configured"
	static const struct { const char *text, *why; } cases[] = {
		{ "sometimes", UNKNOWN("sometimes") },
		{ "Two-Way", UNKNOWN("Two-Way") },
		{ "", UNKNOWN("") },
		{ "prefer:ghl", UNKNOWN("prefer:ghl") },
		{ "prefer:ghl-unless-blank ", UNKNOWN("prefer:ghl-unless-blank ") },
		{ "always:hubspot", NOSYS("always:hubspot") },
		{ "always:", NOSYS("always:") },
		{ "always:gh", NOSYS("always:gh") },
		{ "always:GHL", NOSYS("always:GHL") },
		{ "prefer:hubspot-unless-blank", NOSYS("prefer:hubspot-unless-blank") },
	};
#undef UNKNOWN
#undef NOSYS
	int wrong = 0;

	(void)state;
	for (int i = 0; i < N(cases); i++) {
		struct merge_rule r;
		char why[256] = "";

		wrong += check_int(cases[i].text, "return", merge_rule_parse(cases[i].text, systems, NSYS,
									     &r, why, sizeof(why)), -1);
		wrong += check_str(cases[i].text, "why", why, cases[i].why);
	}
	if (wrong)
		fail_msg("%d failed check(s) over %d rows", wrong, N(cases));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_way),
		cmocka_unit_test(test_always),
		cmocka_unit_test(test_prefer_unless_blank),
		cmocka_unit_test(test_newest),
		cmocka_unit_test(test_prefer_valid),
		cmocka_unit_test(test_union),
		cmocka_unit_test(test_sticky_true),
		cmocka_unit_test(test_none),
		cmocka_unit_test(test_rule_parse),
		cmocka_unit_test(test_rule_parse_errors),
	};

	return cmocka_run_group_tests_name("merge", tests, NULL, NULL);
}
