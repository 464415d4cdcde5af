/*
 * deliver.c - calls and messages to the systems that take them (GHL).
 *
 * A delivery waits until its contact is linked in the target: a call whose
 * Aloware contact is not linked yet is delivered by the run that links it.
 * The connector looks for an earlier delivery of the same event before
 * making one, so a crash between the target's write and our record of it
 * never makes a second note or message. A failed delivery is classified
 * like a write (write.c, I11): retried by later runs with backoff ('unknown'
 * when a POST got no answer: the next attempt finds what it made), kept
 * 'refused' with the target's answer, or left untouched while the target
 * is stopped for the run. It is never marked delivered before the target
 * confirmed it.
 */
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "../core/normalize.h"
#include "../core/str.h"

/* The person an event belongs to: a call by its source contact's link, a
 * message by its phone (one person only: an ambiguous number waits). */
static int event_person(struct run *r, const struct event_row *ev, long long *person)
{
	long long ids[2];
	int n = 0;

	*person = ev->person;
	if (*person)
		return 0;
	if (ev->source_contact != NULL)
		return state_link_get(r->st, ev->source, ev->source_contact, person, &r->err);
	if (ev->phone != NULL && state_match(r->st, "phone", ev->phone, ids, 2, &n, &r->err))
		return -1;
	*person = n == 1 ? ids[0] : 0;
	return 0;
}

static void to_event(const struct event_row *row, struct event *ev)
{
	event_init(ev);
	ev->kind = xstrdup(row->kind);
	ev->source_id = xstrdup(row->source_id);
	ev->contact_id = xstrdup(row->source_contact);
	ev->phone = xstrdup(row->phone);
	ev->occurred_ms = row->occurred_ms;
	event_attrs_from_json(ev, row->payload);
}

/* The target's record id for the delivery's event, NULL while it waits. */
static int target_of(struct run *r, struct delivery_item *it, long long *person, char **target_id)
{
	*target_id = NULL;
	if (event_person(r, &it->ev, person))
		return -1;
	return *person ? state_link_of(r->st, *person, it->target, target_id, &r->err) : 0;
}

/* A failed delivery, classified as a failed write is (write.c). */
static int delivery_failed(struct run *r, int t, const struct delivery_item *it, const struct df_err *e)
{
	bool final = it->attempts + 1 >= r->cfg->write_max_attempts;
	long long wait = (long long)r->cfg->write_backoff * 1000LL << (it->attempts < 16 ? it->attempts : 16);

	r->sys[t].failures[e->fail]++;
	if (e->fail == DF_FAIL_AUTH || e->fail == DF_FAIL_BUDGET) {
		if (e->fail == DF_FAIL_AUTH)
			engine_system_refused(r, t, e);
		else
			engine_note_problem(r, t, "delivering", e);
		r->writes_waiting++;
		log_warn("event=delivery-waits kind=%s id=%s target=%s reason=\"%s\"", it->ev.kind,
			 it->ev.source_id, it->target, e->msg);
		return 0;
	}
	r->writes_failed++;
	if (e->fail == DF_FAIL_REMOTE) {
		log_warn("event=delivery-refused kind=%s id=%s target=%s reason=\"%s\"", it->ev.kind,
			 it->ev.source_id, it->target, e->msg);
		return state_delivery_refused(r->st, it->id, e->msg, r->config_fp, &r->err);
	}
	log_warn(e->fail == DF_FAIL_UNKNOWN
		 ? "event=delivery-failed kind=%s id=%s target=%s final=%s outcome=unknown reason=\"%s\""
		 : "event=delivery-failed kind=%s id=%s target=%s final=%s reason=\"%s\"",
		 it->ev.kind, it->ev.source_id, it->target, final ? "yes" : "no", e->msg);
	return state_delivery_set(r->st, it->id, final ? "failed" : e->fail == DF_FAIL_UNKNOWN ? "unknown" : "pending",
				  true, time_now_ms() + wait, NULL, e->msg, r->id, &r->err);
}

static int deliver_one(struct run *r, long long id)
{
	struct delivery_item it;
	struct event ev;
	struct df_err e = { 0 };
	char *target_id = NULL, *made = NULL;
	long long person = 0;
	int t, rc = -1;

	event_init(&ev);
	if (state_delivery_load(r->st, id, &it, &r->err))
		return -1;
	t = run_system_index(r, it.target);
	if (t < 0 || r->sys[t].conn->deliver == NULL) {
		rc = state_delivery_set(r->st, id, "failed", false, 0, NULL, "target system is not configured",
					r->id, &r->err);
		goto out;
	}
	if (r->sys[t].poll_failed) {
		/* The target's poll failed or it refused our credentials this
		 * run: the delivery waits untouched (I11). */
		rc = 0;
		goto out;
	}
	if (target_of(r, &it, &person, &target_id) ||
	    (person && person != it.ev.person && state_event_person(r->st, it.ev.id, person, &r->err)))
		goto out;
	if (target_id == NULL) {
		rc = 0;         /* waits for its contact */
		goto out;
	}
	if (engine_quota_holds(r, t, false)) {
		rc = 0;         /* the next day's run delivers it */
		goto out;
	}
	to_event(&it.ev, &ev);
	if (ev.phone == NULL) {
		/* A call names its contact by id; the target wants the number. */
		struct record agreed;
		record_init(&agreed);
		if (state_agreed_get(r->st, person, &agreed, &r->err) == 0 && phone_is_e164(agreed.value[F_PHONE]))
			ev.phone = xstrdup(agreed.value[F_PHONE]);
		record_clear(&agreed);
	}
	if (r->sys[t].conn->deliver(r->sys[t].handle, target_id, &ev, &made, &e) == 0) {
		log_info("event=delivered kind=%s source=%s id=%s target=%s record=%s", it.ev.kind,
			 it.ev.source, it.ev.source_id, it.target, made ? made : "-");
		r->delivered++;
		rc = state_delivery_set(r->st, id, "done", true, 0, made, NULL, r->id, &r->err);
	} else {
		rc = delivery_failed(r, t, &it, &e);
	}
out:
	free(target_id);
	free(made);
	event_clear(&ev);
	delivery_item_clear(&it);
	return rc;
}

static int deliver_id(struct run *r, long long id, void *arg)
{
	(void)arg;
	return deliver_one(r, id);
}

int deliver_due(struct run *r)
{
	return engine_each_due(r, DUE_DELIVERIES, time_now_ms(), deliver_id, NULL);
}

int deliver_print(struct run *r, long long id, void *arg)
{
	struct delivery_item it;
	char *target_id = NULL;
	long long person = 0;
	int rc;

	if (state_delivery_load(r->st, id, &it, &r->err))
		return -1;
	rc = target_of(r, &it, &person, &target_id);
	if (rc == 0)
		fprintf(arg, "plan: deliver %s %s %s to %s %s\n", it.ev.source, it.ev.kind, it.ev.source_id,
			it.target, target_id ? target_id : "(waits for its contact)");
	free(target_id);
	delivery_item_clear(&it);
	return rc;
}
