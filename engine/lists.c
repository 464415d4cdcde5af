/*
 * lists.c - GHL tags to call lists (Aloware power-dialer lists).
 *
 * The lists a person belongs in follow from the agreed tags and the list
 * rules; a number opted out of calls or texts belongs in none, so it leaves
 * every list and is never re-added while the opt-out stands. What we last
 * made the membership (state: list_member) is compared with that, and the
 * difference is journalled as list-add / list-remove writes, like any other
 * write (I2).
 */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine.h"
#include "../core/str.h"

bool lists_rule_matches(const struct list_rule *lr, const char *tag)
{
	switch (lr->match) {
	case MATCH_EXACT: return strcmp(lr->tag, tag) == 0;
	case MATCH_NOCASE: return strcasecmp(lr->tag, tag) == 0;
	case MATCH_REGEX: return lr->regex && regexec(lr->regex, tag, 0, NULL, 0) == 0;
	}
	return false;
}

int lists_wanted(const struct list_rule *rules, int nrules, const char *tags, bool opted_out,
		 const char **out)
{
	char **v;
	int n = set_split(tags, &v), k = 0;

	for (int i = 0; i < nrules && !opted_out; i++) {
		bool dup = false;
		for (int j = 0; j < k; j++)
			dup |= strcmp(out[j], rules[i].list_id) == 0;
		for (int t = 0; t < n && !dup; t++) {
			if (lists_rule_matches(&rules[i], v[t])) {
				out[k++] = rules[i].list_id;
				break;
			}
		}
	}
	free(v);
	return k;
}

static bool listed(const char *const *v, int n, const char *id)
{
	for (int i = 0; i < n; i++)
		if (strcmp(v[i], id) == 0)
			return true;
	return false;
}

/* list: one list id to add, or the comma-separated ids to remove. */
static int journal_list(struct run *r, long long person, int s, const char *remote_id, bool add,
			const char *list, const char *keep)
{
	const struct write_field fields[2] = {
		{ "list", add ? NULL : list, add ? list : NULL, "call_lists",
		  add ? "a tag matches the list's rule" : "no tag matches the list's rule, or the number opted out" },
		{ "keep", NULL, keep, "call_lists", "lists the contact stays in" },
	};

	if (state_outbox_add(r->st, r->id, person, r->sys[s].conf->name, remote_id,
			     add ? "list-add" : "list-remove", fields, add ? 1 : 2, &r->err) < 0)
		return -1;
	log_info("event=plan system=%s person=%lld op=%s list=%s", r->sys[s].conf->name, person,
		 add ? "list-add" : "list-remove", list);
	return 0;
}

int plan_lists(struct run *r, long long person, const struct record *agreed,
	       const struct record *recs, const bool *present)
{
	int s = r->cfg->lists_system ? run_system_index(r, r->cfg->lists_system) : -1;
	const char **want;
	char **have = NULL, *keep;
	int nwant, nhave = 0, rc = 0;
	bool out;

	if (s < 0 || r->cfg->nlists == 0 || !present[s])
		return 0;
	out = str_eq(agreed->value[F_OPTOUT_CALL], "true") || str_eq(agreed->value[F_OPTOUT_SMS], "true");
	want = xcalloc((size_t)r->cfg->nlists + 1, sizeof(*want));
	nwant = lists_wanted(r->cfg->lists, r->cfg->nlists, agreed->value[F_TAGS], out, want);
	if (state_list_members(r->st, person, &have, &nhave, &r->err)) {
		free(want);
		return -1;
	}
	keep = set_from_array(want, nwant);
	for (char *p = keep; *p; p++)
		if (*p == '\n')
			*p = ',';
	/* While the safety valve holds only removals go (an opt-out's). */
	for (int i = 0; i < nwant && rc == 0 && !r->optouts_only; i++)
		if (!listed((const char *const *)have, nhave, want[i]))
			rc = journal_list(r, person, s, recs[s].remote_id, true, want[i], NULL);
	/* Removals go as one write: the system may drop every list at once. */
	struct strbuf gone;
	sb_init(&gone);
	for (int i = 0; i < nhave; i++)
		if (!listed(want, nwant, have[i]))
			sb_addf(&gone, "%s%s", gone.len ? "," : "", have[i]);
	if (rc == 0 && gone.len)
		rc = journal_list(r, person, s, recs[s].remote_id, false, gone.buf, keep);
	sb_free(&gone);
	for (int i = 0; i < nhave; i++)
		free(have[i]);
	free(have);
	free(want);
	free(keep);
	return rc;
}
