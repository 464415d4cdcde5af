/*
 * aloware.c - Aloware power dialer (contacts).
 *
 * Aloware's public API is webhook-shaped: a lookup by phone, and one "forms"
 * endpoint that creates a contact or, with force_update, updates the one
 * holding the given phone number. The token travels in the query string
 * (GET) or the JSON body (POST), so no URL of this connector may reach a log
 * (the HTTP layer logs paths without queries).
 *
 * Consequences the engine must know through the tables below: a contact is
 * keyed by its phone, so the phone cannot be changed through the API (not
 * writable) and a contact cannot be created without a valid phone. DNC
 * (is_dnc) is read as an opt-out of calls and texts but cannot be written:
 * Aloware manages DNC in its UI only, so the engine reports every contact
 * it could not opt out there. The
 * create answer carries no id, so a create is followed by the lookup by
 * phone; the same lookup before every create makes creates idempotent.
 *
 * Aloware publishes no changed-since listing. GET /api/v1/contacts and
 * /api/v1/calls with updated_since / limit / cursor are OUR contract
 * (tests/sim/README.md), for a relay that serves it: off unless the
 * configuration turns listing/events on. Without them the sweep re-reads
 * linked contacts by phone.
 *
 * Call lists use documented endpoints only: the Lead API adds a contact to
 * a user's Power Dialer (add_to_powerdialer + user_id) or gives it a tag
 * (tag_id); powerdialer-remove-contact-from-lists removes it from every
 * list at once. Aloware documents no endpoint that adds to a list by id,
 * reads list memberships or removes a tag.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonmap.h"
#include "../core/str.h"

static const struct field_key aloware_map[] = {
	{ F_FIRST_NAME, "first_name" }, { F_LAST_NAME, "last_name" },
	{ F_PHONE, "phone_number" }, { F_EMAIL, "email" }, { F_ADDRESS1, "address" },
	{ F_CITY, "city" }, { F_STATE, "state" }, { F_POSTAL_CODE, "zipcode" },
	{ F_COUNTRY, "country" }, { F_TIMEZONE, "timezone" }, { 0, NULL },
};

static int aloware_parse(void *self, json_object *o, struct record *r, struct df_err *err)
{
	struct conn *a = self;

	if (jm_read_id(o, "id", r, err) || jm_read_time(o, "updated_at", r, err) ||
	    jm_read_fields(o, aloware_map, r, err) || jm_read_flag(o, NULL, "is_dnc", r, F_OPTOUT_CALL, err))
		return -1;
	/* A dialer's DNC stops calls and texts alike. */
	record_set(r, F_OPTOUT_SMS, r->value[F_OPTOUT_CALL]);
	for (int f = F_NBUILTIN; f < fields_count(); f++) {
		char *v;
		if (a->sc->field_key[f] == NULL)
			continue;
		if (jm_get_string(o, a->sc->field_key[f], &v, err))
			return -1;
		record_take(r, f, v ? v : xstrdup(""));
	}
	return 0;
}

/* GET path?api_token=...&rest, the token escaped into the query. */
static int get_with_token(struct conn *a, const char *path, const char *rest,
			  struct http_response *resp, struct df_err *err)
{
	struct strbuf url;
	int rc;

	sb_init(&url);
	sb_addf(&url, "%s?api_token=", path);
	http_query_escape(&url, a->sc->token);
	sb_add(&url, rest);
	rc = http_request(a->http, "GET", url.buf, NULL, NULL, resp, err);
	explicit_bzero(url.buf, url.len);
	sb_free(&url);
	return rc;
}

static int aloware_poll_contacts(void *self, long long since_ms, char **cursor,
				 struct connector_page *page, struct df_err *err)
{
	static const struct jm_listing contacts = {
		"/api/v1/contacts", "data", "next_cursor", true, aloware_parse, NULL, "updated_at",
	};

	return jm_list_page(self, &contacts, since_ms, cursor, page, err);
}

static int aloware_lookup(void *self, const struct record *want, struct record *found,
			  struct df_err *err)
{
	struct conn *a = self;
	struct http_response resp;
	struct strbuf rest;
	json_object *o;
	int rc;

	if (str_blank(want->value[F_PHONE]))
		return 0;
	sb_init(&rest);
	sb_add(&rest, "&phone_number=");
	http_query_escape(&rest, want->value[F_PHONE]);
	rc = get_with_token(a, "/api/v1/webhook/contact/phone-number", rest.buf, &resp, err);
	sb_free(&rest);
	if (rc && resp.status == 404) {
		http_response_free(&resp);
		df_err_clear(err);
		return 0;
	}
	if (rc == 0 && (o = jm_parse(&resp, a->sc->name, err)) != NULL) {
		rc = aloware_parse(a, o, found, err);
		json_object_put(o);
	} else {
		rc = -1;
	}
	http_response_free(&resp);
	return rc;
}

/* POST /webhook/forms with the given fields; phone is the key. */
static int post_form(struct conn *a, const char *phone, const struct field_change *ch, int nch,
		     bool force_update, struct df_err *err)
{
	json_object *body = json_object_new_object();
	struct http_response resp;
	char *text;
	int rc;

	json_object_object_add(body, "api_token", json_object_new_string(a->sc->token));
	json_object_object_add(body, "phone_number", json_object_new_string(phone));
	for (int i = 0; i < nch; i++) {
		int f = ch[i].field;
		const char *key = f >= F_NBUILTIN ? a->sc->field_key[f] : jm_key(aloware_map, f);
		if (key != NULL && f != F_PHONE)
			jm_put(body, key, ch[i].new_value, false);
	}
	json_object_object_add(body, "force_update", json_object_new_boolean(force_update));
	text = jm_to_string(body);
	json_object_put(body);
	rc = http_request(a->http, "POST", "/api/v1/webhook/forms", text, NULL, &resp, err);
	explicit_bzero(text, strlen(text));
	free(text);
	http_response_free(&resp);
	return rc;
}

static int aloware_create(void *self, const struct record *rec, struct record *created,
			  bool *existed, struct df_err *err)
{
	struct conn *a = self;
	struct field_change ch[DF_MAX_FIELDS];
	int n = 0;

	(void)existed;
	if (str_blank(rec->value[F_PHONE]))
		return df_fail(err, DF_FAIL_REMOTE, "%s: a contact needs a phone number", a->sc->name);
	for (int f = 0; f < fields_count(); f++)
		if (rec->value[f] != NULL)
			ch[n++] = (struct field_change){ f, NULL, rec->value[f] };
	if (post_form(a, rec->value[F_PHONE], ch, n, false, err))
		return -1;
	if (aloware_lookup(a, rec, created, err))
		return -1;
	if (created->remote_id == NULL)
		return df_fail(err, DF_FAIL_TEMP, "%s: created contact is not found by its phone yet",
			       a->sc->name);
	return 0;
}

static int aloware_update(void *self, const struct record *current, const struct field_change *ch,
			  int nch, struct record *updated, struct df_err *err)
{
	struct conn *a = self;

	(void)updated;
	if (str_blank(current->value[F_PHONE]))
		return df_fail(err, DF_FAIL_REMOTE, "%s: contact %s has no phone to address it by",
			       a->sc->name, current->remote_id);
	return post_form(a, current->value[F_PHONE], ch, nch, true, err);
}

/* An Aloware call as an event for the contact it belongs to. */
static int call_parse(void *self, json_object *o, struct event *ev, struct df_err *err)
{
	struct record tmp;
	json_object *cid;
	int rc;

	(void)self;
	record_init(&tmp);
	rc = jm_read_id(o, "id", &tmp, err) || jm_read_time(o, "updated_at", &tmp, err) ? -1 : 0;
	ev->kind = xstrdup("call");
	ev->source_id = tmp.remote_id;
	ev->updated_ms = tmp.updated_ms;
	tmp.remote_id = NULL;
	if (rc == 0 && jm_read_time(o, "created_at", &tmp, err))
		rc = -1;
	ev->occurred_ms = tmp.updated_ms;
	record_clear(&tmp);
	if (rc)
		return -1;
	if (!json_object_object_get_ex(o, "contact_id", &cid) || cid == NULL)
		return df_fail(err, DF_FAIL_INPUT, "call has no contact_id");
	if (jm_id_text(cid, "contact_id", &ev->contact_id, err))
		return -1;
	return jm_event_attr(o, "direction", ev, "direction", err) ||
	       jm_event_attr(o, "type", ev, "type", err) ||
	       jm_event_attr(o, "disposition", ev, "disposition", err) ||
	       jm_event_attr(o, "status", ev, "status", err) ||
	       jm_event_attr(o, "duration", ev, "duration", err) ||
	       jm_event_attr(o, "talk_time", ev, "talk_time", err) ||
	       jm_event_attr(o, "ended_at", ev, "ended_at", err) ||
	       jm_event_attr(o, "recording_url", ev, "recording_url", err) ? -1 : 0;
}

static int aloware_poll_events(void *self, const char *stream, long long since_ms, char **cursor,
			       struct connector_page *page, struct df_err *err)
{
	if (strcmp(stream, "calls") != 0)
		return df_fail(err, DF_FAIL_REMOTE, "aloware has no %s stream", stream);
	static const struct jm_listing calls = {
		"/api/v1/calls", "data", "next_cursor", true, NULL, call_parse, NULL,
	};

	return jm_list_page(self, &calls, since_ms, cursor, page, err);
}

/* POST a power-dialer webhook with the token in the body. */
static int post_webhook(struct conn *a, const char *path, json_object *body, struct df_err *err)
{
	struct http_response resp;
	char *text;
	int rc;

	json_object_object_add(body, "api_token", json_object_new_string(a->sc->token));
	text = jm_to_string(body);
	json_object_put(body);
	rc = http_request(a->http, "POST", path, text, NULL, &resp, err);
	explicit_bzero(text, strlen(text));
	free(text);
	http_response_free(&resp);
	return rc;
}

static bool is_tag(const char *target)
{
	return strncmp(target, "tag:", 4) == 0;
}

/* The Lead API with the phone and one action, Aloware's only documented way
 * to put a contact in a Power Dialer: add_to_powerdialer with the list
 * owner's user_id, or tag_id for an Aloware tag. force_update makes the
 * form act on the existing contact; no contact field is sent, so none
 * changes. */
static int form_action(struct conn *a, const struct record *contact, const char *target,
		       struct df_err *err)
{
	json_object *body;

	if (str_blank(contact->value[F_PHONE]))
		return df_fail(err, DF_FAIL_REMOTE, "%s: contact %s has no phone to address it by",
			       a->sc->name, contact->remote_id);
	body = json_object_new_object();
	json_object_object_add(body, "phone_number", json_object_new_string(contact->value[F_PHONE]));
	json_object_object_add(body, "force_update", json_object_new_boolean(true));
	if (is_tag(target)) {
		json_object_object_add(body, "tag_id", json_object_new_string(target + 4));
	} else {
		json_object_object_add(body, "add_to_powerdialer", json_object_new_boolean(true));
		json_object_object_add(body, "user_id", json_object_new_string(target));
		json_object_object_add(body, "powerdialer_position", json_object_new_string("bottom"));
	}
	return post_webhook(a, "/api/v1/webhook/forms", body, err);
}

/* Aloware removes a contact from every Power Dialer list at once and
 * documents no way to take a tag off: a removal from user lists is a
 * remove-from-all followed by the Lead API for each user list still
 * wanted; a tag to remove stays, and the note says so. */
static int aloware_list_change(void *self, const struct record *contact, const char *const *lists,
			       int nlists, bool add, const char *const *keep, int nkeep, char **note,
			       struct df_err *err)
{
	struct conn *a = self;
	struct strbuf tags, kept, msg;
	bool users = false;
	int rc = 0;

	*note = NULL;
	if (add)
		return form_action(a, contact, lists[0], err);
	sb_init(&tags);
	sb_init(&kept);
	sb_init(&msg);
	for (int i = 0; i < nlists; i++) {
		if (is_tag(lists[i]))
			sb_addf(&tags, "%s%s", tags.len ? ", " : "", lists[i] + 4);
		else
			users = true;
	}
	if (users) {
		json_object *body = json_object_new_object();
		json_object_object_add(body, "contact_id",
				       json_object_new_int64(strtoll(contact->remote_id, NULL, 10)));
		rc = post_webhook(a, "/api/v1/webhook/powerdialer-remove-contact-from-lists", body, err);
		for (int i = 0; i < nkeep && rc == 0; i++) {
			if (is_tag(keep[i]))
				continue;
			rc = form_action(a, contact, keep[i], err);
			sb_addf(&kept, "%s%s", kept.len ? ", " : "", keep[i]);
		}
		if (rc == 0 && kept.len)
			sb_addf(&msg, "Aloware removes a contact from every Power Dialer list at once: removed "
				"from all, then re-added at the bottom to the lists of users [%s] its tags still "
				"call for; lists set in Aloware by hand cannot be restored", kept.buf);
		else if (rc == 0)
			sb_addf(&msg, "Aloware removes a contact from every Power Dialer list at once: removed "
				"from all, lists set in Aloware by hand included (they cannot be restored)");
	}
	if (rc == 0 && tags.len)
		sb_addf(&msg, "%sAloware's API cannot take a tag off a contact (the Lead API only adds "
			"tags): tag_id [%s] left on the contact, remove it in Aloware", msg.len ? "; " : "",
			tags.buf);
	if (rc == 0 && msg.len)
		*note = xstrdup(msg.buf);
	sb_free(&tags);
	sb_free(&kept);
	sb_free(&msg);
	return rc;
}

/* Aloware finds contacts by phone only. */
static int aloware_fetch(void *self, const struct record *current, struct record *out, bool *gone,
			 struct df_err *err)
{
	*gone = false;
	if (str_blank(current->value[F_PHONE]))
		return df_fail(err, DF_FAIL_REMOTE, "aloware contact %s has no phone to look it up by",
			       current->remote_id);
	if (aloware_lookup(self, current, out, err))
		return -1;
	/* Not found by its phone proves nothing: the phone may have changed in
	 * Aloware. Say so instead of taking the contact for deleted. */
	if (out->remote_id == NULL || strcmp(out->remote_id, current->remote_id) != 0)
		return df_fail(err, DF_FAIL_REMOTE, "aloware contact %s is no longer found by its phone %s "
			       "(changed or deleted in Aloware)", current->remote_id, current->value[F_PHONE]);
	return 0;
}

static const char *const aloware_streams[] = { "calls", NULL };

/* A call_lists rule's target. Aloware documents no endpoint that adds a
 * contact to a list by its id; the Lead API adds it to the Power Dialer of
 * a user (add_to_powerdialer with user_id) or gives it an Aloware tag
 * (tag_id). The target is kept as the user id, or "tag:" and the tag id. */
static const char *const aloware_list_keys[] = { "user_id", "tag_id", "list_id", NULL };

static int aloware_list_target(const char *const *v, char **target, int *at, char *why, size_t n)
{
	const char *user = v[0], *tag = v[1], *which;

	if (v[2] != NULL) {
		*at = 2;
		snprintf(why, n, "is not supported: Aloware has no documented endpoint that adds a contact "
			 "to a list by id; name the list's owner with user_id (its Power Dialer) or an "
			 "Aloware tag with tag_id");
		return -1;
	}
	if ((user != NULL) == (tag != NULL)) {
		*at = -1;
		snprintf(why, n, "needs exactly one of user_id or tag_id");
		return -1;
	}
	which = user ? user : tag;
	if (which[0] == '\0' || strspn(which, "0123456789") != strlen(which)) {
		*at = user ? 0 : 1;
		snprintf(why, n, "must be a number");
		return -1;
	}
	*target = user ? xstrdup(user) : xasprintf("tag:%s", tag);
	return 0;
}

static const struct system_kind aloware_kind = {
	.name = "aloware",
	.max_page_size = 500,
	.default_rate_limit = 50,
	.listing_ours = true,
	.list_keys = aloware_list_keys,
	.list_target = aloware_list_target,
};

const struct connector aloware_connector = {
	.name = "aloware",
	.kind = &aloware_kind,
	.caps = CAP_LISTS_REMOVE_ALL,
	.fields = CONTACT_FIELDS | FIELD_BIT(F_OPTOUT_SMS) | FIELD_BIT(F_OPTOUT_CALL),
	.writable = CONTACT_FIELDS & ~FIELD_BIT(F_PHONE),
	.required_for_create = F_PHONE,
	.open = jm_open_plain,
	.close = jm_close,
	.poll_contacts = aloware_poll_contacts,
	.lookup = aloware_lookup,
	.create = aloware_create,
	.update = aloware_update,
	.requests = jm_requests,
	.streams = aloware_streams,
	.poll_events = aloware_poll_events,
	.list_change = aloware_list_change,
	.fetch = aloware_fetch,
};
