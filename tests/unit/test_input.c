/*
 * test_input.c - reading untrusted input exactly (issue 6, item 8): UTF-8
 * validation (core/str.c), the escaped event log (core/log.c), URL path
 * segments (http/http.c) and the JSON readers every connector shares
 * (connectors/jsonmap.c): depth, exact ids, NUL and UTF-8 checks, and
 * malformed opt-outs read as opted out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#include "../../connectors/jsonmap.h"
#include "../../core/log.h"
#include "../../core/str.h"

static void test_utf8_valid(void **state)
{
	static const struct { const char *label, *text; bool valid; } rows[] = {
		{ "ascii", "Ann Lee", true },
		{ "two bytes", "Jos\xc3\xa9", true },
		{ "three bytes", "\xe2\x82\xac", true },
		{ "four bytes", "\xf0\x9f\x98\x80", true },
		{ "lone continuation", "a\x80", false },
		{ "0xff", "Ann\xff", false },
		{ "truncated", "\xe2\x82", false },
		{ "overlong slash", "\xc0\xaf", false },
		{ "overlong three", "\xe0\x80\xaf", false },
		{ "surrogate", "\xed\xa0\x80", false },
		{ "above U+10FFFF", "\xf4\x90\x80\x80", false },
	};
	int bad = 0;

	(void)state;
	for (int i = 0; i < N(rows); i++)
		bad += check_int(rows[i].label, "valid", str_utf8_valid(rows[i].text, strlen(rows[i].text)),
				 rows[i].valid);
	assert_int_equal(bad, 0);
}

static void test_log_escapes_values(void **state)
{
	static const struct { const char *label, *fmt, *value, *want; } rows[] = {
		{ "plain", "record=%s x=1", "ghl001", "record=ghl001 x=1" },
		{ "newline forges no line", "record=%s", "x\n2026 info event=forged",
		  "record=\"x\\n2026 info event=forged\"" },
		{ "space forges no key", "record=%s", "a status=ok", "record=\"a status=ok\"" },
		{ "quoted by the format", "reason=\"%s\"", "say \"hi\"\r\n", "reason=\"say \\\"hi\\\"\\r\\n\"" },
		{ "control byte", "id=%s", "a\x01" "b", "id=\"a\\x01b\"" },
		{ "backslash", "id=%s", "a\\b", "id=\"a\\\\b\"" },
	};
	int bad = 0;

	(void)state;
	for (int i = 0; i < N(rows); i++) {
		char *got = log_format(rows[i].fmt, rows[i].value);
		bad += check_str(rows[i].label, "line", got, rows[i].want);
		free(got);
	}
	{
		char *got = log_format("a=%d b=%lld c=%zu d=%.*s e=%ld %%", -3, 1234567890123LL, (size_t)7, 3,
				       "abcdef", 9L);
		bad += check_str("numbers", "line", got, "a=-3 b=1234567890123 c=7 d=abc e=9 %");
		free(got);
	}
	assert_int_equal(bad, 0);
}

static void test_path_segments_are_escaped(void **state)
{
	static const struct { const char *label, *id, *want; } rows[] = {
		{ "plain", "ver_000002", "/api/v1/contacts/ver_000002" },
		{ "slashes and dots", "evil/../ver_000002", "/api/v1/contacts/evil%2F..%2Fver_000002" },
		{ "dot dot", "..", "/api/v1/contacts/%2E%2E" },
		{ "dot", ".", "/api/v1/contacts/%2E" },
		{ "query and fragment", "a?b#c", "/api/v1/contacts/a%3Fb%23c" },
		{ "newline and space", "a\nb c", "/api/v1/contacts/a%0Ab%20c" },
	};
	int bad = 0;

	(void)state;
	for (int i = 0; i < N(rows); i++) {
		char *got = http_path("/api/v1/contacts/", rows[i].id, NULL);
		bad += check_str(rows[i].label, "path", got, rows[i].want);
		free(got);
	}
	{
		char *got = http_path("/contacts/", "a/b", "/notes");
		bad += check_str("suffix", "path", got, "/contacts/a%2Fb/notes");
		free(got);
	}
	assert_int_equal(bad, 0);
}

/* The id of {"id": <text>} as jm_read_id reads it, or the error. */
static char *id_of(const char *json)
{
	json_object *o = jm_parse_text(json, strlen(json));
	struct record r;
	struct df_err err = { 0 };
	char *out;

	if (o == NULL)
		return xstrdup("(not JSON)");
	record_init(&r);
	out = jm_read_id(o, "id", &r, &err) == 0 ? xstrdup(r.remote_id) : xasprintf("error: %s", err.msg);
	record_clear(&r);
	json_object_put(o);
	return out;
}

static void test_ids_are_exact(void **state)
{
	static const struct { const char *label, *json, *want; } rows[] = {
		{ "small", "{\"id\": 1001}", "1001" },
		{ "int64 max", "{\"id\": 9223372036854775807}", "9223372036854775807" },
		{ "uint64", "{\"id\": 18446744073709551614}", "18446744073709551614" },
		{ "uint64 max", "{\"id\": 18446744073709551615}", "18446744073709551615" },
		{ "beyond 64 bits", "{\"id\": 99999999999999999999}", "99999999999999999999" },
		{ "beyond, neighbour", "{\"id\": 99999999999999999998}", "99999999999999999998" },
		{ "negative beyond", "{\"id\": -99999999999999999999}", "-99999999999999999999" },
		{ "string", "{\"id\": \"ghl001\"}", "ghl001" },
		{ "digits in a string stay", "{\"id\": \"123456789012345678901234\"}", "123456789012345678901234" },
		{ "big int inside a string is text", "{\"x\": \"1 99999999999999999999\", \"id\": 5}", "5" },
		{ "double", "{\"id\": 1.5e30}", "error: record id id is not a usable id" },
		{ "blank", "{\"id\": \" \"}", "error: record id id is not a usable id" },
		{ "NUL", "{\"id\": \"a\\u0000b\"}", "error: field id holds a NUL character" },
	};
	int bad = 0;

	(void)state;
	for (int i = 0; i < N(rows); i++) {
		char *got = id_of(rows[i].json);
		bad += check_str(rows[i].label, "id", got, rows[i].want);
		free(got);
	}
	assert_int_equal(bad, 0);
}

/* {"v": <text>} through jm_get_string: the value, or the error. */
static char *string_of(const char *json)
{
	json_object *o = jm_parse_text(json, strlen(json));
	struct df_err err = { 0 };
	char *v = NULL, *out;

	if (o == NULL)
		return xstrdup("(not JSON)");
	out = jm_get_string(o, "firstName", &v, &err) == 0 ? xstrdup(v ? v : "(absent)")
							    : xasprintf("error: %s", err.msg);
	free(v);
	json_object_put(o);
	return out;
}

static void test_strings_are_checked(void **state)
{
	static const struct { const char *label, *json, *want; } rows[] = {
		{ "plain", "{\"firstName\": \"Ann\"}", "Ann" },
		{ "escaped unicode", "{\"firstName\": \"Jos\\u00e9\"}", "Jos\xc3\xa9" },
		{ "escaped NUL", "{\"firstName\": \"Ann\\u0000Evil\"}", "error: field firstName holds a NUL character" },
		{ "invalid UTF-8", "{\"firstName\": \"Ann\xff\"}", "error: field firstName is not valid UTF-8" },
		{ "a number", "{\"firstName\": 12}", "error: field firstName is a int, not a string" },
		{ "a number beyond 64 bits", "{\"firstName\": 123456789012345678901}",
		  "error: field firstName is a number, not a string" },
		{ "absent", "{}", "(absent)" },
	};
	int bad = 0;

	(void)state;
	for (int i = 0; i < N(rows); i++) {
		char *got = string_of(rows[i].json);
		bad += check_str(rows[i].label, "value", got, rows[i].want);
		free(got);
	}
	assert_int_equal(bad, 0);
}

/* JSON nested depth levels deep: {"n":{"n":...1...}}. */
static char *nested(int depth)
{
	struct strbuf sb;

	sb_init(&sb);
	for (int i = 0; i < depth; i++)
		sb_add(&sb, "{\"n\":");
	sb_add(&sb, "1");
	for (int i = 0; i < depth; i++)
		sb_add(&sb, "}");
	return sb_detach(&sb);
}

static void test_depth_is_raised_and_bounded(void **state)
{
	char *deep = nested(100), *deeper = nested(5000);
	json_object *o;

	(void)state;
	o = jm_parse_text(deep, strlen(deep));
	assert_non_null(o);     /* json-c's default stops at 32 */
	json_object_put(o);
	assert_null(jm_parse_text(deeper, strlen(deeper)));
	assert_null(jm_parse_text("{\"a\": [1, 2", 11));
	free(deep);
	free(deeper);
}

static void test_malformed_optout_reads_as_opted_out(void **state)
{
	static const struct { const char *label, *json, *want, *problem; } rows[] = {
		{ "true", "{\"sms\": true}", "true", NULL },
		{ "false", "{\"sms\": false}", "false", NULL },
		{ "absent", "{}", NULL, NULL },
		{ "null", "{\"sms\": null}", NULL, NULL },
		{ "a string", "{\"sms\": \"no\"}", "true",
		  "field optOuts.sms is not true or false: read as opted out until it is fixed" },
		{ "a number", "{\"sms\": 0}", "true",
		  "field optOuts.sms is not true or false: read as opted out until it is fixed" },
	};
	int bad = 0;

	(void)state;
	for (int i = 0; i < N(rows); i++) {
		json_object *o = jm_parse_text(rows[i].json, strlen(rows[i].json));
		struct df_err err = { 0 };
		struct record r;
		record_init(&r);
		bad += check_int(rows[i].label, "rc", jm_read_flag(o, "optOuts", "sms", &r, F_OPTOUT_SMS, &err), 0);
		bad += check_str(rows[i].label, "value", r.value[F_OPTOUT_SMS], rows[i].want);
		bad += check_str(rows[i].label, "problem", r.problem, rows[i].problem);
		record_clear(&r);
		json_object_put(o);
	}
	assert_int_equal(bad, 0);
}

/* The cheap listing reader (jm_raw_listing): an item the caller holds
 * unchanged comes unparsed, with its id and update time; every other item
 * is read exactly as a parse of the whole answer reads it; and a shape the
 * reader does not take leaves the page empty for the whole answer to be
 * parsed. */
static const struct field_key raw_map[] = { { F_FIRST_NAME, "name" }, { 0, NULL } };

static int raw_parse(void *self, json_object *o, struct record *r, struct df_err *err)
{
	(void)self;
	return jm_read_id(o, "id", r, err) || jm_read_time(o, "at", r, err) ||
	       jm_read_fields(o, raw_map, r, err) ? -1 : 0;
}

/* Holds the ids listed in arg (space-separated, each between spaces). */
static int raw_same(void *arg, const char *id, const unsigned char *raw)
{
	char key[300];

	(void)raw;
	snprintf(key, sizeof(key), " %s ", id);
	return strstr(arg, key) != NULL;
}

static int raw_read(const char *text, const char *held, struct connector_page *page, struct jm_raw_out *out)
{
	static struct system_conf sc;
	struct conn c = { .sc = &sc };
	const struct jm_raw l = { "items", "next", "at", raw_parse };
	struct df_err err = { 0 };

	memset(page, 0, sizeof(*page));
	page->same = raw_same;
	page->same_arg = (void *)held;
	return jm_raw_listing(&c, text, strlen(text), &l, page, out, &err);
}

static void test_raw_listing(void **state)
{
	const char *text = "{\"total\": 3, \"items\": [ {\"id\": \"a\", \"at\": \"2024-01-02T03:04:05Z\", "
			   "\"name\": \"12345678x]}{\\\"abcdefgh\\\\ij\"}, {\"name\": \"Bo\", \"id\": 7, \"at\": \"2024-01-02T03:04:06Z\", "
			   "\"deep\": {\"k\": [1, {\"id\": \"no\"}]}}, {\"id\": \"c\", \"at\": \"2024-01-02T03:04:07Z\", \"name\": \"e\\\\\"} ], "
			   "\"next\": \"p2\"}";
	static const struct { const char *label, *text; } whole[] = {
		{ "escaped key", "{\"it\\u0065ms\": [], \"items\": []}" },
		{ "trailing comma", "{\"items\": [{\"id\": \"a\", \"at\": \"2024-01-02T03:04:05Z\"},]}" },
		{ "item not an object", "{\"items\": [null]}" },
		{ "escaped cursor", "{\"items\": [], \"next\": \"p\\u0032\"}" },
		{ "items twice", "{\"items\": [], \"items\": []}" },
		{ "cut short", "{\"items\": [{\"id\": \"a\", \"at\": \"2024-01-02T03:04:05Z\"}" },
		{ "trailing text", "{\"items\": []} x" },
		{ "an id twice", "{\"items\": [{\"id\": \"a\", \"at\": \"2024-01-02T03:04:05Z\"}, "
				 "{\"id\": \"a\", \"at\": \"2024-01-02T03:04:06Z\"}]}" },
		{ "not JSON inside", "{\"items\": [{\"id\": \"b\", \"at\": \"2024-01-02T03:04:05Z\", \"x\": tru}]}" },
	};
	struct connector_page page;
	struct jm_raw_out out;
	int bad = 0;

	(void)state;
	bad += check_int("listing", "rc", raw_read(text, " a c ", &page, &out), 1);
	bad += check_int("listing", "records", page.nrecs, 3);
	bad += check_int("listing", "count", (int)out.count, 3);
	bad += check_int("listing", "cursor", out.next && out.next_len == 2 && memcmp(out.next, "p2", 2) == 0, 1);
	bad += check_int("listing", "last", out.last && strncmp(out.last, "{\"id\": \"c\"", 10) == 0, 1);
	if (page.nrecs == 3) {
		bad += check_str("held a", "id", page.recs[0].remote_id, "a");
		bad += check_int("held a", "unparsed", page.recs[0].listed_same, 1);
		bad += check_int("held a", "updated", page.recs[0].updated_ms == time_parse_iso("2024-01-02T03:04:05Z"), 1);
		bad += check_str("held a", "name", page.recs[0].value[F_FIRST_NAME], NULL);
		bad += check_str("new 7", "id", page.recs[1].remote_id, "7");
		bad += check_int("new 7", "unparsed", page.recs[1].listed_same, 0);
		bad += check_int("new 7", "digested", page.recs[1].has_raw, 1);
		bad += check_str("new 7", "name", page.recs[1].value[F_FIRST_NAME], "Bo");
		bad += check_int("held c", "unparsed", page.recs[2].listed_same, 1);
		bad += check_int("digests", "differ", memcmp(page.recs[0].raw, page.recs[2].raw, 16) != 0, 1);
	}
	connector_page_clear(&page);
	/* Nothing held: every item parsed, as a parse of the whole answer. */
	bad += check_int("none held", "rc", raw_read(text, " ", &page, &out), 1);
	bad += check_int("none held", "records", page.nrecs, 3);
	if (page.nrecs == 3) {
		bad += check_str("none held", "name a", page.recs[0].value[F_FIRST_NAME], "12345678x]}{\"abcdefgh\\ij");
		bad += check_int("none held", "unparsed", page.recs[0].listed_same, 0);
		bad += check_int("none held", "compared", page.recs[0].listed_changed, 1);
		bad += check_str("none held", "name c", page.recs[2].value[F_FIRST_NAME], "e\\");
	}
	connector_page_clear(&page);
	for (int i = 0; i < N(whole); i++) {
		bad += check_int(whole[i].label, "rc", raw_read(whole[i].text, " a ", &page, &out), 0);
		bad += check_int(whole[i].label, "records", page.nrecs + page.nbad, 0);
		connector_page_clear(&page);
	}
	assert_int_equal(bad, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf8_valid),
		cmocka_unit_test(test_log_escapes_values),
		cmocka_unit_test(test_path_segments_are_escaped),
		cmocka_unit_test(test_ids_are_exact),
		cmocka_unit_test(test_strings_are_checked),
		cmocka_unit_test(test_depth_is_raised_and_bounded),
		cmocka_unit_test(test_malformed_optout_reads_as_opted_out),
		cmocka_unit_test(test_raw_listing),
	};

	return cmocka_run_group_tests_name("input", tests, NULL, NULL);
}
