/*
 * verity.c - Verity, the capital-management platform (investor contacts).
 *
 * Verity publishes no contacts API; the contract used here is OURS and is
 * documented in tests/sim/README.md: a changed-since listing keyed by
 * (updatedAt, id) with an opaque cursor, lookup by phone or email, create
 * (409 names the existing record) and PATCH of the changed fields only.
 *
 * The create is idempotent by natural key (CAP_CREATE_BY_KEY): a POST
 * whose phone or email a contact already holds creates nothing and answers
 * 409 with that contact's id, which is then read. So a create is one POST
 * and no lookup, even when it repeats one whose answer was lost: the
 * repeat finds what the first made.
 */
#include <stdlib.h>
#include <string.h>

#include "jsonmap.h"
#include "../core/str.h"

static const struct field_key verity_map[] = {
	{ F_FIRST_NAME, "firstName" }, { F_LAST_NAME, "lastName" },
	{ F_PHONE, "phoneE164" }, { F_EMAIL, "email" }, { F_ADDRESS1, "address1" },
	{ F_CITY, "city" }, { F_STATE, "state" }, { F_POSTAL_CODE, "postalCode" },
	{ F_COUNTRY, "country" }, { F_TIMEZONE, "timezone" }, { 0, NULL },
};

static int verity_parse(void *self, json_object *o, struct record *r, struct df_err *err)
{
	struct conn *v = self;
	json_object *custom = NULL, *optouts = NULL, *legacy = NULL;

	if (jm_read_id(o, "id", r, err) || jm_read_time(o, "updatedAt", r, err) ||
	    jm_read_fields(o, verity_map, r, err) || jm_read_set(o, "tags", r, F_TAGS, err))
		return -1;
	json_object_object_get_ex(o, "optOuts", &optouts);
	if (optouts != NULL && !json_object_is_type(optouts, json_type_object)) {
		/* The safe direction (I4): opt-outs we cannot read hold. */
		for (int f = F_OPTOUT_SMS; f <= F_OPTOUT_EMAIL; f++)
			record_set(r, f, "true");
		record_problem(r, "field optOuts is not an object: read as opted out on every channel "
			       "until it is fixed");
		optouts = NULL;
	}
	for (int f = F_OPTOUT_SMS; f <= F_OPTOUT_EMAIL; f++)
		if (jm_read_flag(optouts, "optOuts", optout_channel(f), r, f, err))
			return -1;
	/* The older optedOut flag still counts: set, it opts the contact out
	 * of every channel whatever optOuts says (I4); unreadable, likewise. */
	json_object_object_get_ex(o, "optedOut", &legacy);
	if (legacy != NULL && (!json_object_is_type(legacy, json_type_boolean) ||
			       json_object_get_boolean(legacy))) {
		for (int f = F_OPTOUT_SMS; f <= F_OPTOUT_EMAIL; f++)
			record_set(r, f, "true");
		if (!json_object_is_type(legacy, json_type_boolean))
			record_problem(r, "field optedOut is not a boolean: read as opted out on every "
				       "channel until it is fixed");
	}
	json_object_object_get_ex(o, "customFields", &custom);
	if (custom != NULL && !json_object_is_type(custom, json_type_object))
		return df_fail(err, DF_FAIL_INPUT, "customFields is not an object");
	for (int f = F_NBUILTIN; f < fields_count(); f++) {
		char *val = NULL;
		if (v->sc->field_key[f] == NULL)
			continue;
		if (custom != NULL && jm_get_string(custom, v->sc->field_key[f], &val, err))
			return -1;
		record_take(r, f, val ? val : xstrdup(""));
	}
	return 0;
}

static int read_contact(struct conn *v, struct http_response *resp, struct record *out,
			struct df_err *err)
{
	json_object *o = jm_parse(resp, v->sc->name, err), *c;
	int rc;

	if (o == NULL)
		return -1;
	if (!json_object_object_get_ex(o, "contact", &c) || !json_object_is_type(c, json_type_object))
		rc = df_fail(err, DF_FAIL_TEMP, "%s: answer has no contact object", v->sc->name);
	else
		rc = verity_parse(v, c, out, err);
	json_object_put(o);
	return rc;
}

static int verity_poll_contacts(void *self, long long since_ms, char **cursor,
				struct connector_page *page, struct df_err *err)
{
	static const struct jm_listing contacts = {
		"/api/v1/contacts", "contacts", "nextCursor", false, verity_parse, NULL, "updatedAt",
	};

	return jm_list_page(self, &contacts, since_ms, cursor, page, err);
}

static int verity_lookup(void *self, const struct record *want, struct record *found,
			 struct df_err *err)
{
	struct conn *v = self;
	struct http_response resp;
	struct strbuf path;
	json_object *o, *arr;
	int rc;

	if (str_blank(want->value[F_PHONE]) && str_blank(want->value[F_EMAIL]))
		return 0;
	sb_init(&path);
	sb_add(&path, "/api/v1/contacts/lookup?phone=");
	http_query_escape(&path, want->value[F_PHONE]);
	sb_add(&path, "&email=");
	http_query_escape(&path, want->value[F_EMAIL]);
	rc = http_request(v->http, "GET", path.buf, NULL, NULL, &resp, err);
	sb_free(&path);
	o = rc ? NULL : jm_parse(&resp, v->sc->name, err);
	http_response_free(&resp);
	if (o == NULL)
		return -1;
	rc = 0;
	/* Phone first, as in linking: the first match is the one. */
	if (json_object_object_get_ex(o, "contacts", &arr) && json_object_is_type(arr, json_type_array) &&
	    json_object_array_length(arr) > 0)
		rc = verity_parse(v, json_object_array_get_idx(arr, 0), found, err);
	json_object_put(o);
	return rc;
}

/* current: the snapshot of an update, NULL for a create. */
static json_object *contact_body(struct conn *v, const struct record *current,
				 const struct field_change *ch, int nch)
{
	json_object *body = json_object_new_object(), *custom = json_object_new_object();
	json_object *optouts = json_object_new_object();
	bool opt_in = false;

	for (int i = 0; i < nch; i++) {
		int f = ch[i].field;
		if (field_is_optout(f)) {
			json_object_object_add(optouts, optout_channel(f),
					       json_object_new_boolean(str_eq(ch[i].new_value, "true")));
			opt_in |= !str_eq(ch[i].new_value, "true");
		}
		else if (f == F_TAGS)
			json_object_object_add(body, "tags", jm_set_array(ch[i].new_value));
		else if (f >= F_NBUILTIN)
			jm_put(custom, v->sc->field_key[f], ch[i].new_value, true);
		else
			jm_put(body, jm_key(verity_map, f), ch[i].new_value, true);
	}
	if (json_object_object_length(custom) > 0)
		json_object_object_add(body, "customFields", custom);
	else
		json_object_put(custom);
	/* An opt-in written to a contact whose legacy optedOut may hold every
	 * channel: that flag is cleared and each channel said explicitly, the
	 * ones not changed as we last read them, so no other opt-out is lost. */
	if (opt_in && current != NULL) {
		for (int f = F_OPTOUT_SMS; f <= F_OPTOUT_EMAIL; f++)
			if (!json_object_object_get_ex(optouts, optout_channel(f), NULL))
				json_object_object_add(optouts, optout_channel(f),
						       json_object_new_boolean(str_eq(current->value[f], "true")));
		json_object_object_add(body, "optedOut", json_object_new_boolean(false));
	}
	if (json_object_object_length(optouts) > 0)
		json_object_object_add(body, "optOuts", optouts);
	else
		json_object_put(optouts);
	return body;
}

/* *existed (may be NULL) is set when the answer is a 409 naming the
 * contact that holds the key, read into out. */
static int send_contact(struct conn *v, const char *method, const char *path,
			json_object *body, struct record *out, bool *existed, struct df_err *err)
{
	struct http_response resp;
	char *text = jm_to_string(body);
	json_object *o, *id;
	int rc;

	rc = http_request(v->http, method, path, text, NULL, &resp, err);
	free(text);
	if (rc == 0) {
		rc = read_contact(v, &resp, out, err);
	} else if (resp.status == 409 && (o = jm_parse_text(resp.body, resp.len)) != NULL) {
		/* Someone (or our own earlier, unrecorded create) holds the key. */
		if (json_object_object_get_ex(o, "existingId", &id) && json_object_is_type(id, json_type_string)) {
			char *get = http_path("/api/v1/contacts/", json_object_get_string(id), NULL);
			http_response_free(&resp);
			rc = http_request(v->http, "GET", get, NULL, NULL, &resp, err);
			if (rc == 0)
				rc = read_contact(v, &resp, out, err);
			if (rc == 0 && existed != NULL)
				*existed = true;
			free(get);
		}
		json_object_put(o);
	}
	http_response_free(&resp);
	return rc;
}

static int verity_create(void *self, const struct record *rec, struct record *created,
			 bool *existed, struct df_err *err)
{
	struct conn *v = self;
	struct field_change ch[DF_MAX_FIELDS];
	json_object *body;
	int n = 0, rc;

	for (int f = 0; f < fields_count(); f++)
		if (rec->value[f] != NULL)
			ch[n++] = (struct field_change){ f, NULL, rec->value[f] };
	body = contact_body(v, NULL, ch, n);
	rc = send_contact(v, "POST", "/api/v1/contacts", body, created, existed, err);
	json_object_put(body);
	return rc;
}

static int verity_update(void *self, const struct record *current, const struct field_change *ch,
			 int nch, struct record *updated, struct df_err *err)
{
	struct conn *v = self;
	json_object *body = contact_body(v, current, ch, nch);
	char *path = http_path("/api/v1/contacts/", current->remote_id, NULL);
	int rc = send_contact(v, "PATCH", path, body, updated, NULL, err);

	json_object_put(body);
	free(path);
	return rc;
}

static int verity_fetch(void *self, const struct record *current, struct record *out, bool *gone,
			struct df_err *err)
{
	struct conn *v = self;
	struct http_response resp;
	char *path = http_path("/api/v1/contacts/", current->remote_id, NULL);
	int rc = http_request(v->http, "GET", path, NULL, NULL, &resp, err);

	*gone = false;
	free(path);
	if (rc && resp.status == 404) {
		*gone = true;
		df_err_clear(err);
		rc = 0;
	} else if (rc == 0) {
		rc = read_contact(v, &resp, out, err);
	}
	http_response_free(&resp);
	return rc;
}

static int verity_remove(void *self, const struct record *current, struct df_err *err)
{
	struct conn *v = self;
	struct http_response resp;
	char *path = http_path("/api/v1/contacts/", current->remote_id, NULL);
	int rc = http_request(v->http, "DELETE", path, NULL, NULL, &resp, err);

	free(path);
	http_response_free(&resp);
	return rc;
}

static const struct system_kind verity_kind = {
	.name = "verity",
	.max_page_size = 500,
	.default_rate_limit = 100,
};

const struct connector verity_connector = {
	.name = "verity",
	.kind = &verity_kind,
	.caps = CAP_CREATE_BY_KEY,
	.fields = CONTACT_FIELDS | FIELD_BIT(F_TAGS) | OPTOUT_FIELDS,
	.writable = CONTACT_FIELDS | FIELD_BIT(F_TAGS) | OPTOUT_FIELDS,
	.required_for_create = -1,
	.open = jm_open_bearer,
	.close = jm_close,
	.poll_contacts = verity_poll_contacts,
	.lookup = verity_lookup,
	.create = verity_create,
	.update = verity_update,
	.requests = jm_requests,
	.fetch = verity_fetch,
	.remove = verity_remove,
};
