/*
 * ghl.c - GoHighLevel API v2 (contacts), shaped after the official OpenAPI
 * spec in shared/api/ghl.
 *
 * Changed-since is POST /contacts/search with a dateUpdated range filter,
 * sorted ascending and paged with the searchAfter array of the last contact
 * (opaque, echoed verbatim; never page numbers, which stop at 10,000).
 * Search answers carry "address" where GET carries "address1"; both are
 * read. Natural-key lookup is GET /contacts/search/duplicate, because
 * "phone eq" in search misses existing contacts. Tags are changed with the
 * tag endpoints, never by PUT, which would overwrite tags added meanwhile.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonmap.h"
#include "oauth.h"
#include "../core/str.h"

#define GHL_VERSION "Version: 2021-07-28"

static const struct field_key ghl_map[] = {
	{ F_FIRST_NAME, "firstName" }, { F_LAST_NAME, "lastName" },
	{ F_PHONE, "phone" }, { F_EMAIL, "email" }, { F_ADDRESS1, "address1" },
	{ F_CITY, "city" }, { F_STATE, "state" }, { F_POSTAL_CODE, "postalCode" },
	{ F_COUNTRY, "country" }, { F_TIMEZONE, "timezone" }, { 0, NULL },
};

static const char *const version_hdr[] = { GHL_VERSION, NULL };

/* Custom fields. The configuration names a GHL custom field by its
 * fieldKey ("contact.investor_tier": it holds a dot), looked up once per
 * run in the location's definitions (ghl_resolve_fields) for the id the
 * contact carries and the dataType its value is written in. A field named
 * by its id, as before keys were supported, is used as it is: written as
 * text, with no definitions read (a configuration without keys sends
 * exactly what it sent before). */
static bool names_key(const char *name)
{
	return strchr(name, '.') != NULL;
}

/* The id field f has on contacts this run. */
static const char *custom_id(const struct conn *g, int f)
{
	return g->field_id[f] ? g->field_id[f] : g->sc->field_key[f];
}

static const char *custom_type(const struct conn *g, int f)
{
	return g->field_type[f] ? g->field_type[f] : "TEXT";
}

static bool type_in(const char *type, const char *const *set)
{
	for (; *set; set++)
		if (strcmp(type, *set) == 0)
			return true;
	return false;
}

static const char *const number_types[] = { "NUMERICAL", "MONETORY", "FLOAT", NULL };
static const char *const list_types[] = { "CHECKBOX", "MULTIPLE_OPTIONS", NULL };

/* A list of options reads as its members joined by ", " (what another
 * system holds as text); a DATE given as epoch milliseconds as
 * YYYY-MM-DD (UTC). NULL: the value as JSON text. */
static char *typed_text(const char *type, json_object *val)
{
	if (type_in(type, list_types) && json_object_is_type(val, json_type_array)) {
		struct strbuf sb;
		sb_init(&sb);
		for (size_t i = 0; i < json_object_array_length(val); i++) {
			json_object *e = json_object_array_get_idx(val, i);
			if (!json_object_is_type(e, json_type_string)) {
				sb_free(&sb);
				return NULL;
			}
			sb_addf(&sb, "%s%s", i ? ", " : "", json_object_get_string(e));
		}
		return sb_detach(&sb);
	}
	if (strcmp(type, "DATE") == 0 && json_object_is_type(val, json_type_int)) {
		char iso[40];
		time_format_iso(json_object_get_int64(val), iso, sizeof(iso));
		return xasprintf("%.10s", iso);
	}
	return NULL;
}

/* customFields arrive as [{id, value}]; a value may be a string, number or
 * array (multi-select): non-strings are kept as their JSON text, or as
 * typed_text says for the field's dataType. */
static int read_custom(struct conn *g, json_object *o, struct record *r, struct df_err *err)
{
	json_object *arr;

	for (int f = F_NBUILTIN; f < fields_count(); f++)
		if (g->sc->field_key[f])
			record_take(r, f, xstrdup(""));
	if (!json_object_object_get_ex(o, "customFields", &arr) || arr == NULL)
		return 0;
	if (!json_object_is_type(arr, json_type_array))
		return df_fail(err, DF_FAIL_INPUT, "customFields is not an array");
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *e = json_object_array_get_idx(arr, i), *id, *val;
		const char *text;
		if (!json_object_object_get_ex(e, "id", &id) || !json_object_is_type(id, json_type_string))
			return df_fail(err, DF_FAIL_INPUT, "customFields[%zu] has no id", i);
		for (int f = F_NBUILTIN; f < fields_count(); f++) {
			char *typed;
			if (g->sc->field_key[f] == NULL || strcmp(custom_id(g, f), json_object_get_string(id)))
				continue;
			val = NULL;
			json_object_object_get_ex(e, "value", &val);
			if (val != NULL && json_object_is_type(val, json_type_string)) {
				char key[80];
				snprintf(key, sizeof(key), "customFields.%s", custom_id(g, f));
				if ((text = jm_string_of(val, key, err)) == NULL)
					return -1;
			} else if (val != NULL && (typed = typed_text(custom_type(g, f), val)) != NULL) {
				record_take(r, f, typed);
				continue;
			} else {
				text = val == NULL ? "" : json_object_to_json_string_ext(val, JSON_C_TO_STRING_PLAIN);
			}
			record_take(r, f, xstrdup(text));
		}
	}
	return 0;
}

/* DND: the master switch "dnd" covers every channel; dndSettings holds each
 * channel's status. Search answers omit dndSettings, so without it only a
 * master switch that is on says anything; the rest stays unknown (NULL). */
static const struct { int field; const char *key; } dnd_channels[] = {
	{ F_OPTOUT_SMS, "SMS" }, { F_OPTOUT_CALL, "Call" }, { F_OPTOUT_EMAIL, "Email" },
};

/* A DND value we cannot read counts as on (the safe direction, I4) and is
 * noted in r->problem so that the record is reported. */
static int read_dnd(json_object *o, struct record *r, struct df_err *err)
{
	json_object *dnd = NULL, *settings = NULL;
	bool master = false, detailed = false;

	(void)err;
	if (json_object_object_get_ex(o, "dnd", &dnd) && dnd != NULL) {
		master = !json_object_is_type(dnd, json_type_boolean) || json_object_get_boolean(dnd);
		if (!json_object_is_type(dnd, json_type_boolean))
			record_problem(r, "field dnd is not true or false: read as opted out on every "
				       "channel until it is fixed");
	}
	if (json_object_object_get_ex(o, "dndSettings", &settings) && settings != NULL) {
		detailed = json_object_is_type(settings, json_type_object);
		if (!detailed) {
			master = true;
			record_problem(r, "field dndSettings is not an object: read as opted out on every "
				       "channel until it is fixed");
		}
	}
	for (size_t i = 0; i < sizeof(dnd_channels) / sizeof(dnd_channels[0]); i++) {
		json_object *ch = NULL, *status = NULL;
		const char *st = NULL;
		bool on = master;
		if (detailed && json_object_object_get_ex(settings, dnd_channels[i].key, &ch) && ch != NULL) {
			if (json_object_is_type(ch, json_type_object) &&
			    json_object_object_get_ex(ch, "status", &status) &&
			    json_object_is_type(status, json_type_string))
				st = json_object_get_string(status);
			if (st && (strcmp(st, "active") == 0 || strcmp(st, "permanent") == 0 ||
				   strcmp(st, "inactive") == 0)) {
				on = on || strcmp(st, "inactive") != 0;
			} else {
				on = true;
				record_problem(r, "field dndSettings.%s is not {\"status\": ...}: read as "
					       "opted out until it is fixed", dnd_channels[i].key);
			}
		}
		if (detailed || master)
			record_set(r, dnd_channels[i].field, on ? "true" : "false");
	}
	return 0;
}

static json_object *dnd_settings(json_object *body)
{
	json_object *settings;

	if (!json_object_object_get_ex(body, "dndSettings", &settings)) {
		settings = json_object_new_object();
		json_object_object_add(body, "dndSettings", settings);
	}
	return settings;
}

static void put_dnd(json_object *body, int f, const char *value)
{
	for (size_t i = 0; i < sizeof(dnd_channels) / sizeof(dnd_channels[0]); i++) {
		if (dnd_channels[i].field != f)
			continue;
		json_object *st = json_object_new_object();
		json_object_object_add(st, "status", json_object_new_string(str_eq(value, "true") ? "active" : "inactive"));
		json_object_object_add(dnd_settings(body), dnd_channels[i].key, st);
	}
}

static int ghl_parse(void *self, json_object *o, struct record *r, struct df_err *err)
{
	char *addr = NULL;

	if (jm_read_id(o, "id", r, err) || jm_read_time(o, "dateUpdated", r, err) ||
	    jm_read_fields(o, ghl_map, r, err) || jm_read_set(o, "tags", r, F_TAGS, err) ||
	    read_custom(self, o, r, err) || read_dnd(o, r, err))
		return -1;
	if (str_blank(r->value[F_ADDRESS1])) {
		if (jm_get_string(o, "address", &addr, err))
			return -1;
		if (addr)
			record_take(r, F_ADDRESS1, addr);
	}
	return 0;
}

/* Reads {"contact": {...}} into out. */
static int read_contact(struct conn *g, const struct http_response *resp, struct record *out,
			struct df_err *err)
{
	json_object *o = jm_parse(resp, g->sc->name, err), *c;
	int rc;

	if (o == NULL)
		return -1;
	if (!json_object_object_get_ex(o, "contact", &c) || !json_object_is_type(c, json_type_object)) {
		json_object_put(o);
		return df_fail(err, DF_FAIL_TEMP, "%s: answer has no contact object", g->sc->name);
	}
	rc = ghl_parse(g, c, out, err);
	json_object_put(o);
	return rc;
}

/* A search answer read the cheap way (jm_raw_listing): 1 when the page is
 * filled (and *cursor, from the final item's searchAfter when the page is
 * full), 0 when it is to be read whole, -1 on failure. */
static int raw_page(struct conn *g, const struct http_response *resp, char **cursor,
		    struct connector_page *page, struct df_err *err)
{
	static const struct jm_raw search = { "contacts", NULL, "dateUpdated", ghl_parse };
	struct jm_raw_out ro;
	json_object *item, *sa;
	int done = jm_raw_listing(g, resp->body, resp->len, &search, page, &ro, err);

	if (done <= 0 || ro.count != (size_t)g->sc->page_size)
		return done;
	item = jm_parse_text(ro.last, ro.last_len);
	if (item != NULL && json_object_is_type(item, json_type_object) &&
	    json_object_object_get_ex(item, "searchAfter", &sa) && json_object_is_type(sa, json_type_array)) {
		*cursor = jm_to_string(sa);
	} else {
		/* The cursor is then an earlier item's: the whole answer says. */
		jm_page_restart(page);
		done = 0;
	}
	json_object_put(item);
	return done;
}

static int ghl_poll_contacts(void *self, long long since_ms, char **cursor,
			     struct connector_page *page, struct df_err *err)
{
	struct conn *g = self;
	json_object *body = json_object_new_object(), *f, *range, *sort, *o, *arr, *last = NULL;
	struct http_response resp;
	char since[40], *text;
	size_t n;
	int rc;

	time_format_iso(since_ms, since, sizeof(since));
	json_object_object_add(body, "locationId", json_object_new_string(config_own(g->sc, "location_id")));
	json_object_object_add(body, "pageLimit", json_object_new_int(g->sc->page_size));
	range = json_object_new_object();
	json_object_object_add(range, "gte", json_object_new_string(since));
	f = json_object_new_object();
	json_object_object_add(f, "field", json_object_new_string("dateUpdated"));
	json_object_object_add(f, "operator", json_object_new_string("range"));
	json_object_object_add(f, "value", range);
	arr = json_object_new_array();
	json_object_array_add(arr, f);
	json_object_object_add(body, "filters", arr);
	sort = json_object_new_object();
	json_object_object_add(sort, "field", json_object_new_string("dateUpdated"));
	json_object_object_add(sort, "direction", json_object_new_string("asc"));
	arr = json_object_new_array();
	json_object_array_add(arr, sort);
	json_object_object_add(body, "sort", arr);
	if (*cursor)
		json_object_object_add(body, "searchAfter", jm_parse_text(*cursor, strlen(*cursor)));
	text = jm_to_string(body);
	json_object_put(body);
	/* A search only reads: repeating it in place is safe. */
	rc = http_request_read(g->http, "POST", "/contacts/search", text, version_hdr, &resp, err);
	free(text);
	free(*cursor);
	*cursor = NULL;
	if (rc) {
		http_response_free(&resp);
		return -1;
	}
	if ((rc = raw_page(g, &resp, cursor, page, err)) != 0) {
		http_response_free(&resp);
		return rc > 0 ? 0 : -1;
	}
	o = jm_parse(&resp, g->sc->name, err);
	http_response_free(&resp);
	if (o == NULL)
		return -1;
	if (!json_object_object_get_ex(o, "contacts", &arr) || !json_object_is_type(arr, json_type_array)) {
		json_object_put(o);
		return df_fail(err, DF_FAIL_TEMP, "%s: search answer has no contacts array", g->sc->name);
	}
	n = json_object_array_length(arr);
	for (size_t i = 0; i < n; i++) {
		json_object *item = json_object_array_get_idx(arr, i), *sa;
		if (jm_page_add(page, item, "id", ghl_parse, g, err)) {
			json_object_put(o);
			return -1;
		}
		if (json_object_is_type(item, json_type_object) &&
		    json_object_object_get_ex(item, "searchAfter", &sa) && json_object_is_type(sa, json_type_array))
			last = sa;
	}
	if (n == (size_t)g->sc->page_size && last != NULL)
		*cursor = jm_to_string(last);
	json_object_put(o);
	return 0;
}

static int ghl_lookup(void *self, const struct record *want, struct record *found, struct df_err *err)
{
	struct conn *g = self;
	struct http_response resp;
	struct strbuf path;
	json_object *o, *c;
	int rc;

	if (str_blank(want->value[F_PHONE]) && str_blank(want->value[F_EMAIL]))
		return 0;
	sb_init(&path);
	sb_add(&path, "/contacts/search/duplicate?locationId=");
	http_query_escape(&path, config_own(g->sc, "location_id"));
	if (!str_blank(want->value[F_PHONE])) {
		sb_add(&path, "&number=");
		http_query_escape(&path, want->value[F_PHONE]);
	}
	if (!str_blank(want->value[F_EMAIL])) {
		sb_add(&path, "&email=");
		http_query_escape(&path, want->value[F_EMAIL]);
	}
	rc = http_request(g->http, "GET", path.buf, NULL, version_hdr, &resp, err);
	sb_free(&path);
	if (rc == 0 && (o = jm_parse(&resp, g->sc->name, err)) != NULL) {
		if (json_object_object_get_ex(o, "contact", &c) && json_object_is_type(c, json_type_object))
			rc = ghl_parse(g, c, found, err);
		json_object_put(o);
	} else {
		rc = -1;
	}
	http_response_free(&resp);
	return rc;
}

/* value as a DATE field takes it: YYYY-MM-DD, from that, an ISO time or
 * epoch milliseconds; NULL if it is none of them. */
static char *date_value(const char *value)
{
	int y, m, d, n = 0;

	if (strspn(value, "0123456789") == strlen(value) && strlen(value) >= 9) {
		char iso[40];
		time_format_iso(strtoll(value, NULL, 10), iso, sizeof(iso));
		return xasprintf("%.10s", iso);
	}
	if (sscanf(value, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10 ||
	    (value[10] != '\0' && value[10] != 'T' && value[10] != ' ') || m < 1 || m > 12 || d < 1 ||
	    d > 31)
		return NULL;
	return xasprintf("%.10s", value);
}

/* value (text) as a numeric field takes it: the number's plain text (the
 * spec types field_value as a string, a string[] or an object, never a
 * JSON number), NULL when the text is not a number. */
static json_object *number_value(const char *value)
{
	char *end, buf[40];
	double d;

	errno = 0;
	d = strtod(value, &end);
	if (end == value || *end != '\0' || errno != 0 || d - d != 0 || isspace((unsigned char)*value))
		return NULL;
	if (d > -9e15 && d < 9e15 && d == (double)(long long)d)
		snprintf(buf, sizeof(buf), "%lld", (long long)d);
	else
		snprintf(buf, sizeof(buf), "%.15g", d);
	return json_object_new_string(buf);
}

/* value as a list of options: a JSON array of strings, or text whose
 * options are separated by commas. */
static json_object *list_value(const char *value)
{
	json_object *arr = jm_parse_text(value, strlen(value)), *out;
	char *copy, *tok, *save = NULL;

	if (arr != NULL && json_object_is_type(arr, json_type_array))
		return arr;
	json_object_put(arr);
	out = json_object_new_array();
	copy = xstrdup(value);
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		size_t n;
		while (isspace((unsigned char)*tok))
			tok++;
		n = strlen(tok);
		while (n > 0 && isspace((unsigned char)tok[n - 1]))
			tok[--n] = '\0';
		if (n > 0)
			json_object_array_add(out, json_object_new_string(tok));
	}
	free(copy);
	return out;
}

/* One {id, field_value} in the field's dataType; a blank value clears the
 * field in any type. A value the type cannot take is refused here (GHL
 * would refuse it too): DF_FAIL_REMOTE naming the field. */
static int put_custom(struct conn *g, json_object *arr, int f, const char *value, struct df_err *err)
{
	const char *type = custom_type(g, f);
	json_object *e, *v = NULL;
	char *date;

	if (str_blank(value)) {
		v = json_object_new_string("");
	} else if (type_in(type, number_types)) {
		v = number_value(value);
	} else if (type_in(type, list_types)) {
		v = list_value(value);
	} else if (strcmp(type, "DATE") == 0) {
		if ((date = date_value(value)) != NULL)
			v = json_object_new_string(date);
		free(date);
	} else {
		v = json_object_new_string(value);
	}
	if (v == NULL)
		return df_fail(err, DF_FAIL_REMOTE, "%s: custom field %s (%s, %s): \"%s\" is not a %s",
			       g->sc->name, field_get(f)->name, g->sc->field_key[f], type, value,
			       strcmp(type, "DATE") == 0 ? "date (YYYY-MM-DD)" : "number");
	e = json_object_new_object();
	json_object_object_add(e, "id", json_object_new_string(custom_id(g, f)));
	json_object_object_add(e, "field_value", v);
	json_object_array_add(arr, e);
	return 0;
}

/* Body of a create or update: the given fields in GHL's names; NULL with
 * err when a custom field's value does not fit its type. */
static json_object *contact_body(struct conn *g, const struct field_change *ch, int nch, bool tags,
				 struct df_err *err)
{
	json_object *body = json_object_new_object(), *custom = json_object_new_array();

	for (int i = 0; i < nch; i++) {
		int f = ch[i].field;
		if (f == F_TAGS) {
			if (tags)
				json_object_object_add(body, "tags", jm_set_array(ch[i].new_value));
		} else if (field_is_optout(f)) {
			put_dnd(body, f, ch[i].new_value);
		} else if (f >= F_NBUILTIN) {
			if (put_custom(g, custom, f, ch[i].new_value, err)) {
				json_object_put(custom);
				json_object_put(body);
				return NULL;
			}
		} else {
			jm_put(body, jm_key(ghl_map, f), ch[i].new_value, true);
		}
	}
	if (json_object_array_length(custom) > 0)
		json_object_object_add(body, "customFields", custom);
	else
		json_object_put(custom);
	return body;
}

static int changes_of(const struct record *rec, struct field_change *ch)
{
	int n = 0;

	for (int f = 0; f < fields_count(); f++)
		if (rec->value[f] != NULL)
			ch[n++] = (struct field_change){ f, NULL, rec->value[f] };
	return n;
}

static int ghl_create(void *self, const struct record *rec, struct record *created, bool *existed,
		      struct df_err *err)
{
	struct conn *g = self;
	struct field_change ch[DF_MAX_FIELDS];
	json_object *body = contact_body(g, ch, changes_of(rec, ch), true, err), *o, *meta, *id;
	struct http_response resp;
	char *text;
	int rc;

	(void)existed;
	if (body == NULL)
		return -1;
	json_object_object_add(body, "locationId", json_object_new_string(config_own(g->sc, "location_id")));
	text = jm_to_string(body);
	json_object_put(body);
	rc = http_request(g->http, "POST", "/contacts/", text, version_hdr, &resp, err);
	free(text);
	if (rc == 0) {
		rc = read_contact(g, &resp, created, err);
	} else if (resp.status == 400 && (o = jm_parse_text(resp.body, resp.len)) != NULL) {
		/* The location forbids duplicates and names the existing contact:
		 * that contact is the one we meant to create. */
		if (json_object_object_get_ex(o, "meta", &meta) &&
		    json_object_object_get_ex(meta, "contactId", &id) &&
		    json_object_is_type(id, json_type_string)) {
			char *path = http_path("/contacts/", json_object_get_string(id), NULL);
			http_response_free(&resp);
			rc = http_request(g->http, "GET", path, NULL, version_hdr, &resp, err);
			if (rc == 0)
				rc = read_contact(g, &resp, created, err);
			free(path);
		}
		json_object_put(o);
	}
	http_response_free(&resp);
	return rc;
}

/* Adds or removes the members of one set that the other lacks. */
static int change_tags(struct conn *g, const char *id, const char *from, const char *to,
		       const char *method, struct df_err *err)
{
	json_object *arr = json_object_new_array(), *body;
	struct http_response resp;
	char **v, *text, *path;
	int n = set_split(to, &v), rc = 0;

	for (int i = 0; i < n; i++)
		if (!set_contains(from, v[i]))
			json_object_array_add(arr, json_object_new_string(v[i]));
	free(v);
	if (json_object_array_length(arr) == 0) {
		json_object_put(arr);
		return 0;
	}
	body = json_object_new_object();
	json_object_object_add(body, "tags", arr);
	text = jm_to_string(body);
	json_object_put(body);
	path = http_path("/contacts/", id, "/tags");
	rc = http_request(g->http, method, path, text, version_hdr, &resp, err);
	http_response_free(&resp);
	free(path);
	free(text);
	return rc;
}

static int ghl_update(void *self, const struct record *current, const struct field_change *ch,
		      int nch, struct record *updated, struct df_err *err)
{
	struct conn *g = self;
	json_object *body = contact_body(g, ch, nch, false, err);
	struct http_response resp = { 0 };
	int rc = 0;

	if (body == NULL)
		return -1;

	for (int i = 0; i < nch && rc == 0; i++) {
		if (ch[i].field != F_TAGS)
			continue;
		rc = change_tags(g, current->remote_id, ch[i].old_value, ch[i].new_value, "POST", err);
		if (rc == 0)
			rc = change_tags(g, current->remote_id, ch[i].new_value, ch[i].old_value, "DELETE", err);
	}
	if (rc == 0) {
		/* The answer of the PUT, or after tag changes alone a GET, is the
		 * contact as GHL now has it (its dateUpdated moved). */
		char *path = http_path("/contacts/", current->remote_id, NULL);
		if (json_object_object_length(body) > 0) {
			char *text = jm_to_string(body);
			rc = http_request(g->http, "PUT", path, text, version_hdr, &resp, err);
			free(text);
		} else {
			rc = http_request(g->http, "GET", path, NULL, version_hdr, &resp, err);
		}
		if (rc == 0)
			rc = read_contact(g, &resp, updated, err);
		free(path);
	}
	json_object_put(body);
	http_response_free(&resp);
	return rc;
}

/* Deliveries: calls become notes (and Call messages when a conversation
 * provider is configured), texts become SMS messages in the contact's
 * conversation. An earlier delivery is looked for before a second one is
 * made: a note by its last line (the call's id), a message by what the
 * message export really returns (its schema has no altId): type,
 * direction, date and, for an SMS, its body (docs/DESIGN.md). */

static const char *const conv_hdr[] = { "Version: 2021-04-15", NULL };

/* GET path (Version hdr) and parse; NULL with err on failure. */
static json_object *get_json(struct conn *g, const char *path, const char *const *hdr, struct df_err *err)
{
	struct http_response resp;
	json_object *o = NULL;

	if (http_request(g->http, "GET", path, NULL, hdr, &resp, err) == 0)
		o = jm_parse(&resp, g->sc->name, err);
	http_response_free(&resp);
	return o;
}

/* POSTs body; the parsed answer, or NULL with err. A 4xx answer's body is
 * kept in *refused (when refused is not NULL) for the caller to read. */
static json_object *post_json(struct conn *g, const char *path, json_object *body, const char *const *hdr,
			      json_object **refused, struct df_err *err)
{
	struct http_response resp;
	json_object *o = NULL;
	char *text = jm_to_string(body);

	json_object_put(body);
	if (refused)
		*refused = NULL;
	if (http_request(g->http, "POST", path, text, hdr, &resp, err) == 0)
		o = jm_parse(&resp, g->sc->name, err);
	else if (refused && resp.status >= 400 && resp.status < 500 && resp.body)
		*refused = jm_parse_text(resp.body, resp.len);
	free(text);
	http_response_free(&resp);
	return o;
}

/* A string member of o copied, or NULL. */
static char *member(json_object *o, const char *key)
{
	json_object *v;

	if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
		return xstrdup(jm_string_of(v, key, NULL));
	return NULL;
}

static char *call_note(const struct event *ev)
{
	const char *dir = event_get(ev, "direction"), *dur = event_get(ev, "duration");
	long secs = dur ? strtol(dur, NULL, 10) : 0;
	char when[40];
	struct strbuf sb;

	time_format_iso(ev->occurred_ms, when, sizeof(when));
	sb_init(&sb);
	sb_addf(&sb, "%s call on %s (%ldm %lds)\n", str_eq(dir, "inbound") ? "Inbound" : "Outbound",
		when, secs / 60, secs % 60);
	if (event_get(ev, "disposition"))
		sb_addf(&sb, "Disposition: %s\n", event_get(ev, "disposition"));
	if (event_get(ev, "status"))
		sb_addf(&sb, "Status: %s\n", event_get(ev, "status"));
	if (!str_blank(event_get(ev, "recording_url")))
		sb_addf(&sb, "Recording: %s\n", event_get(ev, "recording_url"));
	sb_addf(&sb, "aloware_call_id: %s", ev->source_id);
	return sb_detach(&sb);
}

/* The id of the contact's note carrying marker, or NULL. */
static int find_note(struct conn *g, const char *contact, const char *marker, char **id, struct df_err *err)
{
	char *path = http_path("/contacts/", contact, "/notes");
	json_object *o = get_json(g, path, version_hdr, err), *arr;

	free(path);
	*id = NULL;
	if (o == NULL)
		return -1;
	if (json_object_object_get_ex(o, "notes", &arr) && json_object_is_type(arr, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(arr) && *id == NULL; i++) {
			json_object *n = json_object_array_get_idx(arr, i);
			char *body = member(n, "body");
			size_t ml = strlen(marker);
			/* The marker is the note's last line. */
			if (body && strlen(body) >= ml && strcmp(body + strlen(body) - ml, marker) == 0)
				*id = member(n, "id");
			free(body);
		}
	}
	json_object_put(o);
	return 0;
}

/* The id of the contact's conversation from GET /conversations/search, or
 * NULL. The search index lags behind a create. */
static int search_conversation(struct conn *g, const char *contact, char **id, struct df_err *err)
{
	struct strbuf path;
	json_object *o, *arr;

	*id = NULL;
	sb_init(&path);
	sb_add(&path, "/conversations/search?locationId=");
	http_query_escape(&path, config_own(g->sc, "location_id"));
	sb_add(&path, "&contactId=");
	http_query_escape(&path, contact);
	o = get_json(g, path.buf, conv_hdr, err);
	sb_free(&path);
	if (o == NULL)
		return -1;
	if (json_object_object_get_ex(o, "conversations", &arr) && json_object_is_type(arr, json_type_array) &&
	    json_object_array_length(arr) > 0)
		*id = member(json_object_array_get_idx(arr, 0), "id");
	json_object_put(o);
	return 0;
}

/* The contact's conversation, created when search finds none. A create
 * answered "already exists" (made earlier, not yet in the search index) is
 * recovered by searching again; if the index still lags, the delivery is
 * retried by a later run (temporary). */
static int conversation_of(struct conn *g, const char *contact, char **id, struct df_err *err)
{
	json_object *o, *body, *refused = NULL, *conv;
	char *msg;

	if (search_conversation(g, contact, id, err) || *id)
		return *id ? 0 : -1;
	body = json_object_new_object();
	json_object_object_add(body, "locationId", json_object_new_string(config_own(g->sc, "location_id")));
	json_object_object_add(body, "contactId", json_object_new_string(contact));
	o = post_json(g, "/conversations/", body, conv_hdr, &refused, err);
	if (o == NULL) {
		msg = member(refused, "message");
		if (msg == NULL || strstr(msg, "already exists") == NULL) {
			free(msg);
			json_object_put(refused);
			return -1;
		}
		/* Only an id in the answer (the spec documents none) or the
		 * search may name it. */
		*id = member(refused, "conversationId");
		free(msg);
		json_object_put(refused);
		if (*id == NULL && search_conversation(g, contact, id, err))
			return -1;
		return *id ? 0 : df_fail(err, DF_FAIL_TEMP, "%s: the contact's conversation exists but "
					 "the conversation search does not show it yet", g->sc->name);
	}
	if (json_object_object_get_ex(o, "conversation", &conv))
		*id = member(conv, "id");
	json_object_put(o);
	return *id ? 0 : df_fail(err, DF_FAIL_TEMP, "%s: conversation create answered no id", g->sc->name);
}

/* What identifies a message we made in the export (which has no altId). */
struct message_key {
	const char *channel;    /* export channel: "SMS" or "Call" */
	const char *type;       /* messageType: TYPE_SMS, TYPE_CALL */
	const char *direction;  /* inbound, outbound */
	long long date_ms;      /* the date we gave it */
	const char *body;       /* an SMS's text; NULL for a call */
};

static bool message_matches(json_object *m, const struct message_key *k)
{
	char *type = member(m, "messageType"), *dir = member(m, "direction"), *date = member(m, "dateAdded"),
	     *body = member(m, "body");
	bool same = str_eq(type, k->type) && str_eq(dir, k->direction) && date &&
		    time_parse_iso(date) == k->date_ms && (k->body == NULL || str_eq(body ? body : "", k->body));

	free(type);
	free(dir);
	free(date);
	free(body);
	return same;
}

/* The id of the conversation's message matching k, or NULL. Pages are
 * bounded: a conversation longer than that is searched no further. */
static int find_message(struct conn *g, const char *conv, const struct message_key *k, char **id,
			struct df_err *err)
{
	char *cursor = NULL;

	*id = NULL;
	for (int page = 0; page < 50 && *id == NULL; page++) {
		struct strbuf path;
		json_object *o, *arr;
		sb_init(&path);
		sb_add(&path, "/conversations/messages/export?locationId=");
		http_query_escape(&path, config_own(g->sc, "location_id"));
		sb_add(&path, "&conversationId=");
		http_query_escape(&path, conv);
		sb_add(&path, "&channel=");
		sb_add(&path, k->channel);
		sb_add(&path, "&limit=500");
		if (cursor) {
			sb_add(&path, "&cursor=");
			http_query_escape(&path, cursor);
		}
		o = get_json(g, path.buf, conv_hdr, err);
		sb_free(&path);
		free(cursor);
		cursor = NULL;
		if (o == NULL)
			return -1;
		if (json_object_object_get_ex(o, "messages", &arr) && json_object_is_type(arr, json_type_array)) {
			for (size_t i = 0; i < json_object_array_length(arr) && *id == NULL; i++) {
				json_object *m = json_object_array_get_idx(arr, i);
				if (message_matches(m, k))
					*id = member(m, "id");
			}
		}
		/* nextCursor is absent on the last page. */
		cursor = member(o, "nextCursor");
		json_object_put(o);
		if (cursor == NULL)
			break;
	}
	free(cursor);
	return 0;
}

/* Posts a message into conv unless the export already holds it. */
static int post_message(struct conn *g, const char *path, const char *conv, const struct message_key *k,
			json_object *body, char **id, struct df_err *err)
{
	json_object *o;

	if (find_message(g, conv, k, id, err)) {
		json_object_put(body);
		return -1;
	}
	if (*id) {
		json_object_put(body);
		return 0;
	}
	json_object_object_add(body, "conversationId", json_object_new_string(conv));
	json_object_object_add(body, "conversationProviderId", json_object_new_string(config_own(g->sc, "conversation_provider_id")));
	o = post_json(g, path, body, conv_hdr, NULL, err);
	if (o == NULL)
		return -1;
	*id = member(o, "messageId");
	json_object_put(o);
	return 0;
}

static const char *call_status(const char *status)
{
	static const char *const allowed[] = { "pending", "completed", "answered", "busy", "no-answer",
					       "failed", "canceled", "voicemail" };

	for (size_t i = 0; status && i < sizeof(allowed) / sizeof(allowed[0]); i++)
		if (strcmp(status, allowed[i]) == 0)
			return status;
	return str_eq(status, "missed") ? "no-answer" : "completed";
}

/* The Call message: an inbound call through .../inbound (with the contact
 * and direction), an outbound one through .../outbound, whose schema has
 * neither (ProcessOutboundMessageBodyDto). */
static int call_message(struct conn *g, const char *contact, const struct event *ev, char **msg,
			struct df_err *err)
{
	bool in = str_eq(event_get(ev, "direction"), "inbound");
	struct message_key k = { "Call", "TYPE_CALL", in ? "inbound" : "outbound", ev->occurred_ms, NULL };
	json_object *body, *call;
	char *conv = NULL, date[40];
	int rc;

	if (conversation_of(g, contact, &conv, err))
		return -1;
	body = json_object_new_object();
	call = json_object_new_object();
	time_format_iso(ev->occurred_ms, date, sizeof(date));
	json_object_object_add(call, "status", json_object_new_string(call_status(event_get(ev, "status"))));
	/* The contact's side of the call must be the contact's number. */
	if (ev->phone)
		json_object_object_add(call, in ? "from" : "to", json_object_new_string(ev->phone));
	json_object_object_add(body, "type", json_object_new_string("Call"));
	json_object_object_add(body, "date", json_object_new_string(date));
	json_object_object_add(body, "call", call);
	if (in) {
		json_object_object_add(body, "contactId", json_object_new_string(contact));
		json_object_object_add(body, "direction", json_object_new_string("inbound"));
	}
	rc = post_message(g, in ? "/conversations/messages/inbound" : "/conversations/messages/outbound",
			  conv, &k, body, msg, err);
	free(conv);
	return rc;
}

/* A call is a note, then (with a provider) its Call message. A failure
 * between the two leaves the delivery to be retried, which finds the note
 * by its marker and makes only the message; the error says so. */
static int deliver_call(struct conn *g, const char *contact, const struct event *ev, char **made,
			struct df_err *err)
{
	char *marker = xasprintf("aloware_call_id: %s", ev->source_id), *note = NULL, *msg = NULL;
	int rc = find_note(g, contact, marker, &note, err);

	if (rc == 0 && note == NULL) {
		json_object *body = json_object_new_object(), *o, *n;
		char *path = http_path("/contacts/", contact, "/notes"), *text = call_note(ev);
		json_object_object_add(body, "body", json_object_new_string(text));
		o = post_json(g, path, body, version_hdr, NULL, err);
		if (o != NULL && json_object_object_get_ex(o, "note", &n))
			note = member(n, "id");
		rc = o ? 0 : -1;
		json_object_put(o);
		free(path);
		free(text);
	}
	if (rc == 0 && config_own(g->sc, "conversation_provider_id") && (rc = call_message(g, contact, ev, &msg, err)))
		df_wrap(err, "note %s made, its Call message not yet", note ? note : "(no id)");
	*made = note ? xasprintf("note:%s%s%s", note, msg ? " message:" : "", msg ? msg : "") : NULL;
	free(marker);
	free(note);
	free(msg);
	return rc;
}

/* A text is an SMS added through POST /conversations/messages/inbound (the
 * spec's way to record a message sent elsewhere, either direction), which
 * GHL takes only with a conversation provider. Without one configured
 * nothing is sent: the text waits, refused, until the config names one. */
static int deliver_text(struct conn *g, const char *contact, const struct event *ev, char **made,
			struct df_err *err)
{
	const char *text = event_get(ev, "body") ? event_get(ev, "body") : "";
	bool in = str_eq(event_get(ev, "direction"), "inbound");
	struct message_key k = { "SMS", "TYPE_SMS", in ? "inbound" : "outbound", ev->occurred_ms, text };
	char *conv = NULL, *msg = NULL, date[40];
	json_object *body;
	int rc;

	if (config_own(g->sc, "conversation_provider_id") == NULL)
		return df_fail(err, DF_FAIL_REMOTE, "%s: GHL takes an SMS only with a conversationProviderId: "
			       "set conversation_provider_id for this system", g->sc->name);
	if (conversation_of(g, contact, &conv, err))
		return -1;
	time_format_iso(ev->occurred_ms, date, sizeof(date));
	body = json_object_new_object();
	json_object_object_add(body, "type", json_object_new_string("SMS"));
	json_object_object_add(body, "contactId", json_object_new_string(contact));
	json_object_object_add(body, "message", json_object_new_string(text));
	json_object_object_add(body, "direction", json_object_new_string(k.direction));
	json_object_object_add(body, "date", json_object_new_string(date));
	rc = post_message(g, "/conversations/messages/inbound", conv, &k, body, &msg, err);
	*made = msg ? xasprintf("message:%s", msg) : NULL;
	free(conv);
	free(msg);
	return rc;
}

static int ghl_deliver(void *self, const char *contact, const struct event *ev, char **made,
		       struct df_err *err)
{
	*made = NULL;
	if (strcmp(ev->kind, "call") == 0)
		return deliver_call(self, contact, ev, made, err);
	if (strcmp(ev->kind, "message") == 0)
		return deliver_text(self, contact, ev, made, err);
	return df_fail(err, DF_FAIL_REMOTE, "ghl takes no %s events", ev->kind);
}

static int ghl_fetch(void *self, const struct record *current, struct record *out, bool *gone,
		     struct df_err *err)
{
	struct conn *g = self;
	struct http_response resp;
	char *path = http_path("/contacts/", current->remote_id, NULL);
	int rc = http_request(g->http, "GET", path, NULL, version_hdr, &resp, err);

	*gone = false;
	free(path);
	/* GHL answers an unknown id with 400 "Contact with id X not found". */
	if (rc && (resp.status == 400 || resp.status == 404) && resp.body && strstr(resp.body, "not found")) {
		*gone = true;
		df_err_clear(err);
		rc = 0;
	} else if (rc == 0) {
		rc = read_contact(g, &resp, out, err);
	}
	http_response_free(&resp);
	return rc;
}

static int ghl_remove(void *self, const struct record *current, struct df_err *err)
{
	struct conn *g = self;
	struct http_response resp;
	char *path = http_path("/contacts/", current->remote_id, NULL);
	int rc = http_request(g->http, "DELETE", path, NULL, version_hdr, &resp, err);

	free(path);
	http_response_free(&resp);
	return rc;
}

/* A Private Integration token is static (the bearer of every request); an
 * OAuth access token is renewed through oauth.c when it is due or a 401
 * says it expired early. */
static void *ghl_open(const struct system_conf *sc, const struct config *cfg, struct df_err *err)
{
	struct oauth *o;
	struct conn *g;

	if (sc->oauth_token_file == NULL)
		return jm_open_bearer(sc, cfg, err);
	if ((o = oauth_open(sc, cfg, err)) == NULL)
		return NULL;
	if ((g = jm_open_token(sc, cfg, oauth_access(o), err)) == NULL) {
		oauth_free(o);
		return NULL;
	}
	g->auth = o;
	http_set_reauth(g->http, oauth_renew, o, oauth_expires_ms(o));
	return g;
}

static void ghl_close(void *self)
{
	struct conn *g = self;

	if (g)
		oauth_free(g->auth);
	jm_close(self);
}

/* GET /locations/{locationId}/customFields: {customFields: [{id, name,
 * fieldKey, dataType, ...}]}, read only when a custom field is named by
 * its key. A key GHL does not define gets why[f]. */
static int ghl_resolve_fields(void *self, char **why, struct df_err *err)
{
	struct conn *g = self;
	json_object *o, *arr;
	char *path;
	bool any = false;

	for (int f = F_NBUILTIN; f < fields_count(); f++)
		any |= g->sc->field_key[f] != NULL && names_key(g->sc->field_key[f]);
	if (!any)
		return 0;
	path = http_path("/locations/", config_own(g->sc, "location_id"), "/customFields?model=contact");
	o = get_json(g, path, version_hdr, err);
	free(path);
	if (o != NULL && (!json_object_object_get_ex(o, "customFields", &arr) ||
			  !json_object_is_type(arr, json_type_array))) {
		json_object_put(o);
		o = NULL;
		df_fail(err, DF_FAIL_TEMP, "%s: the custom field definitions have no customFields array",
			g->sc->name);
	}
	/* Without the definitions no key can be resolved: those fields sit
	 * this run out (their values stay unknown, nothing is cleared). */
	if (o == NULL) {
		for (int f = F_NBUILTIN; f < fields_count(); f++)
			if (g->sc->field_key[f] != NULL && names_key(g->sc->field_key[f]))
				why[f] = xasprintf("custom field %s: the custom field definitions could not be "
						   "read (%s): the field is not read or written in %s this run",
						   field_get(f)->name, err->msg, g->sc->name);
		return 0;
	}
	for (int f = F_NBUILTIN; f < fields_count(); f++) {
		const char *want = g->sc->field_key[f];
		if (want == NULL || !names_key(want))
			continue;
		for (size_t i = 0; i < json_object_array_length(arr) && g->field_id[f] == NULL; i++) {
			json_object *d = json_object_array_get_idx(arr, i);
			char *name = member(d, "fieldKey");
			if (name && strcmp(name, want) == 0) {
				g->field_id[f] = member(d, "id");
				g->field_type[f] = member(d, "dataType");
			}
			free(name);
		}
		if (g->field_id[f] == NULL)
			why[f] = xasprintf("custom field %s: GHL defines no custom field with key %s: the field "
					   "is not read or written in %s", field_get(f)->name, want, g->sc->name);
	}
	json_object_put(o);
	return 0;
}

/* GHL's own settings (the generic ones are in core/config.c). */
static const struct setting ghl_settings[] = {
	{ "location_id", SETTING_STRING, NULL, 0, 0, true, true,
	  "the sub-account (location) the token belongs to" },
	{ "conversation_provider_id", SETTING_STRING, NULL, 0, 0, false, true,
	  "the conversation provider texts and Call messages are written through" },
	{ NULL, SETTING_STRING, NULL, 0, 0, false, false, NULL },
};

static const struct system_kind ghl_kind = {
	.name = "ghl",
	.settings = ghl_settings,
	.max_page_size = 500,
	/* Below GHL's burst of 100 per 10 s: other apps of the location
	 * share it, and its headers pace us the rest of the way. */
	.default_rate_limit = 90,
	.address_authority = true,
	.oauth = true,
};

const struct connector ghl_connector = {
	.name = "ghl",
	.kind = &ghl_kind,
	.caps = CAP_LISTING_PARTIAL,
	.fields = CONTACT_FIELDS | FIELD_BIT(F_TAGS) | OPTOUT_FIELDS,
	.writable = CONTACT_FIELDS | FIELD_BIT(F_TAGS) | OPTOUT_FIELDS,
	.required_for_create = -1,
	.open = ghl_open,
	.close = ghl_close,
	.poll_contacts = ghl_poll_contacts,
	.lookup = ghl_lookup,
	.create = ghl_create,
	.update = ghl_update,
	.requests = jm_requests,
	.daily_left = jm_daily_left,
	.resolve_fields = ghl_resolve_fields,
	.deliver = ghl_deliver,
	.remove = ghl_remove,
	.fetch = ghl_fetch,
};
