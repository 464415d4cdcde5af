/*
 * observe.c - the OBSERVE stage: a polled record against the snapshot.
 *
 * A record equal to its snapshot costs one read and a touch of its remote
 * time; that is what makes a quiet minute cheap and our own writes echo
 * harmlessly (I3). A record that cannot be normalised is quarantined with
 * its reason and id, and the run goes on (I8). A record whose opt-out was
 * malformed is used with the opt-out on, and quarantined (reported) too.
 */
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "../core/normalize.h"
#include "../core/str.h"

const char *observe_normalize(const struct run *r, int s, struct record *rec)
{
	const struct system_run *sr = &r->sys[s];

	for (int f = 0; f < fields_count(); f++) {
		const char *why = NULL;
		char *v;

		if (!sys_carries(sr, f)) {
			record_take(rec, f, NULL);
			continue;
		}
		v = value_normalize(field_get(f)->kind, rec->value[f] ? rec->value[f] : "",
				    r->cfg->default_country, &why);
		if (v == NULL)
			return why;
		record_take(rec, f, v);
	}
	return NULL;
}

int quarantine(struct run *r, int s, const char *id, const char *kind, const char *why)
{
	bool known = false;

	r->sys[s].counts.quarantined++;
	r->sys[s].failures[DF_FAIL_INPUT]++;
	r->quarantined++;
	/* A quarantine an earlier run reported, unchanged, needs no one new:
	 * it stays in the report and status but leaves the exit status 0. */
	if (state_quarantine_known(r->st, r->id, r->sys[s].conf->name, id, kind, why, &known, &r->err))
		return -1;
	if (!known)
		r->quarantined_new++;
	log_warn("event=quarantine system=%s record=%s kind=%s known=%s reason=\"%s\"", r->sys[s].conf->name,
		 id ? id : "-", kind, known ? "yes" : "no", why);
	/* Unreadable is not deleted: the record is still listed. */
	return state_quarantine_add(r->st, r->id, r->sys[s].conf->name, id, kind, why, &r->err) ||
	       (id && state_snapshot_listed(r->st, r->sys[s].conf->name, id, r->id, &r->err)) ? -1 : 0;
}

/* Journals field-level differences between old (may be NULL) and rec. */
static int record_changes(struct run *r, int s, long long person, const struct record *old,
			  const struct record *rec, bool *changed)
{
	*changed = false;
	for (int f = 0; f < fields_count(); f++) {
		const char *was = old ? old->value[f] : NULL;
		if (rec->value[f] == NULL || value_same(field_get(f)->kind, was, rec->value[f]))
			continue;
		*changed = true;
		if (state_observed_add(r->st, r->id, r->sys[s].conf->name, rec->remote_id, person,
				       field_get(f)->name, was, rec->value[f], &r->err))
			return -1;
	}
	return 0;
}

int observe_changes(struct run *r, int s, long long person, const struct record *old,
		    const struct record *rec, bool *changed)
{
	return record_changes(r, s, person, old, rec, changed);
}

void observe_fill(struct record *rec, const struct record *old)
{
	for (int f = 0; f < fields_count(); f++)
		if (rec->value[f] == NULL && old->value[f] != NULL)
			record_set(rec, f, old->value[f]);
}

/* True when the listing left carried fields of rec unsaid and the record
 * itself can be read for them. */
static bool completable(const struct run *r, int s, const struct record *rec)
{
	const struct system_run *sr = &r->sys[s];
	bool partial = false;

	for (int f = 0; f < fields_count(); f++)
		partial |= rec->value[f] == NULL && sys_carries(sr, f);
	return partial && connector_has(sr->conn, CAP_LISTING_PARTIAL) && sr->conn->fetch != NULL;
}

/* A listing that leaves carried fields unsaid (GHL search has no per-channel
 * DND) is completed by reading the record itself, when it is new or changed
 * since its snapshot, or in a full run; a failure leaves the snapshot's
 * values standing. */
static void complete(struct run *r, int s, struct record *rec, const struct record *old, bool found)
{
	const struct system_run *sr = &r->sys[s];
	struct record full;
	struct df_err e = { 0 };
	bool gone = false;

	/* A full run reads every partial record whole: drift in what the
	 * listing leaves unsaid is found too, whatever the snapshot says. */
	if (!completable(r, s, rec) || (found && rec->updated_ms == old->updated_ms && !r->opt->full))
		return;
	record_init(&full);
	if (sr->conn->fetch(sr->handle, rec, &full, &gone, &e) == 0 && !gone) {
		for (int f = 0; f < fields_count(); f++)
			if (rec->value[f] == NULL && full.value[f] != NULL)
				record_set(rec, f, full.value[f]);
		if (full.problem)
			record_problem(rec, "%s", full.problem);
	} else if (e.fail != DF_OK) {
		log_warn("event=complete-failed system=%s record=%s reason=\"%s\"", sr->conf->name,
			 rec->remote_id, e.msg);
	}
	record_clear(&full);
}

/* A held record's opt-outs are the safe direction (I4): the register takes
 * them by its phone, and every person with that phone is merged again, so
 * they reach every system although the record links to nobody. */
static int held_optouts(struct run *r, int s, const struct record *rec)
{
	const char *phone = rec->value[F_PHONE], *name = r->sys[s].conf->name;

	for (int f = F_OPTOUT_SMS; f <= F_OPTOUT_EMAIL && phone_is_e164(phone); f++) {
		const char *channel = optout_channel(f);
		long long persons[8];
		char *source = NULL;
		bool out = false;
		int n = 0;

		if (!str_eq(rec->value[f], "true"))
			continue;
		if (state_optout_get(r->st, phone, channel, &out, &source, &r->err))
			return -1;
		free(source);
		if (out)
			continue;
		log_info("event=opt-out system=%s record=%s channel=%s held=yes", name, rec->remote_id, channel);
		if (state_optout_set(r->st, phone, channel, true, name, "a record held from linking shows it",
				     r->id, &r->err) ||
		    state_match(r->st, "phone", phone, persons, 8, &n, &r->err))
			return -1;
		for (int i = 0; i < n; i++)
			if (state_optout_log(r->st, r->id, phone, channel, persons[i], "opt-out", name,
					     "a record held from linking shows it", &r->err) ||
			    state_person_dirty(r->st, persons[i], true, &r->err))
				return -1;
	}
	return 0;
}

/* Our own write coming back: a run killed (or left without an answer)
 * after the system applied an update, before it was recorded. Each field
 * that now holds what that update sent joins the merge base, as a recorded
 * write would have made it, so it is not taken for a user's edit that
 * could outvote a newer edit elsewhere. */
static int own_echo(struct run *r, int s, const struct record *rec)
{
	const char *name = r->sys[s].conf->name;
	struct outbox_item it;
	struct record merged;
	long long id = 0;
	bool found = false, known = false, moved = false;
	int rc;

	if (state_outbox_unrecorded(r->st, name, rec->remote_id, &id, &found, &r->err))
		return -1;
	if (!found)
		return 0;
	record_init(&merged);
	rc = state_outbox_load(r->st, id, &it, &r->err) ||
	     state_snapshot_merged(r->st, name, rec->remote_id, &merged, &known, &r->err) ? -1 : 0;
	for (int i = 0; rc == 0 && known && i < it.nfields; i++) {
		int f = it.f[i].field;
		if (f < 0 || !value_same(field_get(f)->kind, rec->value[f], it.f[i].new_value) ||
		    value_same(field_get(f)->kind, merged.value[f], it.f[i].new_value))
			continue;
		record_set(&merged, f, it.f[i].new_value);
		moved = true;
		log_info("event=own-echo system=%s record=%s field=%s outbox=%lld", name, rec->remote_id,
			 field_get(f)->name, id);
	}
	if (rc == 0 && moved)
		rc = state_snapshot_set_merged(r->st, name, rec->remote_id, &merged, &r->err);
	record_clear(&merged);
	outbox_item_clear(&it);
	return rc;
}

/*
 * The digest of rec as read, before anything completes or normalises it:
 * its update time, and for each field whether the system carries it, its
 * kind and its value (NULL apart from ""), and the default country phones
 * are read in. Equal digests mean the same record read the same way. Two
 * different 64-bit hashes (core/str.h hash128): not cryptographic, so a
 * value crafted to collide could at worst hide an edit until the record
 * changes again or the sweep reads it whole.
 *
 * A record the listing digested as bytes (rec->has_raw: the connector's
 * part, how it reads them included) has that digest in place of its update
 * time and values: it can then be compared before it is parsed.
 */
static void digest_of(const struct run *r, int s, const struct record *rec, unsigned char out[STATE_DIGEST])
{
	unsigned long long h[2];
	const char *country = r->cfg->default_country ? r->cfg->default_country : "";

	hash128_init(h);
	if (rec->has_raw)
		hash128_add(h, rec->raw, sizeof(rec->raw));
	else
		hash128_add(h, &rec->updated_ms, sizeof(rec->updated_ms));
	hash128_add(h, country, strlen(country) + 1);
	for (int f = 0; f < fields_count(); f++) {
		const char *v = rec->has_raw ? NULL : rec->value[f];
		unsigned char head[2] = { (unsigned char)((v ? 1 : 0) | (sys_carries(&r->sys[s], f) ? 2 : 0)),
					  (unsigned char)field_get(f)->kind };
		hash128_add(h, head, sizeof(head));
		if (v)
			hash128_add(h, v, strlen(v) + 1);
	}
	if (rec->has_raw)
		hash128_add(h, "raw", 4);
	hash128_out(h, out);
}

/* A linked record listed again as the last run that took it in read it
 * (the same digest) changed in nothing: it is not normalised, compared or
 * written again, which keeps a quiet minute and a converged full run
 * cheap. A full run still marks it seen (what it does not list becomes
 * missing) and its person for the merge (drift repair), and reads a record
 * whose listing leaves fields unsaid whole (complete), so that one goes the
 * long way. A record with a problem, marked missing or gone, or not linked
 * goes the long way too. 1: done; 0: go the long way; -1: failure. */
static int observe_unchanged(struct run *r, int s, const struct record *rec, const unsigned char *digest)
{
	const char *name = r->sys[s].conf->name;
	struct snapshot_quick q;

	if (rec->problem || (r->opt->full && completable(r, s, rec)))
		return 0;
	if (state_snapshot_quick(r->st, name, rec->remote_id, &q, &r->err))
		return -1;
	if (!q.found || !q.has_digest || !q.present || q.person == 0 || memcmp(q.digest, digest, STATE_DIGEST) != 0)
		return 0;
	/* A system without a listing is read record by record (the sweep, a
	 * lookup): the run that read it tells a later update of it that it
	 * need not be read again (write.c, known_recently). Such reads are few
	 * a run, unlike a listing's. */
	if ((r->opt->full || !r->sys[s].conf->listing) &&
	    state_snapshot_seen(r->st, name, rec->remote_id, rec->updated_ms, digest, r->id, &r->err))
		return -1;
	if (r->opt->full && state_person_dirty(r->st, q.person, true, &r->err))
		return -1;
	return 1;
}

static int listed_same(void *arg, const char *remote_id, const unsigned char *raw)
{
	struct observe_listing *l = arg;
	const struct system_run *sr = &l->r->sys[l->s];
	struct record rec;
	unsigned char digest[STATE_DIGEST];
	struct snapshot_quick q;
	struct df_err e = { 0 };

	/* A full run reads a partial listing's records whole (complete): those
	 * are parsed, and observe_unchanged decides. They are digested all the
	 * same, as every other run digests them. */
	if (l->r->opt->full && connector_has(sr->conn, CAP_LISTING_PARTIAL) && sr->conn->fetch != NULL)
		return -1;
	record_init(&rec);
	rec.has_raw = true;
	memcpy(rec.raw, raw, sizeof(rec.raw));
	digest_of(l->r, l->s, &rec, digest);
	/* A failure is not a comparison: the record is parsed, and observing
	 * it meets the failure again. */
	if (state_snapshot_quick(l->r->st, sr->conf->name, remote_id, &q, &e))
		return -1;
	return q.found && q.has_digest && q.present && q.person != 0 &&
	       memcmp(q.digest, digest, STATE_DIGEST) == 0;
}

void observe_listing(struct observe_listing *l, struct run *r, int s, struct connector_page *page)
{
	l->r = r;
	l->s = s;
	page->same = listed_same;
	page->same_arg = l;
}

int observe_record(struct run *r, int s, struct record *rec)
{
	const char *name = r->sys[s].conf->name, *why, *how;
	unsigned char digest[STATE_DIGEST];
	const unsigned char *listed;
	struct record old;
	long long person = 0;
	bool found, changed;
	int rc = -1;

	r->sys[s].counts.polled++;
	/* Found unchanged as its page was read (listed_same), and
	 * nothing since could change that: no other record of the page has its
	 * id (jsonmap.c). A full run marks it seen and its person dirty, below. */
	if (rec->listed_same && !r->opt->full)
		return 0;
	digest_of(r, s, rec, digest);
	/* A record read with a problem is looked at again each time. */
	listed = rec->problem ? NULL : digest;
	/* One the listing's check found changed is not compared again: no other
	 * record of its page has its id, so nothing since changed the state's
	 * side of that comparison. */
	switch (rec->listed_changed ? 0 : observe_unchanged(r, s, rec, digest)) {
	case -1: return -1;
	case 1: return 0;
	}
	if (rec->listed_same)
		/* Unparsed, and no longer what the state holds: only a change to
		 * the state within this page's reading can do that. */
		return df_fail(&r->err, DF_FAIL_TEMP, "%s: record %s changed in the state while its page was "
			       "read; the next run reads it again", name, rec->remote_id);
	record_init(&old);
	if (state_snapshot_get(r->st, name, rec->remote_id, &old, &found, &r->err) ||
	    state_link_get(r->st, name, rec->remote_id, &person, &r->err))
		goto out;
	complete(r, s, rec, &old, found);
	observe_fill(rec, &old);
	if ((why = observe_normalize(r, s, rec)) != NULL) {
		rc = quarantine(r, s, rec->remote_id, "malformed", why);
		goto out;
	}
	/* A malformed opt-out was read as opted out: the record goes on, and
	 * the admin sees it in the report until the system fixes the value. */
	if (rec->problem && quarantine(r, s, rec->remote_id, "malformed-optout", rec->problem))
		goto out;
	if (found && person) {
		if (record_changes(r, s, person, &old, rec, &changed) || (changed && own_echo(r, s, rec)))
			goto out;
		if (!changed) {
			/* A full run repairs drift: the person is merged and planned
			 * again, so every system that disagrees with the agreed value
			 * is written whatever its snapshot says. */
			rc = state_snapshot_seen(r->st, name, rec->remote_id, rec->updated_ms, listed, r->id,
						 &r->err) ||
			     (r->opt->full && state_person_dirty(r->st, person, true, &r->err)) ? -1 : 0;
			goto out;
		}
	} else {
		char msg[512], *held = NULL;
		if (state_hold_get(r->st, name, rec->remote_id, &held, &r->err))
			goto out;
		if (held != NULL && strcmp(held, "unlinked") == 0) {
			/* An admin unlinked it: only an admin links it again. Its
			 * snapshot stays current for that link. */
			free(held);
			rc = state_snapshot_put(r->st, name, rec, r->id, &r->err) || held_optouts(r, s, rec) ? -1 : 0;
			goto out;
		}
		free(held);
		if (link_record(r, s, rec, &person, &how, msg, sizeof(msg)))
			goto out;
		if (person == 0) {
			/* Held, with its snapshot (unlinked): its keys make others
			 * wait too, and an admin's link needs no new read. */
			rc = state_snapshot_put(r->st, name, rec, r->id, &r->err) ||
			     state_hold_put(r->st, name, rec->remote_id, "ambiguous", msg, r->id, &r->err) ||
			     held_optouts(r, s, rec) ||
			     quarantine(r, s, rec->remote_id, "ambiguous", msg) ? -1 : 0;
			goto out;
		}
		/* A first sight is not a change: its values are the snapshot
		 * written below and the link says when (no observed rows: a
		 * row per field of every record was a seventh of the state
		 * file, issue 9). */
		if (state_link_put(r->st, name, rec->remote_id, person, how, r->id, &r->err) ||
		    state_hold_drop(r->st, name, rec->remote_id, &r->err))
			goto out;
		log_info("event=link system=%s record=%s person=%lld how=%s", name, rec->remote_id, person, how);
	}
	r->sys[s].counts.changed++;
	rc = state_snapshot_put(r->st, name, rec, r->id, &r->err) ||
	     (listed && state_snapshot_digest(r->st, name, rec->remote_id, listed, &r->err)) ||
	     state_person_dirty(r->st, person, true, &r->err) ? -1 : 0;
out:
	record_clear(&old);
	return rc;
}
