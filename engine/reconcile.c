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

#include "engine.h"
#include "../core/str.h"

#define BATCH 200

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

static int merge_one_field(struct run *r, long long person, int f, const struct record *base,
			   const struct record *recs, const bool *present, struct record *agreed)
{
	const struct merge_rule *rule = &r->cfg->rule[f];
	const char *name = field_get(f)->name;
	struct merge_input in = { .kind = field_get(f)->kind, .base = base->value[f],
				  .nsys = r->nsys, .keep_prefix = r->cfg->keep_tag_prefix };
	struct merge_result res;
	int rc = 0;

	for (int s = 0; s < r->nsys; s++) {
		in.value[s] = present[s] ? recs[s].value[f] : NULL;
		in.updated_ms[s] = present[s] ? recs[s].updated_ms : -1;
	}
	merge_field(rule, &in, &res);
	if (res.value == NULL)
		return 0;
	if (res.changed || base->value[f] == NULL) {
		char *beaten = values_json(r, &in, res.value);
		struct provenance p = { res.winner >= 0 ? r->sys[res.winner].conf->name : NULL,
					rule->text, res.reason, beaten };
		rc = state_agreed_put(r->st, person, name, res.value, &p, r->id, &r->err);
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

static int reconcile_person(struct run *r, long long person)
{
	struct record base, agreed, recs[DF_MAX_SYSTEMS];
	bool present[DF_MAX_SYSTEMS] = { false }, established = false;
	int rc = -1;

	record_init(&base);
	record_init(&agreed);
	for (int s = 0; s < r->nsys; s++)
		record_init(&recs[s]);
	if (state_agreed_get(r->st, person, &base, &r->err))
		goto out;
	for (int s = 0; s < r->nsys; s++) {
		char *id;
		if (state_link_of(r->st, person, r->sys[s].conf->name, &id, &r->err))
			goto out;
		if (id != NULL &&
		    state_snapshot_get(r->st, r->sys[s].conf->name, id, &recs[s], &present[s], &r->err)) {
			free(id);
			goto out;
		}
		free(id);
	}
	for (int f = 0; f < fields_count(); f++) {
		established |= base.value[f] != NULL;
		if (merge_one_field(r, person, f, &base, recs, present, &agreed))
			goto out;
	}
	if (plan_person(r, person, &agreed, recs, present, established) == 0)
		rc = state_person_dirty(r->st, person, false, &r->err);
out:
	record_clear(&base);
	record_clear(&agreed);
	for (int s = 0; s < r->nsys; s++)
		record_clear(&recs[s]);
	return rc;
}

int reconcile_dirty(struct run *r)
{
	long long ids[BATCH];
	int n;

	/* Each pass clears the dirty mark of every person it takes, so the
	 * loop ends; the bound guards against a mark that will not clear. */
	for (long pass = 0; pass < 100000000L / BATCH; pass++) {
		if (state_dirty_batch(r->st, ids, BATCH, &n, &r->err))
			return -1;
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
