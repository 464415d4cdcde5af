/*
 * test_flows.c - the flows beyond contact fields: the stop-keyword rule
 * (engine/events.c), tags to call lists (engine/lists.c), the opt-out merge
 * and the per-system merge base (engine/merge.c), and a full listing's
 * notion of "gone" as observe.c and the state journal make it.
 *
 * The systems are ghl, aloware and verity, in that source order (index 0, 1,
 * 2). Tables hold one case a row; every row is checked and every wrong
 * decision printed before the test fails.
 */
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

#include "../../engine/engine.h"
#include "../../engine/merge.h"
#include "../../core/log.h"
#include "../../core/str.h"


static const char *const systems[] = { "ghl", "aloware", "verity" };
enum { GHL, ALOWARE, VERITY, NSYS };

/* The stop-keyword rule: the whole message, any case, without surrounding
 * white space and punctuation, inner white space as one space. */

static void test_stop_keywords(void **state)
{
	static const struct { const char *body; bool stop; } cases[] = {
		{ "STOP", true },
		{ "stop", true },
		{ "Stop", true },
		{ "  stop  ", true },
		{ "\tStOp\r\n", true },
		{ "\n STOP \n", true },
		{ "STOPALL", true },
		{ "stopall", true },
		{ "UNSUBSCRIBE", true },
		{ "unsubscribe ", true },
		{ "CANCEL", true },
		{ "cancel", true },
		{ "END", true },
		{ " end", true },
		{ "QUIT", true },
		{ "Quit", true },
		{ "OPT-OUT", true },
		{ "opt-out", true },
		{ "OPTOUT", true },
		{ "OptOut\n", true },
		/* A word in a message is no opt-out. */
		{ "this weekend", false },
		{ "don't stop", false },
		{ "stop it", false },
		{ "please stop", false },
		{ "S T O P", false },
		{ "stop stop", false },
		{ "stop.all", false },
		/* Surrounding punctuation and inner white space are not part of
		 * the keyword, as carriers read it (CTIA, FCC 2024 revocation). */
		{ "STOP.", true },
		{ "STOP!", true },
		{ "Stop.", true },
		{ " \"stop\" ", true },
		{ "...STOP!!!", true },
		{ "(stop)", true },
		{ "stop all", true },
		{ "STOP  ALL", true },
		{ "Stop\tall.", true },
		{ "opt out", true },
		{ "Opt Out!", true },
		{ "REVOKE", true },
		{ "revoke.", true },
		{ "!!!", false },
		{ "START", false },
		{ "unstop", false },
		{ "STOPP", false },
		{ "STO", false },
		{ "ending", false },
		{ "quitting", false },
		{ "", false },
		{ "   ", false },
		{ "\n", false },
		{ NULL, false },
	};
	int wrong = 0;

	(void)state;
	for (int i = 0; i < N(cases); i++) {
		bool got = events_is_stop(cases[i].body);
		if (got != cases[i].stop) {
			print_error("events_is_stop(%s%s%s): got %s, want %s\n", cases[i].body ? "\"" : "",
				    cases[i].body ? cases[i].body : "NULL", cases[i].body ? "\"" : "",
				    got ? "true" : "false", cases[i].stop ? "true" : "false");
			wrong++;
		}
	}
	if (wrong)
		fail_msg("%d of %d bodies wrong", wrong, N(cases));
}

/* The opt-in keywords: the same reading, START, UNSTOP or YES. */
static void test_start_keywords(void **state)
{
	static const struct { const char *body; bool start; } cases[] = {
		{ "START", true }, { "start", true }, { " Start. ", true }, { "UNSTOP", true },
		{ "unstop!", true }, { "YES", true }, { "yes", true }, { "Yes!", true },
		{ "yes please", false }, { "start over", false }, { "STOP", false }, { "restart", false },
		{ "", false }, { NULL, false },
	};
	int wrong = 0;

	(void)state;
	for (int i = 0; i < N(cases); i++) {
		if (events_is_start(cases[i].body) != cases[i].start) {
			print_error("events_is_start(%s): want %s\n", cases[i].body ? cases[i].body : "NULL",
				    cases[i].start ? "true" : "false");
			wrong++;
		}
	}
	if (wrong)
		fail_msg("%d of %d bodies wrong", wrong, N(cases));
}

/* Call lists */

/* A list rule as config.c builds it: regex rules carry a compiled regex_t
 * (extended, no sub-matches). */
static void rule_init(struct list_rule *lr, const char *tag, int match, const char *list_id)
{
	memset(lr, 0, sizeof(*lr));
	lr->tag = xstrdup(tag);
	lr->match = match;
	lr->list_id = xstrdup(list_id);
	if (match == MATCH_REGEX) {
		lr->regex = xmalloc(sizeof(regex_t));
		if (regcomp(lr->regex, tag, REG_EXTENDED | REG_NOSUB) != 0)
			fail_msg("regcomp(%s) failed", tag);
	}
}

static void rule_clear(struct list_rule *lr)
{
	free(lr->tag);
	free(lr->list_id);
	if (lr->regex) {
		regfree(lr->regex);
		free(lr->regex);
	}
	memset(lr, 0, sizeof(*lr));
}

static void test_list_rule_matches(void **state)
{
	static const struct { const char *rule; int match; const char *tag; bool want; } cases[] = {
		{ "VIP", MATCH_EXACT, "VIP", true },
		{ "VIP", MATCH_EXACT, "vip", false },
		{ "VIP", MATCH_EXACT, "VIP ", false },
		{ "VIP", MATCH_EXACT, "VIPs", false },
		{ "VIP", MATCH_EXACT, "", false },
		{ "VIP", MATCH_NOCASE, "vip", true },
		{ "VIP", MATCH_NOCASE, "Vip", true },
		{ "VIP", MATCH_NOCASE, "VIP", true },
		{ "VIP", MATCH_NOCASE, "vips", false },
		{ "VIP", MATCH_NOCASE, "a vip", false },
		{ "^hot-", MATCH_REGEX, "hot-lead", true },
		{ "^hot-", MATCH_REGEX, "hot-", true },
		{ "^hot-", MATCH_REGEX, "HOT-lead", false },
		{ "^hot-", MATCH_REGEX, "not-hot-lead", false },
		{ "lead$", MATCH_REGEX, "hot-lead", true },
		{ "lead$", MATCH_REGEX, "leads", false },
		{ "^(buyer|seller)-[0-9]+$", MATCH_REGEX, "seller-42", true },
		{ "^(buyer|seller)-[0-9]+$", MATCH_REGEX, "seller-", false },
		{ "^(buyer|seller)-[0-9]+$", MATCH_REGEX, "renter-1", false },
		/* Unanchored: a match anywhere in the tag. */
		{ "vip", MATCH_REGEX, "super-vip-2", true },
		{ "[Vv][Ii][Pp]", MATCH_REGEX, "ViP", true },
	};
	int wrong = 0;

	(void)state;
	for (int i = 0; i < N(cases); i++) {
		struct list_rule lr;
		bool got;

		rule_init(&lr, cases[i].rule, cases[i].match, "L");
		got = lists_rule_matches(&lr, cases[i].tag);
		if (got != cases[i].want) {
			print_error("rule \"%s\" (match %d) on tag \"%s\": got %s, want %s\n", cases[i].rule,
				    cases[i].match, cases[i].tag, got ? "match" : "no match",
				    cases[i].want ? "match" : "no match");
			wrong++;
		}
		rule_clear(&lr);
	}

	/* A regex rule whose expression is missing matches nothing. */
	{
		struct list_rule lr = { .tag = (char *)"hot", .match = MATCH_REGEX, .regex = NULL,
					.list_id = (char *)"L" };
		if (lists_rule_matches(&lr, "hot")) {
			print_error("a regex rule without a compiled expression matched\n");
			wrong++;
		}
	}
	if (wrong)
		fail_msg("%d of %d cases wrong", wrong, N(cases) + 1);
}

static void test_lists_wanted(void **state)
{
	static const struct { const char *tag; int match; const char *list; } rules[] = {
		{ "VIP", MATCH_EXACT, "L1" },
		{ "buyer", MATCH_NOCASE, "L2" },
		{ "^hot-", MATCH_REGEX, "L3" },
		{ "vip", MATCH_NOCASE, "L1" },          /* a second way into L1 */
		{ "seller", MATCH_EXACT, "L4" },
		{ "^hot-", MATCH_REGEX, "L5" },         /* the same tag into another list */
	};
	static const struct {
		const char *label, *tags;
		bool opted_out;
		const char *want[8];            /* NULL-terminated, in rule order */
	} cases[] = {
		{ "one exact tag", "VIP", false, { "L1" } },
		{ "the list comes once whichever rule matches", "vip", false, { "L1" } },
		{ "two rules into one list, both matching", "VIP\nvip", false, { "L1" } },
		{ "several tags, rule order", "seller\nbuyer", false, { "L2", "L4" } },
		{ "one tag into two lists", "hot-lead", false, { "L3", "L5" } },
		{ "every list", "BUYER\nhot-x\nseller\nVIP", false, { "L1", "L2", "L3", "L4", "L5" } },
		{ "case-insensitive only where configured", "SELLER\nBuyer", false, { "L2" } },
		{ "no matching tag", "renter\nhot", false, { NULL } },
		{ "no tags", "", false, { NULL } },
		{ "tags never carried", NULL, false, { NULL } },
		{ "opted out: none", "VIP\nbuyer\nhot-x\nseller", true, { NULL } },
		{ "opted out, no tags", "", true, { NULL } },
	};
	struct list_rule lr[N(rules)];
	int wrong = 0;

	(void)state;
	for (int i = 0; i < N(rules); i++)
		rule_init(&lr[i], rules[i].tag, rules[i].match, rules[i].list);
	for (int i = 0; i < N(cases); i++) {
		/* Room for nrules, and a guard after it that must stay. */
		const char *out[N(rules) + 1];
		int nwant = 0, n;

		for (int k = 0; k < N(out); k++)
			out[k] = "untouched";
		while (cases[i].want[nwant] != NULL)
			nwant++;
		n = lists_wanted(lr, N(rules), cases[i].tags, cases[i].opted_out, out);
		wrong += check_int(cases[i].label, "count", n, nwant);
		for (int k = 0; k < n && k < nwant; k++)
			wrong += check_str(cases[i].label, "list", out[k], cases[i].want[k]);
		for (int k = n > 0 ? n : 0; k < N(out); k++)
			wrong += check_str(cases[i].label, "slot past the count", out[k], "untouched");
	}
	/* No rules: nothing wanted. */
	wrong += check_int("no rules", "count", lists_wanted(lr, 0, "VIP", false, NULL), 0);
	for (int i = 0; i < N(rules); i++)
		rule_clear(&lr[i]);
	if (wrong)
		fail_msg("%d failed check(s) over %d rows", wrong, N(cases));
}

/* Opt-outs (I4) */

struct optout_case {
	const char *label;
	const char *base;
	bool registry_out;
	const char *value[NSYS];
	const char *prev[NSYS];
	bool known[NSYS];
	bool may[NSYS];
	/* expected */
	bool opted_out;
	int out_by, in_by;
	bool refused[NSYS];
	const char *reason;
};

static const char NEW_OUT[] = "opt-out recorded by a system";
static const char STICKY[] = "opt-out stays (sticky)";
static const char REGISTRY[] = "opt-out from the registry";
static const char OPT_IN[] = "opt-in by a system the configuration allows";
static const char NO_OUT[] = "no opt-out";
static const char KEYWORD_IN[] = "opt-in by a START keyword the configuration allows";

#define ALL_TRUE { true, true, true }
#define NONE { false, false, false }
#define ALL(v) { v, v, v }

static void test_merge_optout(void **state)
{
	static const struct optout_case cases[] = {
		/* A new opt-out anywhere wins. */
		{ "new opt-out in one system", "false", false,
		  { "false", "true", "false" }, ALL("false"), ALL_TRUE, ALL_TRUE,
		  true, ALOWARE, -1, NONE, NEW_OUT },
		{ "new opt-out, never agreed", NULL, false,
		  { NULL, NULL, "true" }, ALL(NULL), NONE, NONE,
		  true, VERITY, -1, NONE, NEW_OUT },
		{ "new opt-out from a fresh record", "false", false,
		  { "false", "false", "true" }, { "false", "false", NULL }, { true, true, false }, NONE,
		  true, VERITY, -1, NONE, NEW_OUT },
		{ "new opt-out in several: first in source order", "false", false,
		  { "true", "false", "true" }, ALL("false"), ALL_TRUE, ALL_TRUE,
		  true, GHL, -1, NONE, NEW_OUT },
		{ "no opt-out anywhere", "false", false,
		  { "false", "false", NULL }, ALL("false"), ALL_TRUE, ALL_TRUE,
		  false, -1, -1, NONE, NO_OUT },
		{ "nothing at all", NULL, false,
		  ALL(NULL), ALL(NULL), NONE, NONE,
		  false, -1, -1, NONE, NO_OUT },

		/* Sticky: no merge clears it. */
		{ "sticky: every system shows false, none held it", "true", false,
		  ALL("false"), ALL("false"), ALL_TRUE, ALL_TRUE,
		  true, -1, -1, NONE, STICKY },
		{ "sticky: systems that still hold it", "true", false,
		  ALL("true"), ALL("true"), ALL_TRUE, NONE,
		  true, -1, -1, NONE, STICKY },
		{ "sticky: no system carries it", "true", false,
		  ALL(NULL), ALL(NULL), NONE, ALL_TRUE,
		  true, -1, -1, NONE, STICKY },

		/* The registry remembers what no record shows. */
		{ "registry opt-out without a base", NULL, true,
		  { "false", "false", NULL }, ALL(NULL), NONE, ALL_TRUE,
		  true, -1, -1, NONE, REGISTRY },
		{ "registry opt-out over an agreed false", "false", true,
		  ALL("false"), ALL("false"), ALL_TRUE, ALL_TRUE,
		  true, -1, -1, NONE, REGISTRY },
		{ "registry and base both out", "true", true,
		  ALL("true"), ALL("true"), ALL_TRUE, NONE,
		  true, -1, -1, NONE, STICKY },

		/* Opting back in. */
		{ "opt-in by the allowed system that held it", "true", false,
		  { "true", "false", "true" }, ALL("true"), ALL_TRUE, { false, true, false },
		  false, -1, ALOWARE, NONE, OPT_IN },
		{ "opt-in honoured over a registry opt-out", "true", true,
		  { "false", "true", NULL }, { "true", "true", NULL }, { true, true, false },
		  { true, false, false },
		  false, -1, GHL, NONE, OPT_IN },
		{ "refused opt-in by a disallowed system", "true", false,
		  { "true", "false", "true" }, ALL("true"), ALL_TRUE, { true, false, true },
		  true, -1, -1, { false, true, false }, STICKY },
		{ "refused opt-ins by two systems", "true", false,
		  { "false", "true", "false" }, ALL("true"), ALL_TRUE, NONE,
		  true, -1, -1, { true, false, true }, STICKY },
		{ "allowed and disallowed together: the allowed one wins", "true", false,
		  { "false", "false", "true" }, ALL("true"), ALL_TRUE, { false, true, false },
		  false, -1, ALOWARE, NONE, OPT_IN },
		{ "two allowed: first in source order", "true", false,
		  { "true", "false", "false" }, ALL("true"), ALL_TRUE, ALL_TRUE,
		  false, -1, ALOWARE, NONE, OPT_IN },
		{ "a fresh record showing false is not an opt-in", "true", false,
		  { "true", "true", "false" }, { "true", "true", NULL }, { true, true, false }, ALL_TRUE,
		  true, -1, -1, NONE, STICKY },
		{ "a fresh record is not refused either", "true", false,
		  { NULL, "false", NULL }, ALL(NULL), NONE, NONE,
		  true, -1, -1, NONE, STICKY },
		{ "a system that never held it showing false is not an opt-in", "true", false,
		  { "true", "false", "true" }, { "true", "false", "true" }, ALL_TRUE, ALL_TRUE,
		  true, -1, -1, NONE, STICKY },
		{ "a system without a value opts nobody in", "true", false,
		  { "true", NULL, "true" }, ALL("true"), ALL_TRUE, ALL_TRUE,
		  true, -1, -1, NONE, STICKY },

	};
	int wrong = 0;

	(void)state;
	for (int i = 0; i < N(cases); i++) {
		const struct optout_case *c = &cases[i];
		struct optout_input in = { .base = c->base, .registry_out = c->registry_out, .nsys = NSYS };
		struct optout_result res;

		for (int s = 0; s < NSYS; s++) {
			in.value[s] = c->value[s];
			in.prev[s] = c->prev[s];
			in.prev_known[s] = c->known[s];
			in.may_opt_in[s] = c->may[s];
		}
		/* Garbage in the result must not survive. */
		memset(&res, 0x5a, sizeof(res));
		merge_optout(&in, &res);
		wrong += check_int(c->label, "opted_out", res.opted_out, c->opted_out);
		wrong += check_int(c->label, "opted_out_by", res.opted_out_by, c->out_by);
		wrong += check_int(c->label, "opted_in_by", res.opted_in_by, c->in_by);
		for (int s = 0; s < NSYS; s++) {
			char what[32];
			snprintf(what, sizeof(what), "refused[%s]", systems[s]);
			wrong += check_int(c->label, what, res.refused[s], c->refused[s]);
		}
		wrong += check_str(c->label, "reason", res.reason, c->reason);
	}
	if (wrong)
		fail_msg("%d failed check(s) over %d rows", wrong, N(cases));
}

/* An allowed START keyword (the engine checked who recorded the opt-out):
 * the rows as above, and the system the text came through. */
static void test_merge_optout_keyword(void **state)
{
	static const struct { struct optout_case c; int by; } cases[] = {
		{ { "START lifts an opt-out every system still holds", "true", false,
		    ALL("true"), ALL("true"), ALL_TRUE, NONE,
		    false, -1, VERITY, NONE, KEYWORD_IN }, VERITY },
		{ { "START lifts a registry opt-out no record shows", NULL, true,
		    ALL("false"), ALL("false"), ALL_TRUE, NONE,
		    false, -1, GHL, NONE, KEYWORD_IN }, GHL },
		{ { "START and a refused clearing: no refusal left", "true", false,
		    { "true", "false", "true" }, ALL("true"), ALL_TRUE, NONE,
		    false, -1, VERITY, NONE, KEYWORD_IN }, VERITY },
		{ { "a new opt-out in the same merge beats START", "false", false,
		    { "false", "true", "false" }, ALL("false"), ALL_TRUE, NONE,
		    true, ALOWARE, -1, NONE, NEW_OUT }, VERITY },
		{ { "START without an opt-out changes nothing", "false", false,
		    ALL("false"), ALL("false"), ALL_TRUE, NONE,
		    false, -1, -1, NONE, NO_OUT }, VERITY },
	};
	int wrong = 0;

	(void)state;
	for (int i = 0; i < N(cases); i++) {
		const struct optout_case *c = &cases[i].c;
		struct optout_input in = { .base = c->base, .registry_out = c->registry_out, .nsys = NSYS,
					   .keyword_opt_in = true, .keyword_by = cases[i].by };
		struct optout_result res;

		for (int s = 0; s < NSYS; s++) {
			in.value[s] = c->value[s];
			in.prev[s] = c->prev[s];
			in.prev_known[s] = c->known[s];
			in.may_opt_in[s] = c->may[s];
		}
		memset(&res, 0x5a, sizeof(res));
		merge_optout(&in, &res);
		wrong += check_int(c->label, "opted_out", res.opted_out, c->opted_out);
		wrong += check_int(c->label, "opted_out_by", res.opted_out_by, c->out_by);
		wrong += check_int(c->label, "opted_in_by", res.opted_in_by, c->in_by);
		for (int s = 0; s < NSYS; s++)
			wrong += check_int(c->label, "refused", res.refused[s], c->refused[s]);
		wrong += check_str(c->label, "reason", res.reason, c->reason);
	}
	if (wrong)
		fail_msg("%d failed check(s) over %d rows", wrong, N(cases));
}

/* The per-system merge base: prev, prev_known, fresh */

struct base_case {
	const char *label;
	const char *rule;
	enum field_kind kind;
	const char *base;
	const char *value[NSYS];
	const char *prev[NSYS];
	bool known[NSYS];               /* prev_known */
	bool fresh[NSYS];
	long long updated_ms[NSYS];
	/* expected */
	const char *want;
	int winner;
	bool changed, conflict;
	const char *reason;
};

static void run_base_cases(const struct base_case *cases, int n)
{
	int wrong = 0;

	for (int i = 0; i < n; i++) {
		const struct base_case *c = &cases[i];
		struct merge_input in = { .kind = c->kind, .base = c->base, .nsys = NSYS,
					  .keep_prefix = "SYS:" };
		struct merge_want want = { c->want, c->winner, c->changed, c->conflict, c->reason };

		for (int s = 0; s < NSYS; s++) {
			in.value[s] = c->value[s];
			in.prev[s] = c->prev[s];
			in.prev_known[s] = c->known[s];
			in.fresh[s] = c->fresh[s];
			in.updated_ms[s] = c->updated_ms[s];
		}
		wrong += check_merge(c->label, c->rule, systems, &in, &want);
	}
	if (wrong)
		fail_msg("%d failed check(s) over %d rows", wrong, n);
}

static const char ONE[] = "changed in one system";
static const char ORDER[] = "conflict: source order";
static const char UNCHANGED[] = "unchanged";
static const char PREFERRED[] = "conflict: preferred system";
static const char NEWEST[] = "conflict: newest update";
static const char UNION[] = "union";

#define KNOWN ALL_TRUE
#define NOT_FRESH NONE
#define ONLY(s) { (s) == GHL, (s) == ALOWARE, (s) == VERITY }
#define ALL_BUT(s) { (s) != GHL, (s) != ALOWARE, (s) != VERITY }

static void test_merge_prev(void **state)
{
	static const struct base_case cases[] = {
		/* aloware could not be given "Anne" and still holds "Ann". */
		{ "holding an old value it could not be given is no edit", "two-way", FIELD_TEXT, "Anne",
		  { "Anne", "Ann", "Anne" }, { "Anne", "Ann", "Anne" }, KNOWN, NOT_FRESH, { 0 },
		  "Anne", -1, false, false, UNCHANGED },
		{ "the same value compared with the base is an edit", "two-way", FIELD_TEXT, "Anne",
		  { "Anne", "Ann", "Anne" }, { "Anne", NULL, "Anne" }, ALL_BUT(ALOWARE), NOT_FRESH, { 0 },
		  "Ann", ALOWARE, true, false, ONE },
		{ "holding an old value does not block another's edit", "two-way", FIELD_TEXT, "Anne",
		  { "Annie", "Ann", "Anne" }, { "Anne", "Ann", "Anne" }, KNOWN, NOT_FRESH, { 0 },
		  "Annie", GHL, true, false, ONE },
		{ "holding an old value does not win a conflict by order", "two-way", FIELD_TEXT, "Anne",
		  { "Ann", "Anna", "Annie" }, { "Ann", "Anne", "Anne" }, KNOWN, NOT_FRESH, { 0 },
		  "Anna", ALOWARE, true, true, ORDER },
		{ "a system holding an old value may still edit", "two-way", FIELD_TEXT, "Anne",
		  { "Anne", "Anna", "Anne" }, { "Anne", "Ann", "Anne" }, KNOWN, NOT_FRESH, { 0 },
		  "Anna", ALOWARE, true, false, ONE },
		{ "catching up with the base changes nothing", "two-way", FIELD_TEXT, "Anne",
		  { "Anne", "Anne", "Anne" }, { "Anne", "Ann", "Anne" }, KNOWN, NOT_FRESH, { 0 },
		  "Anne", ALOWARE, false, false, ONE },
		{ "blank it could not be given is no erase", "prefer:ghl-unless-blank", FIELD_TEXT, "1 Main St",
		  { "1 Main St", "", NULL }, { "1 Main St", "", NULL }, KNOWN, NOT_FRESH, { 0 },
		  "1 Main St", -1, false, false, UNCHANGED },
		{ "newest: an unedited system's time does not count", "newest", FIELD_TEXT, "a",
		  { "b", "old", "c" }, { "a", "old", "a" }, KNOWN, NOT_FRESH, { 100, 900, 200 },
		  "c", VERITY, true, true, NEWEST },
	};

	(void)state;
	run_base_cases(cases, N(cases));
}

static void test_merge_fresh(void **state)
{
	static const struct base_case cases[] = {
		/* Blank values of a fresh record say nothing. */
		{ "fresh blank does not erase", "two-way", FIELD_TEXT, "1 Main St",
		  { "1 Main St", "", "1 Main St" }, { "1 Main St", NULL, "1 Main St" }, ALL_BUT(ALOWARE),
		  ONLY(ALOWARE), { 0 },
		  "1 Main St", -1, false, false, UNCHANGED },
		{ "fresh white space does not erase", "prefer:aloware-unless-blank", FIELD_TEXT, "1 Main St",
		  { "1 Main St", "   ", NULL }, { "1 Main St", NULL, NULL }, { true, false, false },
		  ONLY(ALOWARE), { 0 },
		  "1 Main St", -1, false, false, UNCHANGED },
		{ "a non-fresh blank still erases", "two-way", FIELD_TEXT, "1 Main St",
		  { "1 Main St", "", "1 Main St" }, { "1 Main St", "1 Main St", "1 Main St" }, KNOWN,
		  NOT_FRESH, { 0 },
		  "", ALOWARE, true, false, ONE },
		{ "fresh value equal to the base", "two-way", FIELD_TEXT, "Ann",
		  { "Ann", "Ann", "Ann" }, { "Ann", "Ann", NULL }, { true, true, false }, ONLY(VERITY), { 0 },
		  "Ann", -1, false, false, UNCHANGED },

		/* A differing value competes with the systems holding the base. */
		{ "fresh value loses to the base by source order", "two-way", FIELD_TEXT, "Ann",
		  { "Ann", "Ann", "Annie" }, { "Ann", "Ann", NULL }, { true, true, false }, ONLY(VERITY), { 0 },
		  "Ann", GHL, false, true, ORDER },
		{ "fresh value first in source order wins", "two-way", FIELD_TEXT, "Ann",
		  { "Annie", "Ann", "Ann" }, { NULL, "Ann", "Ann" }, { false, true, true }, ONLY(GHL), { 0 },
		  "Annie", GHL, true, true, ORDER },
		{ "fresh value of the preferred system wins", "prefer:verity-unless-blank", FIELD_TEXT, "Ann",
		  { "Ann", "Ann", "Annie" }, { "Ann", "Ann", NULL }, { true, true, false }, ONLY(VERITY), { 0 },
		  "Annie", VERITY, true, true, PREFERRED },
		{ "base held by the preferred system wins", "prefer:aloware-unless-blank", FIELD_TEXT, "Ann",
		  { "Annie", "Ann", NULL }, { NULL, "Ann", NULL }, { false, true, false }, ONLY(GHL), { 0 },
		  "Ann", ALOWARE, false, true, PREFERRED },
		{ "newest: the fresh record is newer", "newest", FIELD_TEXT, "Ann",
		  { "Ann", "Ann", "Annie" }, { "Ann", "Ann", NULL }, { true, true, false }, ONLY(VERITY),
		  { 100, 200, 300 },
		  "Annie", VERITY, true, true, NEWEST },
		{ "newest: a base holder is newer", "newest", FIELD_TEXT, "Ann",
		  { "Ann", "Ann", "Annie" }, { "Ann", "Ann", NULL }, { true, true, false }, ONLY(VERITY),
		  { 100, 400, 300 },
		  "Ann", ALOWARE, false, true, NEWEST },
		{ "two fresh records agreeing still compete with the base", "two-way", FIELD_TEXT, "Ann",
		  { "Ann", "Annie", "Annie" }, { "Ann", NULL, NULL }, { true, false, false },
		  { false, true, true }, { 0 },
		  "Ann", GHL, false, true, ORDER },
		{ "fresh value against a blank base just fills it", "two-way", FIELD_TEXT, "",
		  { "", NULL, "Ann" }, { "", NULL, NULL }, { true, false, false }, ONLY(VERITY), { 0 },
		  "Ann", VERITY, true, false, ONE },
		{ "fresh value, never agreed", "two-way", FIELD_TEXT, NULL,
		  { NULL, "Ann", NULL }, ALL(NULL), NONE, ONLY(ALOWARE), { 0 },
		  "Ann", ALOWARE, true, false, ONE },
		{ "fresh value, nobody else holds the base", "two-way", FIELD_TEXT, "Ann",
		  { NULL, NULL, "Annie" }, ALL(NULL), NONE, ONLY(VERITY), { 0 },
		  "Annie", VERITY, true, false, ONE },
		/* ghl edited Ann -> Anna, aloware is untouched (but its record
		 * was updated more recently for another field), verity is new:
		 * the value nobody chose must not beat both. */
		{ "an edit and a fresh value compete; the stale base does not win", "newest", FIELD_TEXT,
		  "Ann", { "Anna", "Ann", "Annie" }, { "Ann", "Ann", NULL }, { true, true, false },
		  ONLY(VERITY), { 100, 900, 200 },
		  "Annie", VERITY, true, true, NEWEST },
	};

	(void)state;
	run_base_cases(cases, N(cases));
}

static void test_merge_union_base(void **state)
{
	static const struct base_case cases[] = {
		{ "a fresh record only adds", "union", FIELD_SET, "a\nb",
		  { "a\nb", NULL, "c" }, { "a\nb", NULL, NULL }, { true, false, false }, ONLY(VERITY), { 0 },
		  "a\nb\nc", -1, true, false, UNION },
		{ "the same record not fresh removes", "union", FIELD_SET, "a\nb",
		  { "a\nb", NULL, "c" }, { "a\nb", NULL, NULL }, { true, false, false }, NOT_FRESH, { 0 },
		  "c", -1, true, false, UNION },
		{ "a fresh empty set removes nothing", "union", FIELD_SET, "a\nb",
		  { "a\nb", "", NULL }, { "a\nb", NULL, NULL }, { true, false, false }, ONLY(ALOWARE), { 0 },
		  "a\nb", -1, false, false, UNION },
		{ "a fresh record holding base members adds nothing new", "union", FIELD_SET, "a\nb",
		  { "a\nb", "b\na", NULL }, { "a\nb", NULL, NULL }, { true, false, false }, ONLY(ALOWARE), { 0 },
		  "a\nb", -1, false, false, UNION },
		/* aloware never got c: lacking it is no removal. */
		{ "lacking a member it was never given is no removal", "union", FIELD_SET, "a\nb\nc",
		  { "a\nb\nc", "a\nb", "a\nb\nc" }, { "a\nb\nc", "a\nb", "a\nb\nc" }, KNOWN, NOT_FRESH, { 0 },
		  "a\nb\nc", -1, false, false, UNION },
		{ "dropping a member it held is a removal", "union", FIELD_SET, "a\nb\nc",
		  { "a\nb\nc", "a\nb", "a\nb\nc" }, { "a\nb\nc", "a\nb\nc", "a\nb\nc" }, KNOWN, NOT_FRESH,
		  { 0 },
		  "a\nb", -1, true, false, UNION },
		/* aloware still holds x, removed everywhere else before. */
		{ "still holding a removed member is no addition", "union", FIELD_SET, "a\nb",
		  { "a\nb", "a\nb\nx", "a\nb" }, { "a\nb", "a\nb\nx", "a\nb" }, KNOWN, NOT_FRESH, { 0 },
		  "a\nb", -1, false, false, UNION },
		{ "adding a member it did not hold is an addition", "union", FIELD_SET, "a\nb",
		  { "a\nb", "a\nb\ny", "a\nb" }, { "a\nb", "a\nb", "a\nb" }, KNOWN, NOT_FRESH, { 0 },
		  "a\nb\ny", -1, true, false, UNION },
	};

	(void)state;
	run_base_cases(cases, N(cases));
}

/* A full listing: what was listed is not gone */

struct fixture {
	char path[64];
	struct state *st;
	struct df_err err;
	struct config cfg;
	struct run_options opt;
	struct run r;
};

#define OK(call) do { \
		if ((call) != 0) \
			fail_msg("%s: %s", #call, fx->err.msg); \
	} while (0)

static int setup_state(void **state)
{
	struct fixture *fx = xcalloc(1, sizeof(*fx));
	int fd;

	snprintf(fx->path, sizeof(fx->path), "/tmp/test_flows-XXXXXX");
	fd = mkstemp(fx->path);
	if (fd < 0)
		return -1;
	close(fd);
	unlink(fx->path);       /* a unique name; an existing empty file is refused */
	fields_reset();
	log_set_level(LOG_ERROR);
	fx->st = state_open(fx->path, &fx->err);
	if (fx->st == NULL) {
		print_error("state_open: %s\n", fx->err.msg);
		return -1;
	}
	/* One system, aloware, as engine_run would set it up. */
	fx->cfg.default_country = (char *)"US";
	fx->cfg.nsys = 1;
	fx->cfg.sys[0].name = (char *)"aloware";
	fx->r.cfg = &fx->cfg;
	fx->r.opt = &fx->opt;
	fx->r.st = fx->st;
	fx->r.nsys = 1;
	fx->r.sys[0].conf = &fx->cfg.sys[0];
	fx->r.sys[0].conn = connector_find("aloware");
	*state = fx;
	return fx->r.sys[0].conn ? 0 : -1;
}

static int teardown_state(void **state)
{
	struct fixture *fx = *state;
	char side[80];

	state_close(fx->st);
	unlink(fx->path);
	snprintf(side, sizeof(side), "%s-wal", fx->path);
	unlink(side);
	snprintf(side, sizeof(side), "%s-shm", fx->path);
	unlink(side);
	snprintf(side, sizeof(side), "%s-checked", fx->path);
	unlink(side);
	free(fx);
	return 0;
}

static void observe(struct fixture *fx, const char *id, const char *first, const char *phone)
{
	struct record rec;

	record_init(&rec);
	rec.remote_id = xstrdup(id);
	rec.updated_ms = 1000;
	record_set(&rec, F_FIRST_NAME, first);
	record_set(&rec, F_PHONE, phone);
	if (observe_record(&fx->r, 0, &rec) != 0)
		fail_msg("observe_record %s: %s", id, fx->r.err.msg);
	record_clear(&rec);
}

/* A record a full listing listed is there, even when it could not be read
 * this time (quarantined); only records the listing did not list are
 * missing (and then checked through their own endpoint).
 * Otherwise one stray tab in a name unlinks the record (and, with
 * propagate_deletes, deletes the person everywhere else). */
static void test_full_listing_quarantined_not_gone(void **state)
{
	struct fixture *fx = *state;
	long long n = -1, person = 0;
	char *sys = NULL, *id = NULL, **ids = NULL;
	int nids = 0;
	bool found = false;

	fx->opt.full = true;
	fx->r.id = state_run_start(fx->st, "full", &fx->err);
	assert_true(fx->r.id > 0);
	observe(fx, "a1", "Ann", "+15550102030");
	observe(fx, "a2", "Bob", "+15550102031");
	observe(fx, "a3", "Cy", "+15550102032");
	OK(state_link_get(fx->st, "aloware", "a1", &person, &fx->err));
	assert_true(person > 0);

	/* The next full run lists a1 unchanged, a2 with a control character
	 * (quarantined), and not a3. */
	fx->r.id = state_run_start(fx->st, "full", &fx->err);
	assert_true(fx->r.id > 0);
	observe(fx, "a1", "Ann", "+15550102030");
	observe(fx, "a2", "Bob\tby", "+15550102031");
	assert_int_equal(fx->r.quarantined, 1);
	OK(state_mark_unseen(fx->st, "aloware", fx->r.id, &n, &fx->err));
	OK(state_missing_batch(fx->st, "aloware", 10, 1LL << 62, &ids, &nids, &fx->err));
	if (n != 1 || nids != 1 || strcmp(ids[0], "a3") != 0)
		print_error("marked %lld record(s) missing, first %s; want only a3\n", n,
			    nids ? ids[0] : "-");
	assert_int_equal(n, 1);
	assert_int_equal(nids, 1);
	free(ids[0]);
	free(ids);
	/* Missing is a candidate, not gone (I10): nothing to unlink yet. */
	OK(state_gone_next(fx->st, &sys, &id, &person, &found, &fx->err));
	assert_false(found);
	OK(state_gone_count(fx->st, "aloware", 1LL << 62, &n, &fx->err));
	assert_int_equal(n, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stop_keywords),
		cmocka_unit_test(test_start_keywords),
		cmocka_unit_test(test_list_rule_matches),
		cmocka_unit_test(test_lists_wanted),
		cmocka_unit_test(test_merge_optout),
		cmocka_unit_test(test_merge_optout_keyword),
		cmocka_unit_test(test_merge_prev),
		cmocka_unit_test(test_merge_fresh),
		cmocka_unit_test(test_merge_union_base),
		cmocka_unit_test_setup_teardown(test_full_listing_quarantined_not_gone, setup_state,
						teardown_state),
	};

	return cmocka_run_group_tests_name("flows", tests, NULL, NULL);
}
