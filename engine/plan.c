/*
 * plan.c - the PLAN stage: for each system whose record differs from the
 * agreed values, journal one write (outbox + its fields) before anything is
 * sent (I2). Only differing fields are written. A newer plan supersedes an
 * older pending write for the same person and system, so a retry never
 * sends stale values.
 *
 * What cannot be done is said, not skipped: a field a system's API cannot
 * change, a record a system cannot hold (Aloware without a valid phone)
 * become notices in the report.
 */
#include <stdio.h>
#include <stdlib.h>

#include "engine.h"
#include "../core/normalize.h"
#include "../core/str.h"

static int notice(struct run *r, long long person, int s, const char *remote_id,
		  const char *kind, const char *msg)
{
	r->notices++;
	log_info("event=notice system=%s person=%lld kind=%s", r->sys[s].conf->name, person, kind);
	return state_notice_add(r->st, r->id, person, r->sys[s].conf->name, remote_id, kind, msg,
				&r->err);
}

/* Journals the fields in want[] for system s; no row when there are none. */
static int journal(struct run *r, long long person, int s, const char *remote_id, const char *op,
		   const struct record *agreed, const struct record *current, const int *want, int n)
{
	struct write_field fields[DF_MAX_FIELDS];

	if (n == 0)
		return 0;
	for (int i = 0; i < n; i++) {
		int f = want[i];
		fields[i] = (struct write_field){ field_get(f)->name, current ? current->value[f] : NULL,
						  agreed->value[f], r->cfg->rule[f].text, NULL };
	}
	if (state_outbox_add(r->st, r->id, person, r->sys[s].conf->name, remote_id, op, fields, n,
			     &r->err) < 0)
		return -1;
	/* What a tripped safety valve holds back, for its message (I6). */
	if (!write_is_optout(r, s, op, want, n)) {
		if (current)
			r->held_updates++;
		else
			r->held_creates++;
	}
	log_info("event=plan system=%s person=%lld op=%s fields=%d", r->sys[s].conf->name, person, op, n);
	return 0;
}

/* While the safety valve holds (r->optouts_only), only opt-out fields are
 * planned, and records are made only where they hold opt-outs. */
static int plan_update(struct run *r, long long person, int s, const struct record *agreed,
		       const struct record *cur)
{
	const struct system_run *sr = &r->sys[s];
	int want[DF_MAX_FIELDS], n = 0;

	for (int f = 0; f < fields_count(); f++) {
		if (r->cfg->rule[f].kind == RULE_NONE || !sys_carries(sr, f) ||
		    (r->optouts_only && !field_is_optout(f)) ||
		    agreed->value[f] == NULL || value_same(field_get(f)->kind, cur->value[f], agreed->value[f]))
			continue;
		if (connector_can_write(sr->conn, sr->conf, f) &&
		    !(field_is_optout(f) && connector_has(sr->conn, CAP_OPTOUTS_ONE_WAY) &&
		      !str_eq(agreed->value[f], "true"))) {
			want[n++] = f;
		} else {
			char msg[512];
			snprintf(msg, sizeof(msg), "%s cannot change %s through its API (holds \"%s\", agreed \"%s\")",
				 sr->conf->name, field_get(f)->name, cur->value[f] ? cur->value[f] : "",
				 agreed->value[f]);
			if (notice(r, person, s, cur->remote_id, "not-writable", msg))
				return -1;
		}
	}
	return journal(r, person, s, cur->remote_id, "update", agreed, cur, want, n);
}

static bool any_optout(const struct record *agreed)
{
	for (int f = F_OPTOUT_SMS; f <= F_OPTOUT_EMAIL; f++)
		if (str_eq(agreed->value[f], "true"))
			return true;
	return false;
}

/* Whether the person's phone or email is shared with another person or a
 * held record; why says which. */
static int key_ambiguous(struct run *r, long long person, const struct record *agreed, bool *ambiguous,
			 char *why, size_t n)
{
	static const struct { int field; const char *name; } keys[] = { { F_PHONE, "phone" }, { F_EMAIL, "email" } };

	*ambiguous = false;
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]) && !*ambiguous; k++) {
		const char *v = agreed->value[keys[k].field];
		long long ids[2];
		char *held = NULL;
		int nids = 0;
		if (!(keys[k].field == F_PHONE ? phone_is_e164(v) : email_is_valid(v)))
			continue;
		if (state_match(r->st, keys[k].name, v, ids, 2, &nids, &r->err) ||
		    state_held_other(r->st, keys[k].name, v, "", "", &held, &r->err))
			return -1;
		*ambiguous = held != NULL || nids > 1 || (nids == 1 && ids[0] != person);
		if (*ambiguous)
			snprintf(why, n, "%s %s is ambiguous (%s shares it): not created while an admin has "
				 "not linked or unlinked the held records", keys[k].name, v,
				 held ? held : "another person");
		free(held);
	}
	return 0;
}

/* from_contacts: some system that holds contacts (not only opt-outs) has a
 * record of this person; a number known only from the texting system's
 * opt-outs is not made into a contact anywhere. */
static int plan_create(struct run *r, long long person, int s, const struct record *agreed,
		       bool from_contacts)
{
	const struct system_run *sr = &r->sys[s];
	int req = sr->conn->required_for_create, want[DF_MAX_FIELDS], n = 0;

	bool deleted, ambiguous = false;
	char why[512];

	if (!sr->conf->create || (connector_has(sr->conn, CAP_OPTOUTS_ONLY) ? !any_optout(agreed) : !from_contacts) ||
	    (r->optouts_only && !connector_has(sr->conn, CAP_OPTOUTS_ONLY)))
		return 0;
	/* Deleted there: not created again (the tombstone link says so). */
	if (state_link_deleted(r->st, person, sr->conf->name, &deleted, &r->err))
		return -1;
	if (deleted)
		return 0;
	/* The lookup before a create would link a record through the key;
	 * the opt-out register takes a number's opt-outs whoever shares it. */
	if (!connector_has(sr->conn, CAP_OPTOUTS_ONLY) && key_ambiguous(r, person, agreed, &ambiguous, why, sizeof(why)))
		return -1;
	if (!connector_has(sr->conn, CAP_OPTOUTS_ONLY) && ambiguous)
		return notice(r, person, s, NULL, "ambiguous", why);
	if (!phone_is_e164(agreed->value[F_PHONE]) && !email_is_valid(agreed->value[F_EMAIL]))
		return notice(r, person, s, NULL, "cannot-create",
			      "no valid phone or email to find the record by, so it is not created");
	if (req >= 0 && !value_is_valid(field_get(req)->kind, agreed->value[req])) {
		char msg[256];
		snprintf(msg, sizeof(msg), "%s needs a valid %s to create a contact", sr->conf->name,
			 field_get(req)->name);
		return notice(r, person, s, NULL, "cannot-create", msg);
	}
	/* A create may set what an update cannot (Aloware's phone); a new
	 * record starts without opt-outs, so only those in force are sent. */
	for (int f = 0; f < fields_count(); f++)
		if (r->cfg->rule[f].kind != RULE_NONE && sys_carries(sr, f) &&
		    !str_blank(agreed->value[f]) &&
		    !(field_is_optout(f) && (!str_eq(agreed->value[f], "true") ||
					     !connector_can_write(sr->conn, sr->conf, f))))
			want[n++] = f;
	return journal(r, person, s, NULL, "create", agreed, NULL, want, n);
}

int plan_person(struct run *r, long long person, const struct record *agreed,
		const struct record *recs, const bool *present)
{
	bool from_contacts = false;

	for (int s = 0; s < r->nsys; s++)
		from_contacts |= present[s] && !connector_has(r->sys[s].conn, CAP_OPTOUTS_ONLY);
	for (int s = 0; s < r->nsys; s++) {
		/* An opt-out sent while the valve holds replaces nothing. */
		if (!r->optouts_only && state_outbox_supersede(r->st, person, r->sys[s].conf->name, &r->err))
			return -1;
		if (present[s] ? plan_update(r, person, s, agreed, &recs[s])
			       : plan_create(r, person, s, agreed, from_contacts))
			return -1;
	}
	return plan_lists(r, person, agreed, recs, present);
}
