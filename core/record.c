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
	/* Most of the DF_MAX_FIELDS slots are empty; free(NULL) is a call. */
	for (int f = 0; f < DF_MAX_FIELDS; f++)
		if (r->value[f] != NULL)
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

/* A JSON string, escaped as json-c escapes it (JSON_C_TO_STRING_PLAIN: '/'
 * too, other control characters as \u00xx), so the text stays the same. */
void json_quote(struct strbuf *sb, const char *v)
{
	static const char hex[] = "0123456789abcdef";
	const char *run = v;

	sb_addn(sb, "\"", 1);
	for (; *v; v++) {
		unsigned char c = (unsigned char)*v;
		const char *esc;
		if (c >= 0x20 && c != '"' && c != '\\' && c != '/')
			continue;
		esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '/' ? "\\/" : c == '\b' ? "\\b"
		      : c == '\f' ? "\\f" : c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
		sb_addn(sb, run, (size_t)(v - run));
		if (esc != NULL) {
			sb_add(sb, esc);
		} else {
			char u[7] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], '\0' };
			sb_add(sb, u);
		}
		run = v + 1;
	}
	sb_addn(sb, run, (size_t)(v - run));
	sb_addn(sb, "\"", 1);
}

/* Built by hand: json-c's tree cost a tenth of a first sync (issue 9). */
char *record_to_json(const struct record *r)
{
	struct strbuf sb;
	bool first = true;

	sb_init(&sb);
	sb_addn(&sb, "{", 1);
	for (int f = 0; f < fields_count(); f++) {
		if (r->value[f] == NULL)
			continue;
		if (!first)
			sb_addn(&sb, ",", 1);
		first = false;
		json_quote(&sb, field_get(f)->name);
		sb_addn(&sb, ":", 1);
		json_quote(&sb, r->value[f]);
	}
	sb_addn(&sb, "}", 1);
	return sb_detach(&sb);
}

/* Reads a JSON string at *p (after its opening quote) into out (at most
 * cap bytes with its NUL); false for what the fast reader leaves to json-c:
 * a raw control character, \u0000, a surrogate, a bad escape, no room. */
bool json_read_string(const char **p, char *out, size_t cap)
{
	const unsigned char *s = (const unsigned char *)*p;
	size_t n = 0;

	for (;;) {
		unsigned c = *s++;
		if (n + 4 >= cap || c < 0x20)
			return false;
		if (c == '"')
			break;
		if (c != '\\') {
			out[n++] = (char)c;
			continue;
		}
		switch (c = *s++) {
		case '"': case '\\': case '/': out[n++] = (char)c; break;
		case 'b': out[n++] = '\b'; break;
		case 'f': out[n++] = '\f'; break;
		case 'n': out[n++] = '\n'; break;
		case 'r': out[n++] = '\r'; break;
		case 't': out[n++] = '\t'; break;
		case 'u': {
			unsigned cp = 0;
			for (int i = 0; i < 4; i++, s++) {
				unsigned h = *s | 0x20u;
				if (*s >= '0' && *s <= '9')
					cp = cp << 4 | (unsigned)(*s - '0');
				else if (h >= 'a' && h <= 'f')
					cp = cp << 4 | (h - 'a' + 10);
				else
					return false;
			}
			if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
				return false;
			if (cp < 0x80) {
				out[n++] = (char)cp;
			} else if (cp < 0x800) {
				out[n++] = (char)(0xC0 | cp >> 6);
				out[n++] = (char)(0x80 | (cp & 0x3F));
			} else {
				out[n++] = (char)(0xE0 | cp >> 12);
				out[n++] = (char)(0x80 | (cp >> 6 & 0x3F));
				out[n++] = (char)(0x80 | (cp & 0x3F));
			}
			break;
		}
		default:
			return false;
		}
	}
	out[n] = '\0';
	*p = (const char *)s;
	return true;
}

const char *json_skip_space(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* The snapshots are flat objects of strings (record_to_json): read without
 * building a json-c tree, which costs most of a converged run's time (issue
 * 9). false, with r untouched, for anything else: json-c reads that. */
static bool flat_from_json(struct record *r, const char *json)
{
	const char *p = json_skip_space(json);
	size_t cap = strlen(json) + 1;
	char *key = malloc(cap), *val = malloc(cap);
	int f[DF_MAX_FIELDS * 2], nf = 0;
	char *v[DF_MAX_FIELDS * 2];
	bool ok = false;

	if (key == NULL || val == NULL || *p++ != '{')
		goto out;
	p = json_skip_space(p);
	if (*p == '}') {
		ok = true;
		p++;
	}
	while (!ok) {
		int field;
		if (*p++ != '"' || !json_read_string(&p, key, cap))
			goto out;
		p = json_skip_space(p);
		if (*p++ != ':')
			goto out;
		p = json_skip_space(p);
		if (*p++ != '"' || !json_read_string(&p, val, cap))
			goto out;
		if ((field = field_find(key)) >= 0) {
			if (nf == DF_MAX_FIELDS * 2)
				goto out;
			f[nf] = field;
			v[nf++] = xstrdup(val);
		}
		p = json_skip_space(p);
		if (*p == '}') {
			ok = true;
			p++;
		} else if (*p++ != ',') {
			goto out;
		} else {
			p = json_skip_space(p);
		}
	}
	ok = *json_skip_space(p) == '\0';
out:
	for (int i = 0; i < nf; i++) {
		if (ok)
			record_take(r, f[i], v[i]);
		else
			free(v[i]);
	}
	free(key);
	free(val);
	return ok;
}

int record_from_json(struct record *r, const char *json)
{
	json_object *o;

	if (json != NULL && flat_from_json(r, json))
		return 0;
	o = json_tokener_parse(json);

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
