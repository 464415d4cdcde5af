/*
 * record.c - the field table and canonical records.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "record.h"
#include "str.h"

static struct field_def builtin[F_NBUILTIN] = {
	[F_FIRST_NAME] = { "first_name", FIELD_TEXT, false },
	[F_LAST_NAME] = { "last_name", FIELD_TEXT, false },
	[F_PHONE] = { "phone", FIELD_PHONE, false },
	[F_EMAIL] = { "email", FIELD_EMAIL, false },
	[F_ADDRESS1] = { "address1", FIELD_TEXT, false },
	[F_CITY] = { "city", FIELD_TEXT, false },
	[F_STATE] = { "state", FIELD_TEXT, false },
	[F_POSTAL_CODE] = { "postal_code", FIELD_TEXT, false },
	[F_COUNTRY] = { "country", FIELD_TEXT, false },
	[F_TIMEZONE] = { "timezone", FIELD_TEXT, false },
	[F_TAGS] = { "tags", FIELD_SET, false },
	[F_OPTOUT_SMS] = { "optout_sms", FIELD_FLAG, false },
	[F_OPTOUT_CALL] = { "optout_call", FIELD_FLAG, false },
	[F_OPTOUT_EMAIL] = { "optout_email", FIELD_FLAG, false },
};

static struct field_def table[DF_MAX_FIELDS];
static char *custom_names[DF_MAX_FIELDS];
static int nfields = -1;

void fields_reset(void)
{
	for (int f = 0; f < DF_MAX_FIELDS; f++) {
		free(custom_names[f]);
		custom_names[f] = NULL;
	}
	memcpy(table, builtin, sizeof(builtin));
	nfields = F_NBUILTIN;
}

static void ensure_init(void)
{
	if (nfields < 0)
		fields_reset();
}

int fields_add_custom(const char *name)
{
	ensure_init();
	if (nfields >= DF_MAX_FIELDS || field_find(name) >= 0)
		return -1;
	custom_names[nfields] = xstrdup(name);
	table[nfields] = (struct field_def){ custom_names[nfields], FIELD_TEXT, true };
	return nfields++;
}

int fields_count(void)
{
	ensure_init();
	return nfields;
}

const struct field_def *field_get(int f)
{
	ensure_init();
	return &table[f];
}

int field_find(const char *name)
{
	ensure_init();
	for (int f = 0; f < nfields; f++)
		if (strcmp(table[f].name, name) == 0)
			return f;
	return -1;
}

bool field_is_optout(int f)
{
	return f == F_OPTOUT_SMS || f == F_OPTOUT_CALL || f == F_OPTOUT_EMAIL;
}

const char *optout_channel(int f)
{
	return f == F_OPTOUT_SMS ? "sms" : f == F_OPTOUT_CALL ? "call" : f == F_OPTOUT_EMAIL ? "email" : NULL;
}

void record_init(struct record *r)
{
	memset(r, 0, sizeof(*r));
	r->updated_ms = -1;
}

void record_clear(struct record *r)
{
	free(r->remote_id);
	for (int f = 0; f < DF_MAX_FIELDS; f++)
		free(r->value[f]);
	free(r->problem);
	record_init(r);
}

void record_problem(struct record *r, const char *fmt, ...)
{
	char text[256];
	va_list ap;
	char *joined;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	joined = r->problem ? xasprintf("%s; %s", r->problem, text) : xstrdup(text);
	free(r->problem);
	r->problem = joined;
}

void record_take(struct record *r, int f, char *value)
{
	free(r->value[f]);
	r->value[f] = value;
}

void record_set(struct record *r, int f, const char *value)
{
	record_take(r, f, xstrdup(value));
}

char *record_to_json(const struct record *r)
{
	json_object *o = json_object_new_object();
	char *s;

	for (int f = 0; f < fields_count(); f++)
		if (r->value[f] != NULL)
			json_object_object_add(o, field_get(f)->name, json_object_new_string(r->value[f]));
	s = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

int record_from_json(struct record *r, const char *json)
{
	json_object *o = json_tokener_parse(json);

	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return -1;
	}
	json_object_object_foreach(o, key, val) {
		int f = field_find(key);
		if (f >= 0 && json_object_is_type(val, json_type_string))
			record_set(r, f, json_object_get_string(val));
	}
	json_object_put(o);
	return 0;
}

static int cmp_member(const void *a, const void *b)
{
	int c = strcasecmp(*(char *const *)a, *(char *const *)b);
	return c ? c : strcmp(*(char *const *)a, *(char *const *)b);
}

char *set_from_array(const char *const *members, int n)
{
	const char **v = xcalloc((size_t)n + 1, sizeof(*v));
	struct strbuf sb;
	int k = 0;

	for (int i = 0; i < n; i++)
		if (!str_blank(members[i]) && strchr(members[i], '\n') == NULL)
			v[k++] = members[i];
	qsort(v, (size_t)k, sizeof(*v), cmp_member);
	sb_init(&sb);
	for (int i = 0; i < k; i++) {
		if (i > 0 && strcasecmp(v[i], v[i - 1]) == 0)
			continue;
		if (sb.len)
			sb_add(&sb, "\n");
		sb_add(&sb, v[i]);
	}
	free(v);
	return sb_detach(&sb);
}

int set_split(const char *set, char ***out)
{
	size_t len = set ? strlen(set) : 0;
	int n = len ? 1 : 0;
	char **v, *copy;

	for (size_t i = 0; i < len; i++)
		n += set[i] == '\n';
	v = xmalloc((size_t)(n + 1) * sizeof(*v) + len + 1);
	copy = (char *)(v + n + 1);
	memcpy(copy, set ? set : "", len + 1);
	for (int i = 0; i < n; i++) {
		v[i] = copy;
		copy = strchr(copy, '\n');
		if (copy)
			*copy++ = '\0';
	}
	v[n] = NULL;
	*out = v;
	return n;
}

bool set_contains(const char *set, const char *member)
{
	char **v;
	int n = set_split(set, &v);
	bool found = false;

	for (int i = 0; i < n && !found; i++)
		found = strcasecmp(v[i], member) == 0;
	free(v);
	return found;
}
