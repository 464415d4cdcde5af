/*
 * test_http.c - the failure classification of http/http.c (I11): which
 * answer means what, and which request may be sent again in place. The
 * table is the contract; a create must never be repeated blind.
 */
#include "check.h"

#include "../../http/http.h"

static const struct {
	long status;
	bool sent, idempotent;
	enum df_fail want;
	bool again;
} classes[] = {
	/* success */
	{ 200, true, false, DF_OK, false },
	{ 201, true, false, DF_OK, false },
	{ 204, true, true, DF_OK, false },
	/* credentials: stop the system, whatever the method */
	{ 401, true, true, DF_FAIL_AUTH, false },
	{ 401, true, false, DF_FAIL_AUTH, false },
	{ 403, true, true, DF_FAIL_AUTH, false },
	{ 403, true, false, DF_FAIL_AUTH, false },
	/* the server did not take it: repeat, even a POST */
	{ 408, true, false, DF_FAIL_TEMP, true },
	{ 429, true, false, DF_FAIL_TEMP, true },
	{ 429, true, true, DF_FAIL_TEMP, true },
	{ 503, true, false, DF_FAIL_TEMP, true },
	{ 0, false, false, DF_FAIL_TEMP, true },     /* could not connect */
	{ 0, false, true, DF_FAIL_TEMP, true },
	/* it may have acted: only an idempotent request is repeated */
	{ 0, true, true, DF_FAIL_TEMP, true },       /* timeout after sending */
	{ 0, true, false, DF_FAIL_UNKNOWN, false },
	{ 500, true, true, DF_FAIL_TEMP, true },
	{ 500, true, false, DF_FAIL_UNKNOWN, false },
	{ 502, true, true, DF_FAIL_TEMP, true },
	{ 502, true, false, DF_FAIL_UNKNOWN, false },
	{ 504, true, true, DF_FAIL_TEMP, true },
	{ 504, true, false, DF_FAIL_UNKNOWN, false },
	/* this record's problem, or a status we do not retry: final */
	{ 400, true, false, DF_FAIL_REMOTE, false },
	{ 404, true, true, DF_FAIL_REMOTE, false },
	{ 409, true, false, DF_FAIL_REMOTE, false },
	{ 422, true, true, DF_FAIL_REMOTE, false },
	{ 501, true, true, DF_FAIL_REMOTE, false },
	{ 505, true, false, DF_FAIL_REMOTE, false },
	{ 302, true, true, DF_FAIL_REMOTE, false },
};

static void test_classify(void **unused)
{
	int bad = 0;

	(void)unused;
	for (int i = 0; i < N(classes); i++) {
		char label[64];
		bool again = !classes[i].again;
		enum df_fail got = http_classify(classes[i].status, classes[i].sent, classes[i].idempotent, &again);
		snprintf(label, sizeof(label), "HTTP %ld sent=%d idempotent=%d", classes[i].status,
			 classes[i].sent, classes[i].idempotent);
		bad += check_str(label, "class", df_fail_name(got), df_fail_name(classes[i].want));
		bad += check_int(label, "again", again, classes[i].again);
	}
	assert_int_equal(bad, 0);
}

static void test_method_idempotent(void **unused)
{
	(void)unused;
	assert_true(http_method_idempotent("GET"));
	assert_true(http_method_idempotent("HEAD"));
	assert_true(http_method_idempotent("PUT"));
	assert_true(http_method_idempotent("DELETE"));
	assert_true(http_method_idempotent("PATCH"));
	assert_false(http_method_idempotent("POST"));
}

static void test_excerpt(void **unused)
{
	static const struct {
		const char *text;
		size_t max;
		const char *want;
	} rows[] = {
		{ "{\"message\":\"bad phone\"}", 200, "{\"message\":\"bad phone\"}" },
		{ "line one\n\r\tline two", 200, "line one line two" },
		{ "token s3cr3t-token in the answer", 200, "token [redacted] in the answer" },
		{ "?api_token=q-token&x=1", 200, "?api_token=[redacted]&x=1" },
		{ "abcdefghij", 4, "abcd..." },
		{ "ab\xc3\xa9" "cd", 3, "ab..." },      /* a cut never splits a character */
		{ "ab\xc3\xa9", 200, "ab\xc3\xa9" },
		{ "", 200, "" },
	};
	const char *secrets[] = { "s3cr3t-token", "q-token" };
	int bad = 0;

	(void)unused;
	for (int i = 0; i < N(rows); i++) {
		struct strbuf sb;
		sb_init(&sb);
		http_excerpt(&sb, rows[i].text, rows[i].max, secrets, N(secrets));
		bad += check_str(rows[i].text, "excerpt", sb.buf, rows[i].want);
		sb_free(&sb);
	}
	assert_int_equal(bad, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_method_idempotent),
		cmocka_unit_test(test_excerpt),
	};

	return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
