/*
 * merge.h - per-field three-way merge under the configured rules.
 *
 * Pure: values in, decision and reason out; no I/O, no state. Systems are
 * numbered in source-of-truth order (0 wins ties under two-way).
 *
 * Three-way means each system's value is compared with what that system
 * held when the person was last merged (prev), falling back to the base,
 * the value all systems last agreed on. A system whose value is unchanged
 * did not edit the field, even when it still holds an old value it could
 * not be given. When exactly one distinct new value appears, it wins
 * everywhere and there is no conflict. When several systems changed the
 * field to different values, the rule decides and the result is flagged as a
 * conflict. `always:<system>` and the set/flag rules (union, sticky-true)
 * apply whether or not there is a conflict.
 *
 * A record linked since the last merge is fresh: it never agreed with
 * anything, so its blank values say nothing and its other values compete
 * with the base under the rule (the systems holding the base take part in
 * the decision) instead of overwriting it as an edit would.
 */
#ifndef DF_MERGE_H
#define DF_MERGE_H

#include <stdbool.h>
#include <stddef.h>

#include "../core/record.h"
#include "../core/rule.h"

struct merge_input {
	enum field_kind kind;
	const char *base;                       /* NULL: never agreed */
	int nsys;
	const char *value[DF_MAX_SYSTEMS];      /* NULL: system has no value */
	long long updated_ms[DF_MAX_SYSTEMS];   /* for newest */
	const char *prev[DF_MAX_SYSTEMS];       /* value at the last merge */
	bool prev_known[DF_MAX_SYSTEMS];        /* false: compare with base */
	bool fresh[DF_MAX_SYSTEMS];             /* linked since the last merge */
	const char *keep_prefix;                /* union: members never removed */
};

struct merge_result {
	char *value;            /* owned; NULL when the rule is none */
	int winner;             /* system index, -1 when no single system won */
	bool changed;           /* value differs from base */
	bool conflict;
	const char *reason;     /* static text */
};

void merge_field(const struct merge_rule *rule, const struct merge_input *in,
		 struct merge_result *out);

/*
 * Opt-outs (I4): a flag per channel that no merge clears. The registry
 * (by E.164 phone and channel) remembers an opt-out even when no system's
 * record shows it any more. A system that turns the flag off opts the
 * person back in only when may_opt_in[s] says the configuration allows that
 * system (for example the one that recorded the opt-out); otherwise its
 * change is refused and the opt-out is written back to it. Only a system
 * that held the opt-out at the last merge can turn it off: a record linked
 * since (fresh) that shows none simply has not been told yet.
 */
struct optout_input {
	const char *base;                       /* agreed flag, NULL if none */
	bool registry_out;                      /* the registry holds an opt-out */
	int nsys;
	const char *value[DF_MAX_SYSTEMS];      /* "true"/"false"/NULL */
	const char *prev[DF_MAX_SYSTEMS];       /* its value at the last merge */
	bool prev_known[DF_MAX_SYSTEMS];        /* false: a fresh record */
	bool may_opt_in[DF_MAX_SYSTEMS];
	/* An opt-in keyword (START) the configuration allows was texted
	 * through system keyword_by: the opt-out is lifted unless a system
	 * newly opted out in the same merge. */
	bool keyword_opt_in;
	int keyword_by;
};

struct optout_result {
	bool opted_out;                         /* the agreed flag */
	int opted_out_by;                       /* system that newly opted out, -1 */
	int opted_in_by;                        /* system whose opt-in was honoured, -1 */
	bool refused[DF_MAX_SYSTEMS];           /* systems whose opt-in was refused */
	const char *reason;
};

void merge_optout(const struct optout_input *in, struct optout_result *out);
void merge_result_free(struct merge_result *r);

#endif
