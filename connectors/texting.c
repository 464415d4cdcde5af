/*
 * texting.c - the texting system (SMS). In production it is served by the
 * Verity platform, with its own endpoints and possibly its own base URL
 * and token. The contract is OURS (tests/sim/README.md): Verity's texting
 * API publishes no changed-since listing.
 *
 * For contacts the texting system is an opt-out register: its "records" are
 * phone numbers (the E.164 phone is the record id) with one opt-out flag
 * per channel, read from its opt-out events. An event states one channel;
 * the others stay unknown (NULL) and keep the snapshot's value. Writing an
 * opt-out is POST /api/v1/optouts; the API has no way to opt a number back
 * in, so such a write is refused here and reported.
 */
#include <stdlib.h>
#include <string.h>

#include "jsonmap.h"
#include "../core/str.h"

/* An opt-out event as a record of its phone: {phone, optout_<channel>}. */
static int event_parse(void *self, json_object *o, struct record *r, struct df_err *err)
{
	char *phone = NULL, *channel = NULL, *type = NULL;
	int f = -1, rc = -1;

	(void)self;
	if (jm_get_string(o, "phone", &phone, err) || jm_get_string(o, "channel", &channel, err) ||
	    jm_get_string(o, "type", &type, err) || jm_read_time(o, "createdAt", r, err))
		goto out;
	for (int c = F_OPTOUT_SMS; c <= F_OPTOUT_EMAIL; c++)
		if (channel && strcmp(channel, optout_channel(c)) == 0)
			f = c;
	if (str_blank(phone) || f < 0 || type == NULL || (strcmp(type, "optout") && strcmp(type, "optin"))) {
		df_fail(err, DF_FAIL_INPUT, "opt-out event needs phone, channel sms|call|email and type optout|optin");
		goto out;
	}
	r->remote_id = xstrdup(phone);
	record_take(r, F_PHONE, phone);
	phone = NULL;
	record_set(r, f, strcmp(type, "optout") == 0 ? "true" : "false");
	rc = 0;
out:
	free(phone);
	free(channel);
	free(type);
	return rc;
}

static int texting_poll_contacts(void *self, long long since_ms, char **cursor,
				 struct connector_page *page, struct df_err *err)
{
	static const struct jm_listing events = {
		"/api/v1/optouts/events", "events", "nextCursor", false, event_parse, NULL, NULL,
	};

	return jm_list_page(self, &events, since_ms, cursor, page, err);
}

static int texting_lookup(void *self, const struct record *want, struct record *found,
			  struct df_err *err)
{
	struct conn *t = self;
	struct http_response resp;
	struct strbuf url;
	json_object *o, *channels = NULL;
	int rc;

	if (str_blank(want->value[F_PHONE]))
		return 0;
	sb_init(&url);
	sb_add(&url, "/api/v1/optouts?phone=");
	http_query_escape(&url, want->value[F_PHONE]);
	rc = http_request(t->http, "GET", url.buf, NULL, NULL, &resp, err);
	sb_free(&url);
	o = rc ? NULL : jm_parse(&resp, t->sc->name, err);
	http_response_free(&resp);
	if (o == NULL)
		return -1;
	json_object_object_get_ex(o, "channels", &channels);
	record_set(found, F_PHONE, want->value[F_PHONE]);
	bool any = false;
	for (int f = F_OPTOUT_SMS; f <= F_OPTOUT_EMAIL && rc == 0; f++) {
		rc = jm_read_flag(channels, "channels", optout_channel(f), found, f, err);
		any |= str_eq(found->value[f], "true");
	}
	/* The register knows every number; it holds a record only of those
	 * with an opt-out. */
	if (any)
		found->remote_id = xstrdup(want->value[F_PHONE]);
	json_object_put(o);
	return rc;
}

static int post_optout(struct conn *t, const char *phone, int f, struct df_err *err)
{
	json_object *body = json_object_new_object();
	struct http_response resp;
	char *text;
	int rc;

	json_object_object_add(body, "phone", json_object_new_string(phone));
	json_object_object_add(body, "channel", json_object_new_string(optout_channel(f)));
	json_object_object_add(body, "source", json_object_new_string("api"));
	text = jm_to_string(body);
	json_object_put(body);
	rc = http_request(t->http, "POST", "/api/v1/optouts", text, NULL, &resp, err);
	free(text);
	http_response_free(&resp);
	return rc;
}

static int texting_update(void *self, const struct record *current, const struct field_change *ch,
			  int nch, struct record *updated, struct df_err *err)
{
	struct conn *t = self;

	(void)updated;
	for (int i = 0; i < nch; i++) {
		if (!field_is_optout(ch[i].field))
			continue;
		if (!str_eq(ch[i].new_value, "true"))
			return df_fail(err, DF_FAIL_REMOTE, "%s: its API cannot opt %s back in (%s)",
				       t->sc->name, current->remote_id, optout_channel(ch[i].field));
		if (post_optout(t, current->remote_id, ch[i].field, err))
			return -1;
	}
	return 0;
}

static int texting_create(void *self, const struct record *rec, struct record *created,
			  bool *existed, struct df_err *err)
{
	struct conn *t = self;

	(void)existed;
	for (int f = F_OPTOUT_SMS; f <= F_OPTOUT_EMAIL; f++)
		if (str_eq(rec->value[f], "true") && post_optout(t, rec->value[F_PHONE], f, err))
			return -1;
	return texting_lookup(t, rec, created, err);
}

/* A text message as an event of the contact's phone: the sender of an
 * inbound message, the recipient of an outbound one. */
static int message_parse(void *self, json_object *o, struct event *ev, struct df_err *err)
{
	struct record tmp;
	const char *dir, *phone;
	int rc;

	(void)self;
	record_init(&tmp);
	rc = jm_read_id(o, "id", &tmp, err) || jm_read_time(o, "updatedAt", &tmp, err) ? -1 : 0;
	ev->kind = xstrdup("message");
	ev->source_id = tmp.remote_id;
	ev->updated_ms = tmp.updated_ms;
	tmp.remote_id = NULL;
	if (rc == 0 && jm_read_time(o, "createdAt", &tmp, err))
		rc = -1;
	ev->occurred_ms = tmp.updated_ms;
	record_clear(&tmp);
	if (rc || jm_event_attr(o, "direction", ev, "direction", err) ||
	    jm_event_attr(o, "from", ev, "from", err) || jm_event_attr(o, "to", ev, "to", err) ||
	    jm_event_attr(o, "body", ev, "body", err) || jm_event_attr(o, "status", ev, "status", err) ||
	    jm_event_attr(o, "conversationId", ev, "conversation_id", err))
		return -1;
	dir = event_get(ev, "direction");
	if (!str_eq(dir, "inbound") && !str_eq(dir, "outbound"))
		return df_fail(err, DF_FAIL_INPUT, "message direction is neither inbound nor outbound");
	phone = event_get(ev, str_eq(dir, "inbound") ? "from" : "to");
	if (str_blank(phone))
		return df_fail(err, DF_FAIL_INPUT, "message has no contact phone");
	ev->phone = xstrdup(phone);
	return 0;
}

static int texting_poll_events(void *self, const char *stream, long long since_ms, char **cursor,
			       struct connector_page *page, struct df_err *err)
{
	if (strcmp(stream, "messages") != 0)
		return df_fail(err, DF_FAIL_REMOTE, "texting has no %s stream", stream);
	static const struct jm_listing messages = {
		"/api/v1/messages", "messages", "nextCursor", false, NULL, message_parse, NULL,
	};

	return jm_list_page(self, &messages, since_ms, cursor, page, err);
}

static int texting_fetch(void *self, const struct record *current, struct record *out, bool *gone,
			 struct df_err *err)
{
	*gone = false;
	if (texting_lookup(self, current, out, err))
		return -1;
	/* A number without opt-outs is still the same register entry. */
	if (out->remote_id == NULL)
		out->remote_id = xstrdup(current->remote_id);
	return 0;
}

static const char *const texting_streams[] = { "messages", NULL };

static const struct system_kind texting_kind = {
	.name = "texting",
	.max_page_size = 500,
	.default_rate_limit = 100,
};

const struct connector texting_connector = {
	.name = "texting",
	.kind = &texting_kind,
	.caps = CAP_OPTOUTS_ONLY | CAP_OPTOUTS_ONE_WAY,
	.fields = FIELD_BIT(F_PHONE) | OPTOUT_FIELDS,
	.writable = OPTOUT_FIELDS,
	.required_for_create = F_PHONE,
	.open = jm_open_bearer,
	.close = jm_close,
	.poll_contacts = texting_poll_contacts,
	.lookup = texting_lookup,
	.create = texting_create,
	.update = texting_update,
	.requests = jm_requests,
	.streams = texting_streams,
	.poll_events = texting_poll_events,
	.fetch = texting_fetch,
};
