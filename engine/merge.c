/*
 * merge.c - the merge rules. Everything here is a pure function of its
 * arguments; tests/unit/test_merge.c exercises each rule with and without
 * conflicts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "merge.h"
#include "../core/normalize.h"
#include "../core/str.h"

void merge_result_free(struct merge_result *r)
{
	free(r->value);
	r->value = NULL;
}

static bool truthy(const char *v)
{
	return v != NULL && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

/* What system s held before: its value at the last merge, else the base. */
static const char *before(const struct merge_input *in, int s)
{
	return in->prev_known[s] ? in->prev[s] : in->base;
}

/* Members a system dropped since before are removed, members it added are
 * added; members with keep_prefix are never removed, and a fresh record
 * only adds. */
static void merge_union(const struct merge_input *in, struct merge_result *out)
{
	char **basev, **v[DF_MAX_SYSTEMS] = { 0 };
	int nb = set_split(in->base, &basev), nv[DF_MAX_SYSTEMS] = { 0 }, cap = nb + 1, n = 0;
	const char **acc;

	for (int s = 0; s < in->nsys; s++)
		if (in->value[s] != NULL)
			cap += nv[s] = set_split(in->value[s], &v[s]);
	acc = xcalloc((size_t)cap, sizeof(*acc));
	for (int i = 0; i < nb; i++) {
		bool dropped = false;
		for (int s = 0; s < in->nsys && !dropped; s++)
			dropped = in->value[s] != NULL && !in->fresh[s] && before(in, s) != NULL &&
				  set_contains(before(in, s), basev[i]) && !set_contains(in->value[s], basev[i]);
		if (in->keep_prefix && *in->keep_prefix &&
		    strncasecmp(basev[i], in->keep_prefix, strlen(in->keep_prefix)) == 0)
			dropped = false;
		if (!dropped)
			acc[n++] = basev[i];
	}
	for (int s = 0; s < in->nsys; s++)
		for (int i = 0; i < nv[s]; i++)
			if (in->fresh[s] || before(in, s) == NULL || !set_contains(before(in, s), v[s][i]))
				acc[n++] = v[s][i];
	out->value = set_from_array(acc, n);
	out->reason = "union";
	for (int s = 0; s < in->nsys; s++)
		free(v[s]);
	free(acc);
	free(basev);
}

static bool any_value(const struct merge_input *in)
{
	for (int s = 0; s < in->nsys; s++)
		if (in->value[s] != NULL)
			return true;
	return false;
}

/* Picks among the systems in cand[] (source order) under the rule. */
static int decide_conflict(const struct merge_rule *rule, const struct merge_input *in,
			   const int *cand, int ncand, const char **reason)
{
	switch (rule->kind) {
	case RULE_PREFER_UNLESS_BLANK:
		for (int i = 0; i < ncand; i++) {
			if (cand[i] == rule->system && !str_blank(in->value[cand[i]])) {
				*reason = "conflict: preferred system";
				return cand[i];
			}
		}
		for (int i = 0; i < ncand; i++) {
			if (!str_blank(in->value[cand[i]])) {
				*reason = "conflict: preferred system blank, first non-blank in source order";
				return cand[i];
			}
		}
		break;
	case RULE_NEWEST: {
		int best = cand[0];
		for (int i = 1; i < ncand; i++)
			if (in->updated_ms[cand[i]] > in->updated_ms[best])
				best = cand[i];
		*reason = "conflict: newest update";
		return best;
	}
	case RULE_PREFER_VALID:
		for (int i = 0; i < ncand; i++) {
			if (value_is_valid(in->kind, in->value[cand[i]])) {
				*reason = "conflict: first valid value in source order";
				return cand[i];
			}
		}
		break;
	default:
		break;
	}
	*reason = "conflict: source order";
	return cand[0];
}

void merge_field(const struct merge_rule *rule, const struct merge_input *in,
		 struct merge_result *out)
{
	int cand[DF_MAX_SYSTEMS], ncand = 0, pick;
	bool distinct = false, fresh = false, edited = false;

	memset(out, 0, sizeof(*out));
	out->winner = -1;
	if (rule->kind == RULE_NONE) {
		out->reason = "not synced";
		return;
	}
	if (!any_value(in)) {
		out->value = xstrdup(in->base ? in->base : "");
		out->reason = "no system carries a value";
		return;
	}
	if (rule->kind == RULE_UNION) {
		merge_union(in, out);
		out->changed = !str_eq(out->value, in->base);
		return;
	}
	if (rule->kind == RULE_STICKY_TRUE) {
		bool on = truthy(in->base);
		for (int s = 0; s < in->nsys; s++)
			if (truthy(in->value[s]) && !on) {
				on = true;
				out->winner = s;
			}
		out->value = xstrdup(on ? "true" : "false");
		out->reason = "sticky-true: set stays set";
		out->changed = !str_eq(out->value, in->base);
		return;
	}
	for (int s = 0; s < in->nsys; s++) {
		if (in->value[s] == NULL)
			continue;
		if (in->fresh[s] ? str_blank(in->value[s]) || str_eq(in->value[s], in->base)
				 : str_eq(in->value[s], before(in, s)))
			continue;
		if (ncand > 0 && !str_eq(in->value[s], in->value[cand[0]]))
			distinct = true;
		fresh |= in->fresh[s];
		edited |= !in->fresh[s];
		cand[ncand++] = s;
	}
	/* A fresh record's value competes with the agreed one: the systems
	 * still holding the base take part in the decision, unless a system
	 * edited the field, in which case the edit and the fresh value decide. */
	if (fresh && !edited && !str_blank(in->base)) {
		for (int s = 0; s < in->nsys; s++) {
			bool listed = false;
			for (int i = 0; i < ncand; i++)
				listed |= cand[i] == s;
			if (!listed && !in->fresh[s] && in->value[s] != NULL && str_eq(in->value[s], in->base)) {
				distinct = true;
				cand[ncand++] = s;
			}
		}
		/* Keep source order among the candidates. */
		for (int i = 1; i < ncand; i++)
			for (int j = i; j > 0 && cand[j] < cand[j - 1]; j--) {
				int t = cand[j];
				cand[j] = cand[j - 1];
				cand[j - 1] = t;
			}
	}
	if (rule->kind == RULE_ALWAYS && in->value[rule->system] != NULL) {
		pick = rule->system;
		out->conflict = false;
		for (int i = 0; i < ncand; i++)
			if (!str_eq(in->value[cand[i]], in->value[pick]))
				out->conflict = true;
		out->reason = out->conflict ? "always: other systems' edits reverted" : "always";
	} else if (ncand == 0) {
		out->value = xstrdup(in->base ? in->base : "");
		out->reason = "unchanged";
		return;
	} else if (!distinct) {
		pick = cand[0];
		out->reason = ncand == 1 ? "changed in one system" : "same change in several systems";
	} else {
		pick = decide_conflict(rule, in, cand, ncand, &out->reason);
		out->conflict = true;
	}
	out->winner = pick;
	out->value = xstrdup(in->value[pick]);
	out->changed = !str_eq(out->value, in->base);
}

static bool flag_on(const char *v)
{
	return v != NULL && strcmp(v, "true") == 0;
}

void merge_optout(const struct optout_input *in, struct optout_result *out)
{
	bool was = flag_on(in->base) || in->registry_out;

	memset(out, 0, sizeof(*out));
	out->opted_out_by = out->opted_in_by = -1;
	/* A new opt-out anywhere wins over everything else in the same run. */
	for (int s = 0; s < in->nsys; s++) {
		/* A system still holding an opt-out it held at the last merge did
		 * not opt out again (the texting register cannot opt in). */
		if (flag_on(in->value[s]) && !was && !(in->prev_known[s] && flag_on(in->prev[s]))) {
			out->opted_out = true;
			out->opted_out_by = s;
			out->reason = "opt-out recorded by a system";
			return;
		}
	}
	if (!was) {
		out->reason = "no opt-out";
		return;
	}
	out->opted_out = true;
	out->reason = flag_on(in->base) ? "opt-out stays (sticky)" : "opt-out from the registry";
	if (in->keyword_opt_in) {
		out->opted_out = false;
		out->opted_in_by = in->keyword_by;
		out->reason = "opt-in by a START keyword the configuration allows";
		return;
	}
	for (int s = 0; s < in->nsys; s++) {
		if (in->value[s] == NULL || flag_on(in->value[s]) || !flag_on(in->base) ||
		    !in->prev_known[s] || !flag_on(in->prev[s]))
			continue;
		/* s turned the flag off. */
		if (in->may_opt_in[s] && out->opted_in_by < 0) {
			out->opted_in_by = s;
		} else {
			out->refused[s] = true;
		}
	}
	if (out->opted_in_by >= 0) {
		out->opted_out = false;
		out->reason = "opt-in by a system the configuration allows";
		for (int s = 0; s < in->nsys; s++)
			out->refused[s] = false;
	}
}
