/*
 * reconcile.c - the MERGE stage applied to persons: for every person a poll
 * or a write marked dirty, each field is merged three-way (merge.c) from the
 * agreed base and each linked system's snapshot. The agreed value is kept
 * with its provenance - winning system, rule, reason, the values it beat -
 * so every value can be explained (I5); conflicts are journalled with every
 * candidate. Then plan.c turns the agreed values into writes.
 *
 * Persons are taken in batches from the state, so memory does not grow with
 * the number of contacts.
 */
#include <json-c/json.h>
#include <stdlib.h>

#include <string.h>

#include "engine.h"
#include "../core/normalize.h"
#include "../core/str.h"

#define BATCH 200

/* What the person's linked records hold now and held at the last merge. */
struct person_view {
	struct record recs[DF_MAX_SYSTEMS], prev[DF_MAX_SYSTEMS];
	bool present[DF_MAX_SYSTEMS], known[DF_MAX_SYSTEMS];
	bool same[DF_MAX_SYSTEMS];      /* merged copy already 'same' */
	struct record pins;     /* values an admin pinned (admin.c) */
};

/* JSON object system -> value for the systems selected by pick(). */
static char *values_json(const struct run *r, const struct merge_input *in, const char *skip)
{
	json_object *o = json_object_new_object();
	char *s;

	for (int i = 0; i < in->nsys; i++)
		if (in->value[i] != NULL && (skip == NULL || !str_eq(in->value[i], skip)))
			json_object_object_add(o, r->sys[i].conf->name, json_object_new_string(in->value[i]));
	s = json_object_object_length(o) ? xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)) : NULL;
	json_object_put(o);
	return s;
}

static bool may_opt_in(const struct run *r, int s, const char *source)
{
	switch (r->cfg->opt_in) {
	case OPTIN_SAME_SYSTEM: return source != NULL && strcmp(source, r->sys[s].conf->name) == 0;
	case OPTIN_LISTED: return r->cfg->opt_in_from[s];
	case OPTIN_NEVER: break;
	}
	return false;
}

/* One opt-out channel (I4): merged with the registry, which is updated and
 * whose every change is logged for the report. */
static int merge_optout_field(struct run *r, long long person, int f, const struct record *base,
			      const struct person_view *pv, struct record *agreed, struct agreed_patch *patch)
{
	const struct record *recs = pv->recs;
	const bool *present = pv->present;
	const char *channel = optout_channel(f), *phone = agreed->value[F_PHONE];
	bool keyed = phone_is_e164(phone);
	struct optout_input in = { .base = base->value[f], .nsys = r->nsys };
	struct optout_result res;
	char *source = NULL;
	int rc = 0;

	if (keyed && state_optout_get(r->st, phone, channel, &in.registry_out, &source, &r->err))
		return -1;
	for (int s = 0; s < r->nsys; s++) {
		in.value[s] = present[s] ? recs[s].value[f] : NULL;
		in.prev[s] = pv->prev[s].value[f];
		in.prev_known[s] = present[s] && pv->known[s];
		in.may_opt_in[s] = may_opt_in(r, s, source);
	}
	for (int i = 0; keyed && f == F_OPTOUT_SMS && i < r->noptins; i++) {
		if (strcmp(r->optins[i].phone, phone) == 0) {
			in.keyword_opt_in = true;
			in.keyword_by = r->optins[i].sys;
		}
	}
	merge_optout(&in, &res);
	record_set(agreed, f, res.opted_out ? "true" : "false");
	if (res.opted_out_by >= 0 || res.opted_in_by >= 0 || (res.opted_out && keyed && !in.registry_out)) {
		int by = res.opted_out_by >= 0 ? res.opted_out_by : res.opted_in_by;
		const char *who = by >= 0 ? r->sys[by].conf->name : source ? source : "agreed";
		const char *action = res.opted_in_by >= 0 ? "opt-in" : "opt-out";
		log_info("event=%s person=%lld channel=%s system=%s", action, person, channel, who);
		if ((keyed && state_optout_set(r->st, phone, channel, res.opted_out, who, res.reason,
					       r->id, &r->err)) ||
		    state_optout_log(r->st, r->id, keyed ? phone : NULL, channel, person, action, who,
				     res.reason, &r->err))
			rc = -1;
	}
	for (int s = 0; s < r->nsys && rc == 0; s++) {
		if (!res.refused[s])
			continue;
		log_warn("event=opt-in-refused person=%lld channel=%s system=%s", person, channel,
			 r->sys[s].conf->name);
		rc = state_optout_log(r->st, r->id, keyed ? phone : NULL, channel, person, "opt-in-refused",
				      r->sys[s].conf->name, "the configuration does not let this system opt a "
				      "number back in; the opt-out stays and is written back", &r->err);
	}
	if (rc == 0 && !str_eq(base->value[f], agreed->value[f])) {
		struct provenance p = { res.opted_out_by >= 0 ? r->sys[res.opted_out_by].conf->name :
					res.opted_in_by >= 0 ? r->sys[res.opted_in_by].conf->name : source,
					r->cfg->rule[f].text, res.reason, NULL };
		rc = state_patch_add(r->st, patch, field_get(f)->name, agreed->value[f], &p, r->id, &r->err);
	}
	free(source);
	return rc;
}

/* A pinned field: the pin is the agreed value, whatever the systems hold,
 * so every system that differs is written (plan.c). Opt-out fields are
 * never pinned (admin.c refuses them), so I4 holds. */
static int take_pin(struct run *r, int f, const struct record *base, const struct merge_input *in,
		    const char *pin, struct record *agreed, struct agreed_patch *patch)
{
	int rc = 0;

	if (!str_eq(base->value[f], pin)) {
		char *beaten = values_json(r, in, pin);
		struct provenance p = { NULL, "pin", "pinned by an admin", beaten };
		rc = state_patch_add(r->st, patch, field_get(f)->name, pin, &p, r->id, &r->err);
		free(beaten);
	}
	record_set(agreed, f, pin);
	return rc;
}

static int merge_one_field(struct run *r, long long person, int f, const struct record *base,
			   const struct person_view *pv, struct record *agreed, struct agreed_patch *patch)
{
	const struct record *recs = pv->recs;
	const bool *present = pv->present;
	const struct merge_rule *rule = &r->cfg->rule[f];
	const char *name = field_get(f)->name;
	struct merge_input in = { .kind = field_get(f)->kind, .base = base->value[f],
				  .nsys = r->nsys, .keep_prefix = r->cfg->keep_tag_prefix };
	struct merge_result res;
	int rc = 0;

	if (field_is_optout(f))
		return merge_optout_field(r, person, f, base, pv, agreed, patch);
	/* While the safety valve holds, an agreed value stays as it was; a
	 * first one (a new person, such as a STOP from an unknown number,
	 * whose phone keys the opt-out) is taken as usual. */
	if (r->optouts_only && base->value[f] != NULL) {
		record_set(agreed, f, base->value[f]);
		return 0;
	}
	for (int s = 0; s < r->nsys; s++) {
		in.value[s] = present[s] ? recs[s].value[f] : NULL;
		in.updated_ms[s] = present[s] ? recs[s].updated_ms : -1;
		in.prev[s] = pv->prev[s].value[f];
		in.prev_known[s] = present[s] && pv->known[s];
		in.fresh[s] = present[s] && !pv->known[s];
	}
	if (pv->pins.value[f] != NULL)
		return take_pin(r, f, base, &in, pv->pins.value[f], agreed, patch);
	merge_field(rule, &in, &res);
	if (res.value == NULL)
		return 0;
	if (res.changed || base->value[f] == NULL) {
		char *beaten = values_json(r, &in, res.value);
		struct provenance p = { res.winner >= 0 ? r->sys[res.winner].conf->name : NULL,
					rule->text, res.reason, beaten };
		rc = state_patch_add(r->st, patch, name, res.value, &p, r->id, &r->err);
		free(beaten);
	}
	if (rc == 0 && res.conflict) {
		char *cands = values_json(r, &in, NULL);
		r->conflicts++;
		log_info("event=conflict person=%lld field=%s winner=%s rule=%s", person, name,
			 res.winner >= 0 ? r->sys[res.winner].conf->name : "-", rule->text);
		rc = state_conflict_add(r->st, r->id, person, name, base->value[f], cands,
					res.winner >= 0 ? r->sys[res.winner].conf->name : NULL,
					res.value, rule->text, res.reason, &r->err);
		free(cands);
	}
	record_take(agreed, f, res.value);
	return rc;
}

static int load_view(struct run *r, long long person, struct person_view *pv)
{
	const char *names[DF_MAX_SYSTEMS];
	char *ids[DF_MAX_SYSTEMS];
	int rc = 0;

	for (int s = 0; s < r->nsys; s++)
		names[s] = r->sys[s].conf->name;
	if (state_links_of(r->st, person, names, r->nsys, ids, &r->err))
		return -1;
	for (int s = 0; s < r->nsys; s++) {
		if (rc == 0 && ids[s] != NULL)
			rc = state_snapshot_view(r->st, names[s], ids[s], &pv->recs[s], &pv->present[s], &pv->prev[s],
						 &pv->known[s], &pv->same[s], &r->err);
		free(ids[s]);
	}
	return rc;
}

static int reconcile_person(struct run *r, long long person)
{
	struct record base, agreed;
	struct person_view pv;
	struct agreed_patch patch;
	int rc = -1;

	memset(&pv, 0, sizeof(pv));
	state_patch_init(&patch);
	record_init(&base);
	record_init(&agreed);
	record_init(&pv.pins);
	for (int s = 0; s < r->nsys; s++) {
		record_init(&pv.recs[s]);
		record_init(&pv.prev[s]);
	}
	if (state_agreed_get(r->st, person, &base, &r->err) || load_view(r, person, &pv) ||
	    state_pins_get(r->st, person, &pv.pins, &r->err))
		goto out;
	for (int f = 0; f < fields_count(); f++)
		if (merge_one_field(r, person, f, &base, &pv, &agreed, &patch))
			goto out;
	/* The values that changed, in one statement, before the plan (its
	 * lookups by phone and e-mail see them). */
	if (state_agreed_write(r->st, person, &patch, &r->err) ||
	    plan_person(r, person, &agreed, pv.recs, pv.present))
		goto out;
	/* While the valve holds, the person stays dirty with its changes
	 * unmerged: the next run merges (and the valve counts) them again. */
	if (r->optouts_only) {
		rc = 0;
		goto out;
	}
	/* Whatever the systems hold now is accounted for: from here on only
	 * a difference from it is an edit. */
	for (int s = 0; s < r->nsys; s++)
		if (pv.present[s] && !pv.same[s] &&
		    state_snapshot_mark_merged(r->st, r->sys[s].conf->name, pv.recs[s].remote_id, &r->err))
			goto out;
	rc = state_person_merged(r->st, person, r->id, &r->err);
out:
	state_patch_free(&patch);
	record_clear(&base);
	record_clear(&agreed);
	record_clear(&pv.pins);
	for (int s = 0; s < r->nsys; s++) {
		record_clear(&pv.recs[s]);
		record_clear(&pv.prev[s]);
	}
	return rc;
}

int reconcile_dirty(struct run *r)
{
	long long ids[BATCH], after = 0;
	int n;

	/* Each pass clears the dirty mark of every person it takes, so the
	 * loop ends; the bound guards against a mark that will not clear.
	 * While the valve holds, marks stay: persons are taken by id. */
	for (long pass = 0; pass < 100000000L / BATCH; pass++) {
		if (r->optouts_only ? state_dirty_after(r->st, after, ids, BATCH, &n, &r->err)
				    : state_dirty_batch(r->st, ids, BATCH, &n, &r->err))
			return -1;
		if (n > 0)
			after = ids[n - 1];
		if (n == 0)
			return 0;
		if (state_begin(r->st, &r->err))
			return -1;
		for (int i = 0; i < n; i++) {
			if (reconcile_person(r, ids[i])) {
				state_rollback(r->st);
				return -1;
			}
		}
		if (state_commit(r->st, &r->err))
			return -1;
	}
	return df_fail(&r->err, DF_FAIL_STATE, "dirty persons do not clear");
}
