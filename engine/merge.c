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

void merge_result_free(struct merge_result *r)
{
	free(r->value);
	r->value = NULL;
}

static bool truthy(const char *v)
{
	return v != NULL && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

/* Members of base that some system dropped are removed, members any system
 * added are added; members with keep_prefix are never removed. */
static void merge_union(const struct merge_input *in, struct merge_result *out)
{
	char **basev, **sv;
	int nb = set_split(in->base, &basev), cap = nb + 1, n = 0;
	const char **acc;

	for (int s = 0; s < in->nsys; s++) {
		if (in->value[s] != NULL) {
			int k = set_split(in->value[s], &sv);
			cap += k;
			free(sv);
		}
	}
	acc = xcalloc((size_t)cap, sizeof(*acc));
	for (int i = 0; i < nb; i++) {
		bool dropped = false;
		for (int s = 0; s < in->nsys && !dropped; s++)
			dropped = in->base != NULL && in->value[s] != NULL &&
				  !set_contains(in->value[s], basev[i]);
		if (in->keep_prefix && strncasecmp(basev[i], in->keep_prefix, strlen(in->keep_prefix)) == 0)
			dropped = false;
		if (!dropped)
			acc[n++] = basev[i];
	}
	char **all[DF_MAX_SYSTEMS] = { 0 };
	for (int s = 0; s < in->nsys; s++) {
		if (in->value[s] == NULL)
			continue;
		int k = set_split(in->value[s], &all[s]);
		for (int i = 0; i < k; i++)
			if (in->base == NULL || !set_contains(in->base, all[s][i]))
				acc[n++] = all[s][i];
	}
	out->value = set_from_array(acc, n);
	out->reason = "union";
	for (int s = 0; s < in->nsys; s++)
		free(all[s]);
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
	bool distinct = false;

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
		if (in->value[s] == NULL || str_eq(in->value[s], in->base))
			continue;
		if (ncand > 0 && !str_eq(in->value[s], in->value[cand[0]]))
			distinct = true;
		cand[ncand++] = s;
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
