/*
 * jsonmap.c - JSON <-> canonical record helpers shared by the connectors,
 * and the connector registry.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonmap.h"
#include "../core/str.h"

extern const struct connector ghl_connector;
extern const struct connector aloware_connector;
extern const struct connector verity_connector;
extern const struct connector texting_connector;

static const struct connector *const all[] = {
	&ghl_connector, &aloware_connector, &verity_connector, &texting_connector,
};

const struct connector *connector_find(const char *name)
{
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (strcmp(all[i]->name, name) == 0)
			return all[i];
	return NULL;
}

const struct system_kind *const *connector_kinds(void)
{
	static const struct system_kind *kinds[sizeof(all) / sizeof(all[0]) + 1];

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		kinds[i] = all[i]->kind;
	return kinds;
}

bool connector_carries(const struct connector *c, const struct system_conf *sc, int f)
{
	if (f < F_NBUILTIN)
		return (c->fields & FIELD_BIT(f)) != 0;
	return sc->field_key[f] != NULL;
}

bool connector_can_write(const struct connector *c, const struct system_conf *sc, int f)
{
	if (f < F_NBUILTIN)
		return (c->writable & FIELD_BIT(f)) != 0;
	return sc->field_key[f] != NULL;
}

void connector_page_clear(struct connector_page *page)
{
	for (int i = 0; i < page->nrecs; i++)
		record_clear(&page->recs[i]);
	for (int i = 0; i < page->nbad; i++) {
		free(page->bad[i].remote_id);
		free(page->bad[i].reason);
	}
	for (int i = 0; i < page->nevents; i++)
		event_clear(&page->events[i]);
	free(page->recs);
	free(page->events);
	free(page->bad);
	memset(page, 0, sizeof(*page));
}

/*
 * Reading JSON exactly. json-c reads an integer literal beyond 64 bits as
 * the nearest 64-bit value, so two such ids would collapse into one. Before
 * parsing, such a literal is rewritten as a string marked by a leading NUL
 * and '#' ("\u0000#<digits>"): ids read it back as its exact digits
 * (jm_id_text) and every other reader refuses it as a number, since a
 * string we accept never holds a NUL. The tokener's depth is raised from
 * json-c's 32 (real payloads nest deeper in fields we ignore) and stays
 * bounded.
 */
#define JM_MAX_DEPTH 512
#define BIG_MARK_LEN 2          /* "\0#" once parsed */

static bool int_overflows(const char *digits, size_t n, bool negative)
{
	const char *limit = negative ? "9223372036854775808" : "18446744073709551615";
	size_t ln = strlen(limit);

	return n > ln || (n == ln && memcmp(digits, limit, n) > 0);
}

/* Whether text holds a run of 19 digits or more: the shortest literal
 * that can pass 64 bits. Most answers hold none, and this look is cheaper
 * than following strings byte by byte. */
static bool long_digit_run(const char *text, size_t len)
{
	size_t run = 0;

	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)(text[i] - '0') > 9)
			run = 0;
		else if (++run >= 19)
			return true;
	}
	return false;
}

/* text with every integer literal beyond 64 bits quoted and marked, or
 * NULL when there is none; *n is its length. */
static char *quote_big_ints(const char *text, size_t len, size_t *n)
{
	struct strbuf sb;
	bool found = false, in_string = false;
	size_t from = 0;

	if (!long_digit_run(text, len))
		return NULL;
	sb_init(&sb);
	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		size_t j, k, end;

		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
			continue;
		}
		if (c == '"') {
			in_string = true;
			continue;
		}
		if (c != '-' && !(c >= '0' && c <= '9'))
			continue;
		j = i + (c == '-');
		for (k = j; k < len && text[k] >= '0' && text[k] <= '9'; k++)
			;
		for (end = k; end < len && text[end] && strchr(".eE+-0123456789", text[end]); end++)
			;
		if (end == k && int_overflows(text + j, k - j, c == '-')) {
			sb_addn(&sb, text + from, i - from);
			sb_add(&sb, "\"\\u0000#");
			sb_addn(&sb, text + i, k - i);
			sb_add(&sb, "\"");
			from = k;
			found = true;
		}
		i = end > i ? end - 1 : i;
	}
	if (!found) {
		sb_free(&sb);
		return NULL;
	}
	sb_addn(&sb, text + from, len - from);
	*n = sb.len;
	return sb_detach(&sb);
}

json_object *jm_parse_text(const char *text, size_t len)
{
	/* One tokener for the process, reset per answer: a new one zeroes
	 * its JM_MAX_DEPTH levels each time, which cost as much as parsing
	 * a contact (the binary is single-threaded). */
	static struct json_tokener *tok;
	json_object *o;
	size_t n = 0;
	char *quoted;

	if (text == NULL || len > INT_MAX)
		return NULL;
	if (tok == NULL && (tok = json_tokener_new_ex(JM_MAX_DEPTH)) == NULL)
		return NULL;
	json_tokener_reset(tok);
	quoted = quote_big_ints(text, len, &n);
	o = json_tokener_parse_ex(tok, quoted ? quoted : text, (int)(quoted ? n : len));
	if (json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(o);
		o = NULL;
	}
	free(quoted);
	return o;
}

json_object *jm_parse(const struct http_response *resp, const char *system, struct df_err *err)
{
	json_object *o = resp->body ? jm_parse_text(resp->body, resp->len) : NULL;

	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		df_fail(err, DF_FAIL_TEMP, "%s: answer (HTTP %ld, %zu bytes) is not a JSON object",
			system, resp->status, resp->len);
		return NULL;
	}
	return o;
}

static bool big_marked(const char *s, size_t n)
{
	return n > BIG_MARK_LEN && s[0] == '\0' && s[1] == '#';
}

const char *jm_string_of(json_object *v, const char *key, struct df_err *err)
{
	const char *s = json_object_get_string(v);
	size_t n = (size_t)json_object_get_string_len(v);

	if (big_marked(s, n)) {
		df_fail(err, DF_FAIL_INPUT, "field %s is a number, not a string", key);
		return NULL;
	}
	if (strlen(s) != n) {
		df_fail(err, DF_FAIL_INPUT, "field %s holds a NUL character", key);
		return NULL;
	}
	if (!str_utf8_valid(s, n)) {
		df_fail(err, DF_FAIL_INPUT, "field %s is not valid UTF-8", key);
		return NULL;
	}
	return s;
}

int jm_id_text(json_object *v, const char *key, char **out, struct df_err *err)
{
	const char *s;

	*out = NULL;
	if (json_object_is_type(v, json_type_int)) {
		/* int64 or uint64, printed exactly as json-c holds it */
		*out = xstrdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
		return 0;
	}
	if (json_object_is_type(v, json_type_string)) {
		s = json_object_get_string(v);
		if (big_marked(s, (size_t)json_object_get_string_len(v))) {
			*out = xstrdup(s + BIG_MARK_LEN);
			return 0;
		}
		if ((s = jm_string_of(v, key, err)) == NULL)
			return -1;
		if (!str_blank(s) && strlen(s) < 256) {
			*out = xstrdup(s);
			return 0;
		}
	}
	return df_fail(err, DF_FAIL_INPUT, "record id %s is not a usable id", key);
}

int jm_get_string(json_object *o, const char *key, char **out, struct df_err *err)
{
	json_object *v;
	const char *s;

	*out = NULL;
	if (!json_object_object_get_ex(o, key, &v) || v == NULL)
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return df_fail(err, DF_FAIL_INPUT, "field %s is a %s, not a string", key,
			       json_type_to_name(json_object_get_type(v)));
	if ((s = jm_string_of(v, key, err)) == NULL)
		return -1;
	*out = xstrdup(s);
	return 0;
}

int jm_read_fields(json_object *o, const struct field_key *map, struct record *r,
		   struct df_err *err)
{
	for (; map->key; map++) {
		char *v;
		if (jm_get_string(o, map->key, &v, err))
			return -1;
		record_take(r, map->field, v ? v : xstrdup(""));
	}
	return 0;
}

int jm_read_set(json_object *o, const char *key, struct record *r, int f, struct df_err *err)
{
	json_object *arr;
	const char **m;
	size_t n;

	if (!json_object_object_get_ex(o, key, &arr) || arr == NULL) {
		record_take(r, f, xstrdup(""));
		return 0;
	}
	if (!json_object_is_type(arr, json_type_array))
		return df_fail(err, DF_FAIL_INPUT, "field %s is not an array", key);
	n = json_object_array_length(arr);
	m = xcalloc(n + 1, sizeof(*m));
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(arr, i);
		if (!json_object_is_type(e, json_type_string)) {
			free(m);
			return df_fail(err, DF_FAIL_INPUT, "field %s holds a non-string", key);
		}
		if ((m[i] = jm_string_of(e, key, err)) == NULL) {
			free(m);
			return -1;
		}
	}
	record_take(r, f, set_from_array(m, (int)n));
	free(m);
	return 0;
}

int jm_read_flag(json_object *o, const char *parent, const char *key, struct record *r, int f,
		 struct df_err *err)
{
	json_object *v;

	(void)err;
	if (o == NULL || !json_object_object_get_ex(o, key, &v) || v == NULL)
		return 0;
	if (!json_object_is_type(v, json_type_boolean)) {
		/* The safe direction (I4): an opt-out we cannot read holds. */
		record_set(r, f, "true");
		record_problem(r, "field %s%s%s is not true or false: read as opted out until it is fixed",
			       parent ? parent : "", parent ? "." : "", key);
		return 0;
	}
	record_set(r, f, json_object_get_boolean(v) ? "true" : "false");
	return 0;
}

int jm_read_id(json_object *o, const char *key, struct record *r, struct df_err *err)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || v == NULL)
		return df_fail(err, DF_FAIL_INPUT, "record has no %s", key);
	return jm_id_text(v, key, &r->remote_id, err);
}

int jm_read_time(json_object *o, const char *key, struct record *r, struct df_err *err)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return df_fail(err, DF_FAIL_INPUT, "record has no %s timestamp", key);
	r->updated_ms = time_parse_iso(json_object_get_string(v));
	if (r->updated_ms < 0)
		return df_fail(err, DF_FAIL_INPUT, "%s is not an ISO-8601 timestamp", key);
	return 0;
}

const char *jm_key(const struct field_key *map, int f)
{
	for (; map->key; map++)
		if (map->field == f)
			return map->key;
	return NULL;
}

void jm_put(json_object *o, const char *key, const char *value, bool blank_as_null)
{
	if (blank_as_null && str_blank(value))
		json_object_object_add(o, key, NULL);
	else
		json_object_object_add(o, key, json_object_new_string(value ? value : ""));
}

json_object *jm_set_array(const char *set)
{
	json_object *arr = json_object_new_array();
	char **v;
	int n = set_split(set, &v);

	for (int i = 0; i < n; i++)
		json_object_array_add(arr, json_object_new_string(v[i]));
	free(v);
	return arr;
}

/* Records a page item that could not be read; its id when it has one. */
static void page_bad(struct connector_page *page, json_object *item, const char *id_key,
		     const char *known_id, const struct df_err *e)
{
	json_object *id;

	page->bad = xrealloc(page->bad, (size_t)(page->nbad + 1) * sizeof(*page->bad));
	page->bad[page->nbad].remote_id = xstrdup(known_id);
	if (known_id == NULL && json_object_is_type(item, json_type_object) &&
	    json_object_object_get_ex(item, id_key, &id) && id != NULL)
		jm_id_text(id, id_key, &page->bad[page->nbad].remote_id, NULL);
	page->bad[page->nbad].reason = xstrdup(e->fail == DF_FAIL_INPUT ? e->msg : "item is not a JSON object");
	page->nbad++;
}

int jm_page_add(struct connector_page *page, json_object *item, const char *id_key,
		int (*parse)(void *self, json_object *o, struct record *r, struct df_err *err),
		void *self, struct df_err *err)
{
	struct record r;
	struct df_err e = { 0 };

	record_init(&r);
	if (json_object_is_type(item, json_type_object) && parse(self, item, &r, &e) == 0) {
		page->recs = xrealloc(page->recs, (size_t)(page->nrecs + 1) * sizeof(*page->recs));
		page->recs[page->nrecs++] = r;
		return 0;
	}
	if (e.fail != DF_OK && e.fail != DF_FAIL_INPUT) {
		record_clear(&r);
		*err = e;
		return -1;
	}
	page_bad(page, item, id_key, r.remote_id, &e);
	record_clear(&r);
	return 0;
}

/*
 * A listing read the cheap way. Most records of a listing are listed again
 * unchanged (the lookback window, a full run): those are not parsed at all.
 * The answer's text is split into its items by their brackets alone; each
 * item is digested as bytes (with how this connector reads them: the
 * configured keys and the custom fields' ids), and only an item the
 * engine does not hold unchanged (page->same) is parsed, as before. Two
 * equal digests mean the same bytes read the same way, so an item taken
 * unchanged was parsed whole, from the same bytes, when its digest was
 * kept. Anything unusual in the answer's shape (an escape in a key or in
 * the cursor, an item that is not an object, a key twice) makes the
 * caller parse the whole answer, the old way: this path only ever skips
 * work, never changes what is read.
 */
struct span {
	const char *p;
	size_t n;
};

static const char *skip_ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* Whether one of the eight bytes of w is a quote or a backslash (the
 * classic test for a zero byte, on w with each of them xored away). */
static bool quote_or_backslash(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');

	return (((q - ones) & ~q) | ((b - ones) & ~b)) & highs;
}

/* Past the closing quote of the string opening at p; NULL when it does not
 * end. *esc says it holds a backslash. */
static const char *string_end(const char *p, const char *e, bool *esc)
{
	for (p++; p < e; p++) {
		uint64_t w;

		/* Eight bytes a step to the next quote or backslash. */
		while (e - p >= 8) {
			memcpy(&w, p, sizeof(w));
			if (quote_or_backslash(w))
				break;
			p += 8;
		}
		while (p < e && *p != '"' && *p != '\\')
			p++;
		if (p >= e)
			break;
		if (*p == '"')
			return p + 1;
		*esc = true;
		p++;            /* the escaped byte */
	}
	return NULL;
}

/* The bytes that end a scalar or matter inside an object or array. */
static const unsigned char *json_marks(void)
{
	static unsigned char m[256];

	if (!m['"']) {
		for (const char *c = ",}] \t\n\r{[\":"; *c; c++)
			m[(unsigned char)*c] = 1;
	}
	return m;
}

/* Past the value starting at p; NULL when the text ends first or there is
 * none. Brackets and strings only: json-c reads the rest when the value
 * is parsed. */
static const char *value_end(const char *p, const char *e)
{
	const unsigned char *mark = json_marks();
	const char *start = p;
	int depth = 0;
	bool esc;

	if (p >= e)
		return NULL;
	if (*p != '{' && *p != '[' && *p != '"') {
		while (p < e && !mark[(unsigned char)*p])
			p++;
		return p > start ? p : NULL;
	}
	while (p < e) {
		switch (*p) {
		case '"':
			if ((p = string_end(p, e, &esc)) == NULL)
				return NULL;
			break;
		case '{': case '[':
			depth++;
			p++;
			break;
		case '}': case ']':
			depth--;
			p++;
			break;
		default:
			p++;
			while (p < e && !mark[(unsigned char)*p])
				p++;
			continue;
		}
		if (depth == 0)
			return p;
	}
	return NULL;
}

/* The values of the given keys (two at most) among the members of the
 * object at p (its '{'); a key not found has a NULL span. Returns past the
 * object, or NULL when it is not one, a key holds an escape, or a wanted
 * key comes twice. */
static const char *object_members(const char *p, const char *e, const char *const *keys,
				  struct span *vals, int nkeys)
{
	size_t klen[2];

	if (nkeys > 2)
		return NULL;
	for (int i = 0; i < nkeys; i++) {
		vals[i] = (struct span){ NULL, 0 };
		klen[i] = strlen(keys[i]);
	}
	if (p >= e || *p != '{')
		return NULL;
	p = skip_ws(p + 1, e);
	if (p < e && *p == '}')
		return p + 1;
	for (;;) {
		const char *k = p + 1, *v;
		size_t kn;
		bool esc = false;

		if (p >= e || *p != '"' || (p = string_end(p, e, &esc)) == NULL || esc)
			return NULL;
		kn = (size_t)(p - 1 - k);
		p = skip_ws(p, e);
		if (p >= e || *p != ':')
			return NULL;
		p = skip_ws(p + 1, e);
		if ((v = value_end(p, e)) == NULL)
			return NULL;
		for (int i = 0; i < nkeys; i++) {
			if (kn != klen[i] || memcmp(k, keys[i], kn) != 0)
				continue;
			if (vals[i].p != NULL)
				return NULL;
			vals[i] = (struct span){ p, (size_t)(v - p) };
		}
		p = skip_ws(v, e);
		if (p < e && *p == ',') {
			p = skip_ws(p + 1, e);
			continue;
		}
		return p < e && *p == '}' ? p + 1 : NULL;
	}
}

/* The text of a string value without its quotes, when it holds no escape
 * (then it is exactly what json-c would read). */
static bool plain_string(struct span v, struct span *out)
{
	bool esc = false;

	if (v.n < 2 || v.p[0] != '"' || string_end(v.p, v.p + v.n, &esc) != v.p + v.n || esc)
		return false;
	*out = (struct span){ v.p + 1, v.n - 2 };
	return true;
}

/* Copies a span into buf as a C string; false when it does not fit or
 * holds a NUL. */
static bool span_text(struct span v, char *buf, size_t size)
{
	if (v.n == 0 || v.n >= size || memchr(v.p, '\0', v.n) != NULL)
		return false;
	memcpy(buf, v.p, v.n);
	buf[v.n] = '\0';
	return true;
}

/* The start of an item's digest: what decides how this connector reads an
 * item besides its bytes (the binary's version for its code, the custom
 * fields' keys and, when resolved, ids and types). */
static void raw_seed(const struct conn *c, unsigned long long h[2])
{
	hash128_init(h);
	hash128_add(h, DF_VERSION, sizeof(DF_VERSION));
	for (int f = F_NBUILTIN; f < fields_count(); f++) {
		const char *parts[3] = { c->sc->field_key[f], c->field_id[f], c->field_type[f] };
		for (int i = 0; i < 3; i++)
			hash128_add(h, parts[i] ? parts[i] : "\1", parts[i] ? strlen(parts[i]) + 1 : 2);
	}
}

/* The digest of an item's bytes after the seed, eight bytes a step (the
 * listing's every byte passes here). */
static void raw_digest(const unsigned long long seed[2], const char *p, size_t n,
		       unsigned char out[RECORD_RAW_DIGEST])
{
	unsigned long long h[2] = { seed[0] ^ n, seed[1] + n }, w;

	for (size_t i = 0; i < n; i += 8) {
		w = 0;
		memcpy(&w, p + i, n - i < 8 ? n - i : 8);
		h[0] = (h[0] ^ w) * 0x9E3779B97F4A7C15ULL;
		h[0] ^= h[0] >> 32;
		h[1] = (h[1] + w) * 0xC2B2AE3D27D4EB4FULL;
		h[1] ^= h[1] >> 29;
	}
	for (int k = 0; k < 2; k++) {   /* every bit of the last step reaches every bit */
		h[k] ^= h[k] >> 33;
		h[k] *= 0xFF51AFD7ED558CCDULL;
		h[k] ^= h[k] >> 33;
		h[k] *= 0xC4CEB9FE1A85EC53ULL;
		h[k] ^= h[k] >> 33;
	}
	hash128_out(h, out);
}

/* One listed item, the object at p: taken unchanged when its id and update
 * time read from its bytes and its digest are what the caller holds, else
 * parsed as before (and marked when the caller compared it: it differs).
 * *q is set past it. 0: done; 1: not an item json-c reads (the caller
 * reads the answer whole, which fails it as before); -1: failure. */
static int raw_item(struct conn *c, const unsigned long long seed[2], const char *p, const char *e,
		    const char **q, const struct jm_raw *l, struct connector_page *page, struct df_err *err)
{
	const char *keys[2] = { "id", l->time_key };
	unsigned char raw[RECORD_RAW_DIGEST];
	struct span v[2], id, when;
	char idbuf[256], when_buf[64];
	long long updated;
	json_object *o;
	int n = page->nrecs, rc, same = -1;
	bool found = (*q = object_members(p, e, keys, v, 2)) != NULL;

	if (!found && (*q = value_end(p, e)) == NULL)
		return 1;
	raw_digest(seed, p, (size_t)(*q - p), raw);
	if (found && v[0].p && v[1].p && plain_string(v[1], &when) && span_text(when, when_buf, sizeof(when_buf)) &&
	    (updated = time_parse_iso(when_buf)) >= 0 &&
	    (plain_string(v[0], &id) || (id = v[0], strspn(id.p, "-0123456789") >= id.n)) &&
	    span_text(id, idbuf, sizeof(idbuf)) && (same = page->same(page->same_arg, idbuf, raw)) > 0) {
		struct record r;
		record_init(&r);
		r.remote_id = xstrdup(idbuf);
		r.updated_ms = updated;
		r.has_raw = r.listed_same = true;
		memcpy(r.raw, raw, sizeof(raw));
		page->recs = xrealloc(page->recs, (size_t)(page->nrecs + 1) * sizeof(*page->recs));
		page->recs[page->nrecs++] = r;
		return 0;
	}
	if ((o = jm_parse_text(p, (size_t)(*q - p))) == NULL)
		return 1;
	rc = jm_page_add(page, o, "id", l->parse, c, err);
	json_object_put(o);
	if (rc == 0 && page->nrecs > n) {
		page->recs[n].has_raw = true;
		page->recs[n].listed_changed = same == 0;
		memcpy(page->recs[n].raw, raw, sizeof(raw));
	}
	return rc;
}

void jm_page_restart(struct connector_page *page)
{
	int (*same)(void *, const char *, const unsigned char *) = page->same;
	void *arg = page->same_arg;

	connector_page_clear(page);
	page->same = same;
	page->same_arg = arg;
}

static int id_order(const void *a, const void *b)
{
	const struct record *x = *(const struct record *const *)a, *y = *(const struct record *const *)b;

	return strcmp(x->remote_id, y->remote_id);
}

/* True when two records of the page share an id: observing one could
 * change what the other was compared with, so the page is read whole,
 * every item observed in its order, as before. */
static bool unparsed_twice(const struct connector_page *page)
{
	const struct record **v;
	bool twice = false, any = false;

	for (int i = 0; i < page->nrecs && !any; i++)
		any = page->recs[i].listed_same || page->recs[i].listed_changed;
	if (!any || page->nrecs < 2)
		return false;
	v = xcalloc((size_t)page->nrecs, sizeof(*v));
	for (int i = 0; i < page->nrecs; i++)
		v[i] = &page->recs[i];
	qsort(v, (size_t)page->nrecs, sizeof(*v), id_order);
	for (int i = 1; i < page->nrecs && !twice; i++)
		twice = strcmp(v[i - 1]->remote_id, v[i]->remote_id) == 0;
	free(v);
	return twice;
}

int jm_raw_listing(struct conn *c, const char *text, size_t len, const struct jm_raw *l,
		   struct connector_page *page, struct jm_raw_out *out, struct df_err *err)
{
	const char *keys[2] = { l->items, l->next };
	const char *e = text + len, *p, *end;
	unsigned long long seed[2];
	struct span v[2], cursor;

	memset(out, 0, sizeof(*out));
	if (page->same == NULL || l->time_key == NULL || text == NULL || page->nrecs || page->nbad)
		return 0;
	p = object_members(skip_ws(text, e), e, keys, v, l->next ? 2 : 1);
	if (p == NULL || skip_ws(p, e) != e || v[0].p == NULL || v[0].p[0] != '[')
		return 0;
	if (l->next && v[1].p && v[1].p[0] == '"') {
		if (!plain_string(v[1], &cursor) || memchr(cursor.p, '\0', cursor.n))
			return 0;
		out->next = cursor.p;
		out->next_len = cursor.n;
	}
	raw_seed(c, seed);
	end = v[0].p + v[0].n - 1;      /* its ']' */
	p = skip_ws(v[0].p + 1, end);
	while (p < end) {
		const char *q;
		int rc = *p == '{' ? raw_item(c, seed, p, end, &q, l, page, err) : 1;

		if (rc < 0)
			return -1;
		if (rc > 0) {
			jm_page_restart(page);
			return 0;
		}
		out->last = p;
		out->last_len = (size_t)(q - p);
		out->count++;
		p = skip_ws(q, end);
		if (p == end)
			break;
		if (*p != ',' || (p = skip_ws(p + 1, end)) == end) {
			jm_page_restart(page);     /* not a list json-c reads as one */
			return 0;
		}
	}
	if (unparsed_twice(page)) {
		jm_page_restart(page);
		return 0;
	}
	return 1;
}

int jm_page_add_event(struct connector_page *page, json_object *item, const char *id_key,
		      int (*parse)(void *self, json_object *o, struct event *ev, struct df_err *err),
		      void *self, struct df_err *err)
{
	struct event ev;
	struct df_err e = { 0 };

	event_init(&ev);
	if (json_object_is_type(item, json_type_object) && parse(self, item, &ev, &e) == 0) {
		page->events = xrealloc(page->events, (size_t)(page->nevents + 1) * sizeof(*page->events));
		page->events[page->nevents++] = ev;
		return 0;
	}
	if (e.fail != DF_OK && e.fail != DF_FAIL_INPUT) {
		event_clear(&ev);
		*err = e;
		return -1;
	}
	page_bad(page, item, id_key, ev.source_id, &e);
	event_clear(&ev);
	return 0;
}

/* One string member into an event attribute; non-strings are malformed. */
int jm_event_attr(json_object *o, const char *key, struct event *ev, const char *attr,
		  struct df_err *err)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || v == NULL)
		return 0;
	if (json_object_is_type(v, json_type_string)) {
		const char *s = json_object_get_string(v);
		char *id = NULL;
		if (big_marked(s, (size_t)json_object_get_string_len(v)) && jm_id_text(v, key, &id, err) == 0) {
			event_set(ev, attr, id);        /* a number beyond 64 bits, exact */
			free(id);
			return 0;
		}
		if ((s = jm_string_of(v, key, err)) == NULL)
			return -1;
		event_set(ev, attr, s);
	} else if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_boolean))
		event_set(ev, attr, json_object_to_json_string(v));
	else
		return df_fail(err, DF_FAIL_INPUT, "field %s is a %s", key,
			       json_type_to_name(json_object_get_type(v)));
	return 0;
}

char *jm_to_string(json_object *o)
{
	return xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
}

struct http_client *jm_http_open(const struct system_conf *sc, const struct config *cfg,
				 const char *auth, struct df_err *err)
{
	/* Connectors are opened as the run starts, so the run's deadline
	 * counts from here (the engine stops its stages at the same time). */
	struct http_opts o = {
		.system = sc->name, .base_url = sc->base_url, .auth_header = auth,
		.secret = sc->token ? sc->token : sc->oauth_client_secret,
		.timeout = sc->timeout, .max_attempts = sc->max_attempts,
		.max_retry_after = sc->max_retry_after, .rate_limit = sc->rate_limit,
		.rate_window = sc->rate_window, .max_requests = sc->max_requests,
		.tls_verify = sc->tls_verify,
		.max_body = (size_t)cfg->max_response_mb << 20,
		.deadline_ms = time_now_ms() + cfg->deadline * 1000LL,
	};

	return http_new(&o, err);
}

static void *conn_open(const struct system_conf *sc, const struct config *cfg, const char *token,
		       struct df_err *err)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	char *auth = token ? xasprintf("Authorization: Bearer %s", token) : NULL;

	c->sc = sc;
	c->http = jm_http_open(sc, cfg, auth, err);
	if (auth) {
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	if (c->http == NULL) {
		free(c);
		return NULL;
	}
	return c;
}

void *jm_open_bearer(const struct system_conf *sc, const struct config *cfg, struct df_err *err)
{
	return conn_open(sc, cfg, sc->token, err);
}

void *jm_open_plain(const struct system_conf *sc, const struct config *cfg, struct df_err *err)
{
	return conn_open(sc, cfg, NULL, err);
}

void *jm_open_token(const struct system_conf *sc, const struct config *cfg, const char *token,
		    struct df_err *err)
{
	return conn_open(sc, cfg, token, err);
}

long long jm_daily_left(void *self, long long *limit)
{
	struct conn *c = self;
	struct http_limits l;

	http_limits_now(c->http, &l);
	*limit = l.daily_limit;
	return l.daily_remaining;
}

void jm_close(void *self)
{
	struct conn *c = self;

	if (c) {
		http_free(c->http);
		for (int f = 0; f < DF_MAX_FIELDS; f++) {
			free(c->field_id[f]);
			free(c->field_type[f]);
		}
		free(c);
	}
}

long jm_requests(void *self)
{
	return http_requests_sent(((struct conn *)self)->http);
}

int jm_list_page(struct conn *c, const struct jm_listing *l, long long since_ms, char **cursor,
		 struct connector_page *page, struct df_err *err)
{
	struct http_response resp;
	struct strbuf url;
	char since[40];
	json_object *o, *arr, *next;
	int rc;

	time_format_iso(since_ms, since, sizeof(since));
	sb_init(&url);
	sb_addf(&url, "%s?", l->path);
	if (l->token_in_query) {
		sb_add(&url, "api_token=");
		http_query_escape(&url, c->sc->token);
		sb_add(&url, "&");
	}
	sb_add(&url, "updated_since=");
	http_query_escape(&url, since);
	sb_addf(&url, "&limit=%d", c->sc->page_size);
	if (*cursor) {
		sb_add(&url, "&cursor=");
		http_query_escape(&url, *cursor);
	}
	rc = http_request(c->http, "GET", url.buf, NULL, NULL, &resp, err);
	explicit_bzero(url.buf, url.len);
	sb_free(&url);
	free(*cursor);
	*cursor = NULL;
	if (rc == 0 && l->record) {
		const struct jm_raw raw = { l->items, l->next, l->time_key, l->record };
		struct jm_raw_out ro;
		int done = jm_raw_listing(c, resp.body, resp.len, &raw, page, &ro, err);
		if (done > 0 && ro.next) {
			*cursor = xcalloc(ro.next_len + 1, 1);
			memcpy(*cursor, ro.next, ro.next_len);
		}
		if (done) {
			http_response_free(&resp);
			return done > 0 ? 0 : -1;
		}
	}
	o = rc ? NULL : jm_parse(&resp, c->sc->name, err);
	http_response_free(&resp);
	if (o == NULL)
		return -1;
	if (!json_object_object_get_ex(o, l->items, &arr) || !json_object_is_type(arr, json_type_array)) {
		json_object_put(o);
		return df_fail(err, DF_FAIL_TEMP, "%s: listing answer has no %s array", c->sc->name, l->items);
	}
	for (size_t i = 0; i < json_object_array_length(arr) && rc == 0; i++) {
		json_object *item = json_object_array_get_idx(arr, i);
		rc = l->record ? jm_page_add(page, item, "id", l->record, c, err)
			       : jm_page_add_event(page, item, "id", l->event, c, err);
	}
	if (rc == 0 && json_object_object_get_ex(o, l->next, &next) && json_object_is_type(next, json_type_string))
		*cursor = xstrdup(json_object_get_string(next));
	json_object_put(o);
	return rc;
}
