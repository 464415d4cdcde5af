/*
 * events.c - calls and messages as they arrive from their source: stored
 * once (the source's id is the key, so a re-read within the lookback costs
 * nothing and delivers nothing twice), journalled for delivery to the
 * systems that take them, and read for opt-outs: an inbound text that IS a
 * stop keyword opts its number out of SMS in the registry (I4), and every
 * person with that number is merged again in the same run; an opt-in
 * keyword (START) lifts an SMS opt-out only where optouts.keyword_opt_in
 * allows it, and is otherwise logged as refused.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine.h"
#include "../core/normalize.h"
#include "../core/str.h"

/* The message as a keyword: white space and punctuation around it dropped,
 * runs of inner white space as one space. False when it is longer than any
 * keyword (so no keyword). */
static bool keyword_text(const char *body, char *out, size_t size)
{
	const char *b = body, *e;
	size_t n = 0;

	if (body == NULL)
		return false;
	while (*b && (isspace((unsigned char)*b) || ispunct((unsigned char)*b)))
		b++;
	e = b + strlen(b);
	while (e > b && (isspace((unsigned char)e[-1]) || ispunct((unsigned char)e[-1])))
		e--;
	for (const char *p = b; p < e; p++) {
		char c = isspace((unsigned char)*p) ? ' ' : *p;
		if (c == ' ' && n > 0 && out[n - 1] == ' ')
			continue;
		if (n + 1 >= size)
			return false;
		out[n++] = c;
	}
	out[n] = '\0';
	return n > 0;
}

static bool is_keyword(const char *body, const char *const *keywords)
{
	char text[32];

	if (!keyword_text(body, text, sizeof(text)))
		return false;
	/* The whole message, not a word in it: "don't stop" is no opt-out. */
	for (; *keywords; keywords++)
		if (strcasecmp(text, *keywords) == 0)
			return true;
	return false;
}

/* CTIA's opt-out keywords, and the FCC's (2024) "revoke" and "opt out". */
bool events_is_stop(const char *body)
{
	static const char *const keywords[] = {
		"STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE",
		"OPT-OUT", "OPTOUT", "OPT OUT", NULL,
	};

	return is_keyword(body, keywords);
}

/* CTIA's opt-in keywords. */
bool events_is_start(const char *body)
{
	static const char *const keywords[] = { "START", "UNSTOP", "YES", NULL };

	return is_keyword(body, keywords);
}

static int stop_keyword(struct run *r, int s, const char *phone, const char *source_id)
{
	long long persons[8];
	int n = 0;

	log_info("event=stop-keyword system=%s message=%s", r->sys[s].conf->name, source_id);
	if (state_optout_set(r->st, phone, "sms", true, r->sys[s].conf->name, "STOP keyword", r->id, &r->err) ||
	    state_match(r->st, "phone", phone, persons, 8, &n, &r->err))
		return -1;
	if (n == 0) {
		/* A number that is no contact yet: a person of that number alone
		 * carries the opt-out to the systems that keep opt-outs by phone
		 * (the texting register) in this run; it is never made a contact. */
		struct provenance p = { r->sys[s].conf->name, "stop-keyword", "number known only from a STOP", NULL };
		persons[n++] = state_person_new(r->st, r->id, &r->err);
		if (persons[0] < 0 || state_agreed_put(r->st, persons[0], "phone", phone, &p, r->id, &r->err))
			return -1;
	}
	for (int i = 0; i < n; i++)
		if (state_optout_log(r->st, r->id, phone, "sms", persons[i], "opt-out", r->sys[s].conf->name,
				     "inbound message is a stop keyword", &r->err) ||
		    state_person_dirty(r->st, persons[i], true, &r->err))
			return -1;
	return 0;
}

/* An opt-in keyword: allowed by optouts.keyword_opt_in against who recorded
 * the number's SMS opt-out, it is remembered for the merge of every person
 * with that number (which lifts the opt-out, updates the registry and logs
 * it); refused, it is logged and the opt-out stays. SMS only: calls and
 * e-mail opt-outs are not a text's to lift. */
static int start_keyword(struct run *r, int s, const char *phone, const char *source_id)
{
	const char *name = r->sys[s].conf->name;
	long long persons[8];
	bool out, allowed;
	char *source = NULL;
	int n = 0, rc;

	if (state_optout_get(r->st, phone, "sms", &out, &source, &r->err))
		return -1;
	if (!out) {
		free(source);
		return 0;
	}
	allowed = r->cfg->keyword_opt_in == KEYWORD_OPTIN_ANY ||
		  (r->cfg->keyword_opt_in == KEYWORD_OPTIN_SAME_SYSTEM && str_eq(source, name));
	log_info("event=start-keyword system=%s message=%s allowed=%s", name, source_id, allowed ? "yes" : "no");
	free(source);
	if (!allowed)
		return state_optout_log(r->st, r->id, phone, "sms", 0, "opt-in-refused", name,
					"inbound message is a start keyword, but optouts.keyword_opt_in does not "
					"let it lift this opt-out", &r->err);
	if (state_match(r->st, "phone", phone, persons, 8, &n, &r->err))
		return -1;
	if (n == 0)
		return state_optout_set(r->st, phone, "sms", false, name, "START keyword", r->id, &r->err) ||
		       state_optout_log(r->st, r->id, phone, "sms", 0, "opt-in", name,
					"inbound message is a start keyword", &r->err) ? -1 : 0;
	r->optins = xrealloc(r->optins, (size_t)(r->noptins + 1) * sizeof(*r->optins));
	r->optins[r->noptins++] = (struct keyword_optin){ xstrdup(phone), s };
	rc = 0;
	for (int i = 0; i < n && rc == 0; i++)
		rc = state_person_dirty(r->st, persons[i], true, &r->err);
	return rc;
}

int observe_event(struct run *r, int s, const struct event *ev)
{
	char *phone = ev->phone ? phone_to_e164(ev->phone, r->cfg->default_country) : NULL;
	char *payload = event_attrs_json(ev);
	long long id = 0;
	int rc = -1;

	r->sys[s].counts.polled++;
	if (state_event_add(r->st, ev->kind, r->sys[s].conf->name, ev->source_id, ev->contact_id, phone,
			    payload, ev->occurred_ms, r->id, &id, &r->err))
		goto out;
	rc = 0;
	if (id == 0)
		goto out;       /* seen before */
	r->sys[s].counts.changed++;
	for (int t = 0; t < r->nsys && rc == 0; t++)
		if (t != s && r->sys[t].conn->deliver != NULL)
			rc = state_delivery_add(r->st, id, r->sys[t].conf->name, r->id, &r->err);
	if (rc == 0 && strcmp(ev->kind, "message") == 0 && phone != NULL &&
	    str_eq(event_get(ev, "direction"), "inbound") && events_is_stop(event_get(ev, "body")))
		rc = stop_keyword(r, s, phone, ev->source_id);
	else if (rc == 0 && strcmp(ev->kind, "message") == 0 && phone != NULL &&
		 str_eq(event_get(ev, "direction"), "inbound") && events_is_start(event_get(ev, "body")))
		rc = start_keyword(r, s, phone, ev->source_id);
out:
	free(phone);
	free(payload);
	return rc;
}
