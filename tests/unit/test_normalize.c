/*
 * test_normalize.c - canonical values: phones as E.164, emails, text, sets
 * and timestamps (core/normalize.c, core/record.c, core/str.c).
 *
 * Each test walks a table of inputs and the exact canonical value expected;
 * a failing row names itself, so the table doubles as the specification of
 * what the reconciler treats as "the same phone" or "a valid email".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include <json-c/json.h>

#include "../../core/normalize.h"
#include "../../core/record.h"
#include "../../core/str.h"


/* Row checks print what is wrong and return 1 for a wrong row, so that a
 * table reports every wrong row before the test fails (expect_rows). */
static int check_bool(const char *label, bool got, bool want)
{
	if (got == want)
		return 0;
	print_error("%s: got %s, want %s\n", label, got ? "true" : "false", want ? "true" : "false");
	return 1;
}

static int check_ms(const char *text, long long got, long long want)
{
	if (got == want)
		return 0;
	print_error("time_parse_iso(\"%s\"): got %lld, want %lld\n", text, got, want);
	return 1;
}

static void expect_rows(int wrong, int rows)
{
	if (wrong)
		fail_msg("%d failed check(s) over %d rows", wrong, rows);
}

/* Phones */

static void test_phone_to_e164(void **state)
{
	static const struct { const char *in, *country, *want; } cases[] = {
		/* NANP national: 10 digits, or 11 starting with the trunk 1. */
		{ "5550102030", "US", "+15550102030" },
		{ "(555) 010-2030", "US", "+15550102030" },
		{ "555.010.2030", "US", "+15550102030" },
		{ "555/010 2030", "US", "+15550102030" },
		{ "  555-010-2030\t", "US", "+15550102030" },
		{ "15550102030", "US", "+15550102030" },
		{ "1 (555) 010-2030", "US", "+15550102030" },
		{ "(604) 555-0199", "CA", "+16045550199" },
		/* Extensions are dropped. */
		{ "555-010-2030 x123", "US", "+15550102030" },
		{ "555-010-2030X9", "US", "+15550102030" },
		{ "555-010-2030#77", "US", "+15550102030" },
		{ "555-010-2030;ext=4", "US", "+15550102030" },
		/* International prefixes: '+' and '00', whatever the default. */
		{ "+44 20 7946 0958", "US", "+442079460958" },
		{ "0044 20 7946 0958", "US", "+442079460958" },
		{ "+1 555 010 2030", "GB", "+15550102030" },
		{ "+44 20 7946 0958", "ZZ", "+442079460958" },
		{ "+44 20 7946 0958", NULL, "+442079460958" },
		/* Elsewhere one trunk 0 is dropped. */
		{ "020 7946 0958", "GB", "+442079460958" },
		{ "07700 900123", "GB", "+447700900123" },
		{ "7700 900123", "GB", "+447700900123" },
		{ "030 1234567", "de", "+49301234567" },
		/* Invalid: too short, too long, letters, NANP area 0/1, no country. */
		{ "555-0102", "US", NULL },
		{ "+1234567", "US", NULL },
		{ "+1234567890123456", "US", NULL },
		{ "020 794", "GB", NULL },
		{ "12345", "GB", NULL },
		{ "555010203", "US", NULL },
		{ "555010203011", "US", NULL },
		{ "25550102030", "US", NULL },
		{ "555-CALL-NOW", "US", NULL },
		{ "call me", "US", NULL },
		{ "+44 20 7946 095a", "US", NULL },
		{ "(055) 010-2030", "US", NULL },
		{ "(155) 010-2030", "US", NULL },
		{ "1 (055) 010-2030", "US", NULL },
		{ "1 (155) 010-2030", "US", NULL },
		{ "+0 555 010 2030", "US", NULL },
		{ "5550102030", "ZZ", NULL },
		{ "5550102030", NULL, NULL },
		{ "", "US", NULL },
		{ "   ", "US", NULL },
		{ "x123", "US", NULL },
		{ NULL, "US", NULL },
	};
	char label[128];
	int wrong = 0;

	(void)state;
	for (int i = 0; i < N(cases); i++) {
		char *got = phone_to_e164(cases[i].in, cases[i].country);
		snprintf(label, sizeof(label), "phone_to_e164(\"%s\", %s)",
			 cases[i].in ? cases[i].in : "NULL", cases[i].country ? cases[i].country : "NULL");
		wrong += check_str(label, "value", got, cases[i].want);
		free(got);
	}
	expect_rows(wrong, N(cases));
}

static void test_phone_is_e164(void **state)
{
	static const struct { const char *in; bool want; } cases[] = {
		{ "+15550102030", true },
		{ "+442079460958", true },
		{ "+12345678", true },              /* 8 digits: the shortest */
		{ "+123456789012345", true },       /* 15 digits: the longest */
		{ "+1234567", false },
		{ "+1234567890123456", false },
		{ "15550102030", false },
		{ "+05550102030", false },
		{ "+1 555 010 2030", false },
		{ "+1555010203x", false },
		{ "+", false },
		{ "", false },
		{ NULL, false },
	};
	char label[96];
	int wrong = 0;

	(void)state;
	for (int i = 0; i < N(cases); i++) {
		snprintf(label, sizeof(label), "phone_is_e164(\"%s\")", cases[i].in ? cases[i].in : "NULL");
		wrong += check_bool(label, phone_is_e164(cases[i].in), cases[i].want);
	}
	expect_rows(wrong, N(cases));
}

static void test_country_calling_code(void **state)
{
	(void)state;
	assert_int_equal(country_calling_code("US"), 1);
	assert_int_equal(country_calling_code("gb"), 44);
	assert_int_equal(country_calling_code("IE"), 353);
	assert_int_equal(country_calling_code("ZZ"), 0);
	assert_int_equal(country_calling_code(""), 0);
	assert_int_equal(country_calling_code(NULL), 0);
}

/* Emails */

static void test_email_normalize(void **state)
{
	static const struct { const char *in, *want; } cases[] = {
		{ "John.Doe@Example.COM", "john.doe@example.com" },
		{ "  ann@example.com\t\n", "ann@example.com" },
		{ "\tMIXED@Case.Org ", "mixed@case.org" },
		{ "not an email", "not an email" },
		{ "   ", "" },
		{ "", "" },
	};
	char label[96];
	int wrong = 0;

	(void)state;
	for (int i = 0; i < N(cases); i++) {
		char *got = email_normalize(cases[i].in);
		snprintf(label, sizeof(label), "email_normalize(\"%s\")", cases[i].in);
		wrong += check_str(label, "value", got, cases[i].want);
		free(got);
	}
	expect_rows(wrong, N(cases));
}

static void test_email_is_valid(void **state)
{
	static const struct { const char *in; bool want; } cases[] = {
		{ "a@b.co", true },
		{ "john.doe+tag@example.com", true },
		{ "x_y@mail.sub.example.org", true },
		{ "plain", false },
		{ "@example.com", false },
		{ "ann@", false },
		{ "ann@example", false },
		{ "ann@.com", false },
		{ "ann@example.", false },
		{ "ann smith@example.com", false },
		{ "ann@ex ample.com", false },
		{ "ann@b@example.com", false },
		{ "ann..smith@example.com", false },
		{ "ann@example..com", false },
		{ "ann@.example.com", false },      /* empty first domain label */
		{ "", false },
		{ NULL, false },
	};
	char label[96];
	int wrong = 0;

	(void)state;
	for (int i = 0; i < N(cases); i++) {
		snprintf(label, sizeof(label), "email_is_valid(\"%s\")", cases[i].in ? cases[i].in : "NULL");
		wrong += check_bool(label, email_is_valid(cases[i].in), cases[i].want);
	}
	expect_rows(wrong, N(cases));
}

/* value_normalize and value_is_valid */

static void test_value_normalize(void **state)
{
	static const char control[] = "control character in value";
	static const struct {
		const char *label;
		enum field_kind kind;
		const char *in, *want, *why;
	} cases[] = {
		{ "text trimmed", FIELD_TEXT, "  Ada Lovelace  ", "Ada Lovelace", NULL },
		{ "text blank", FIELD_TEXT, "   ", "", NULL },
		{ "text keeps UTF-8", FIELD_TEXT, " Zoë ", "Zoë", NULL },
		{ "text tab", FIELD_TEXT, "Ada\tLovelace", NULL, control },
		{ "text newline", FIELD_TEXT, "Ada\nLovelace", NULL, control },
		{ "text escape", FIELD_TEXT, "\x1b[31mAda", NULL, control },
		{ "text DEL", FIELD_TEXT, "Ada\x7f", NULL, control },       /* iscntrl(0x7f) */
		{ "phone national", FIELD_PHONE, " (555) 010-2030 ", "+15550102030", NULL },
		{ "phone invalid kept trimmed", FIELD_PHONE, "  call the office  ", "call the office", NULL },
		{ "phone too short kept", FIELD_PHONE, "555-0102", "555-0102", NULL },
		{ "phone with tab", FIELD_PHONE, "555\t0102030", NULL, control },
		{ "phone spaces", FIELD_PHONE, "   ", "", NULL },
		{ "phone control", FIELD_PHONE, "555\r0102030", NULL, control },
		{ "email lower-cased", FIELD_EMAIL, " Ann@Example.COM ", "ann@example.com", NULL },
		{ "email invalid kept", FIELD_EMAIL, " Not An Email ", "not an email", NULL },
		{ "email control", FIELD_EMAIL, "ann@example.com\x01", NULL, control },
		{ "set keeps newlines", FIELD_SET, "a\nb", "a\nb", NULL },
		{ "set other control", FIELD_SET, "a\tb", NULL, control },
	};
	char label[96];
	int wrong = 0;

	(void)state;
	for (int i = 0; i < N(cases); i++) {
		const char *why = NULL;
		char *got = value_normalize(cases[i].kind, cases[i].in, "US", &why);
		snprintf(label, sizeof(label), "value_normalize %s", cases[i].label);
		wrong += check_str(label, "value", got, cases[i].want);
		snprintf(label, sizeof(label), "value_normalize %s: why", cases[i].label);
		wrong += check_str(label, "reason", why, cases[i].why);
		free(got);
	}
	expect_rows(wrong, N(cases));
}

/* DF_MAX_VALUE bytes are accepted, one more is malformed input. */
static void test_value_normalize_length(void **state)
{
	char *v = xmalloc(DF_MAX_VALUE + 2), *got;
	const char *why = NULL;

	(void)state;
	memset(v, 'a', DF_MAX_VALUE);
	v[DF_MAX_VALUE] = '\0';
	got = value_normalize(FIELD_TEXT, v, "US", &why);
	assert_non_null(got);
	assert_int_equal(strlen(got), DF_MAX_VALUE);
	assert_null(why);
	free(got);

	v[DF_MAX_VALUE] = 'a';
	v[DF_MAX_VALUE + 1] = '\0';
	got = value_normalize(FIELD_TEXT, v, "US", &why);
	assert_null(got);
	assert_string_equal(why, "value too long");
	free(v);
}

static void test_value_is_valid(void **state)
{
	static const struct { enum field_kind kind; const char *in; bool want; } cases[] = {
		{ FIELD_PHONE, "+15550102030", true },
		{ FIELD_PHONE, "555-0102", false },
		{ FIELD_PHONE, "", false },
		{ FIELD_EMAIL, "ann@example.com", true },
		{ FIELD_EMAIL, "ann@example", false },
		{ FIELD_TEXT, "Ada", true },
		{ FIELD_TEXT, "  ", false },
		{ FIELD_TEXT, NULL, false },
		{ FIELD_SET, "a\nb", true },
		{ FIELD_SET, "", false },
	};
	char label[96];
	int wrong = 0;

	(void)state;
	for (int i = 0; i < N(cases); i++) {
		snprintf(label, sizeof(label), "value_is_valid(%d, \"%s\")", cases[i].kind,
			 cases[i].in ? cases[i].in : "NULL");
		wrong += check_bool(label, value_is_valid(cases[i].kind, cases[i].in), cases[i].want);
	}
	expect_rows(wrong, N(cases));
}

/* Timestamps */

static void test_time_round_trip(void **state)
{
	static const struct { const char *text; long long ms; } cases[] = {
		{ "1970-01-01T00:00:00.000Z", 0 },
		{ "2000-01-01T00:00:00.000Z", 946684800000LL },
		{ "2024-02-29T23:59:59.999Z", 1709251199999LL },
		{ "2024-03-05T14:07:09.123Z", 1709647629123LL },
	};
	char out[32], label[96];
	int wrong = 0;

	(void)state;
	for (int i = 0; i < N(cases); i++) {
		long long ms = time_parse_iso(cases[i].text);
		wrong += check_ms(cases[i].text, ms, cases[i].ms);
		time_format_iso(cases[i].ms, out, sizeof(out));
		snprintf(label, sizeof(label), "time_format_iso(%lld)", ms);
		wrong += check_str(label, "value", out, cases[i].text);
	}
	expect_rows(wrong, N(cases));
}

/* Every spelling of 2024-03-05 14:07:09 UTC (plus its fraction). */
static void test_time_parse_forms(void **state)
{
	static const struct { const char *text; long long ms; } cases[] = {
		{ "2024-03-05T14:07:09Z", 1709647629000LL },
		{ "2024-03-05T14:07:09", 1709647629000LL },
		{ "2024-03-05 14:07:09", 1709647629000LL },
		{ "2024-03-05T14:07:09.5Z", 1709647629500LL },
		{ "2024-03-05T14:07:09.50Z", 1709647629500LL },
		{ "2024-03-05T14:07:09.123456Z", 1709647629123LL },
		{ "2024-03-05T16:07:09+02:00", 1709647629000LL },
		{ "2024-03-05T09:07:09.500-05:00", 1709647629500LL },
		{ "2024-03-05T19:37:09+05:30", 1709647629000LL },
		{ "2024-03-05T14:07:09+00:00", 1709647629000LL },
		{ "2024-03-06T00:07:09+10:00", 1709647629000LL },  /* across midnight */
	};

	int wrong = 0;

	(void)state;
	for (int i = 0; i < N(cases); i++)
		wrong += check_ms(cases[i].text, time_parse_iso(cases[i].text), cases[i].ms);
	expect_rows(wrong, N(cases));
}

static void test_time_parse_invalid(void **state)
{
	static const char *const cases[] = {
		"", "yesterday", "2024-03-05", "2024-03-05T14:07",
		"2024-13-05T14:07:09Z", "2024-00-05T14:07:09Z", "2024-03-32T14:07:09Z",
		"2024-03-05T24:07:09Z", "2024-03-05T14:60:09Z",
		"2024-03-05X14:07:09Z", "2024-03-05T14:07:09Q", "2024-03-05T14:07:09Z+",
		"2024-03-05T14:07:09+0200", "2024-03-05T14:07:09+02", "2024-03-05T14:07:09+02:00junk",
		/* The offset must be exactly hh:mm and the fields unsigned. */
		"2024-03-05T14:07:09+5:301", "2024-03-05T14:07:09+02:3x",
		"2024-03-05T-1:07:09Z",
	};

	int wrong = 0;

	(void)state;
	assert_int_equal(time_parse_iso(NULL), -1);
	for (int i = 0; i < N(cases); i++)
		wrong += check_ms(cases[i], time_parse_iso(cases[i]), -1);
	expect_rows(wrong, N(cases));
}

/* Sets */

static void test_set_from_array(void **state)
{
	static const char *const tags[] = { "vip", "Lead", "", "VIP", "  ", "alpha", "lead",
					    "two\nlines", "beta" };
	static const char *const one[] = { "solo" };
	char *s;

	(void)state;
	/* Sorted case-insensitively; of equal members the first in byte order
	 * stays; blanks and members holding the separator are dropped. */
	s = set_from_array(tags, N(tags));
	assert_string_equal(s, "alpha\nbeta\nLead\nVIP");
	free(s);
	s = set_from_array(one, 1);
	assert_string_equal(s, "solo");
	free(s);
	s = set_from_array(NULL, 0);
	assert_string_equal(s, "");
	free(s);
}

static void test_set_contains(void **state)
{
	static const struct { const char *set, *member; bool want; } cases[] = {
		{ "alpha\nLead\nVIP", "alpha", true },
		{ "alpha\nLead\nVIP", "lead", true },
		{ "alpha\nLead\nVIP", "vip", true },
		{ "alpha\nLead\nVIP", "VI", false },
		{ "alpha\nLead\nVIP", "Lead\nVIP", false },
		{ "alpha\nLead\nVIP", "", false },
		{ "solo", "solo", true },
		{ "", "solo", false },
		{ NULL, "solo", false },
	};
	char label[96];
	int wrong = 0;

	(void)state;
	for (int i = 0; i < N(cases); i++) {
		snprintf(label, sizeof(label), "set_contains(%d: \"%s\")", i, cases[i].member);
		wrong += check_bool(label, set_contains(cases[i].set, cases[i].member), cases[i].want);
	}
	expect_rows(wrong, N(cases));
}

static void test_set_split(void **state)
{
	char **v;
	int n;

	(void)state;
	n = set_split("alpha\nLead\nVIP", &v);
	assert_int_equal(n, 3);
	assert_string_equal(v[0], "alpha");
	assert_string_equal(v[1], "Lead");
	assert_string_equal(v[2], "VIP");
	assert_null(v[3]);
	free(v);
	n = set_split("", &v);
	assert_int_equal(n, 0);
	assert_null(v[0]);
	free(v);
	n = set_split(NULL, &v);
	assert_int_equal(n, 0);
	free(v);
}

/* What json-c makes of a snapshot: the reading record_from_json had
 * before its fast path for flat objects of strings. */
static int json_c_reading(struct record *r, const char *json)
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

/* record_from_json reads every snapshot as json-c does, the flat ones on
 * its own path, the rest (numbers, nesting, surrogates, NUL) through json-c;
 * record_to_json writes what json-c wrote. */
static void test_record_from_json(void **state)
{
	static const char *const values[] = {
		"O'Brien \"Bob\"", "a\\b/c</d>", "tab\there\nnew\rline", "\x01\x1f ctl", "Zo\xc3\xab",
		"\xf0\x9f\x98\x80 emoji", "a\nb\nc", "", " spaced ", "\x7f del \xff",
	};
	static const char *const raw[] = {
		"{\"first_name\":\"\\u00e9\\u4e2d\\u0041\",\"city\":\"x\"}",
		"{\"phone\": 5, \"city\": \"y\"}",
		"{\"first_name\":\"a\",\"first_name\":\"b\"}",
		"{}", " { \"city\" : \"A\" , \"state\":\"TX\" } \n",
		"{\"city\":\"\\ud83d\\ude00\"}", "{\"city\":\"a\\u0000b\"}",
		"{\"unknown\":\"x\",\"city\":\"y\",\"tier\":\"gold\"}",
		"{\"city\":\"x\"", "{\"city\":\"x\"} trailing", "[\"city\"]", "{\"city\":{\"a\":\"b\"}}",
		"{\"city\":\"\\x\"}", "{\"city\":null}", "{\"city\":\"raw\ttab\"}", "", "{\"ci\\\"ty\":\"q\"}",
	};
	int bad = 0, tier;

	(void)state;
	fields_reset();
	tier = fields_add_custom("tier");
	assert_true(tier >= 0);
	for (int i = 0; i < N(values) + N(raw); i++) {
		struct record in, fast, slow;
		char *json;
		int rf, rs;

		record_init(&in);
		record_init(&fast);
		record_init(&slow);
		if (i < N(values)) {
			json_object *o = json_object_new_object();
			for (int f = 0; f < fields_count(); f++) {
				record_set(&in, f, values[(i + f) % N(values)]);
				json_object_object_add(o, field_get(f)->name, json_object_new_string(in.value[f]));
			}
			json = record_to_json(&in);
			/* The same text json-c wrote before record_to_json built it. */
			bad += check_str("record_to_json", values[i], json,
					 json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
			json_object_put(o);
		} else {
			json = xstrdup(raw[i - N(values)]);
		}
		rf = record_from_json(&fast, json);
		rs = json_c_reading(&slow, json);
		bad += check_int(json, "result", rf, rs);
		for (int f = 0; f < fields_count(); f++) {
			bad += check_str(json, field_get(f)->name, fast.value[f], slow.value[f]);
			if (i < N(values))
				bad += check_str(json, "round trip", fast.value[f], in.value[f]);
		}
		free(json);
		record_clear(&in);
		record_clear(&fast);
		record_clear(&slow);
	}
	fields_reset();
	assert_int_equal(bad, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_phone_to_e164),
		cmocka_unit_test(test_phone_is_e164),
		cmocka_unit_test(test_country_calling_code),
		cmocka_unit_test(test_email_normalize),
		cmocka_unit_test(test_email_is_valid),
		cmocka_unit_test(test_value_normalize),
		cmocka_unit_test(test_value_normalize_length),
		cmocka_unit_test(test_value_is_valid),
		cmocka_unit_test(test_time_round_trip),
		cmocka_unit_test(test_time_parse_forms),
		cmocka_unit_test(test_time_parse_invalid),
		cmocka_unit_test(test_set_from_array),
		cmocka_unit_test(test_set_contains),
		cmocka_unit_test(test_set_split),
		cmocka_unit_test(test_record_from_json),
	};

	return cmocka_run_group_tests_name("normalize", tests, NULL, NULL);
}
