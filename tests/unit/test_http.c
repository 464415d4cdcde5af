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

/* Header lines as libcurl hands them, and what each leaves in the limits
 * (-1: not stated). A value that is not a whole number is ignored. */
static void test_limits_header(void **unused)
{
	static const struct {
		const char *line;
		bool known;
		long max, remaining, interval, retry_after;
		long long daily, daily_remaining;
	} rows[] = {
		{ "X-RateLimit-Max: 100\r\n", true, 100, -1, -1, -1, -1, -1 },
		{ "x-ratelimit-remaining: 7\r\n", true, -1, 7, -1, -1, -1, -1 },
		{ "X-RateLimit-Remaining: 0\r\n", true, -1, 0, -1, -1, -1, -1 },
		{ "X-RATELIMIT-INTERVAL-MILLISECONDS:10000\r\n", true, -1, -1, 10000, -1, -1, -1 },
		{ "X-RateLimit-Limit-Daily: 200000\r\n", true, -1, -1, -1, -1, 200000, -1 },
		{ "X-RateLimit-Daily-Remaining:  199998 \r\n", true, -1, -1, -1, -1, -1, 199998 },
		{ "Retry-After: 3\r\n", true, -1, -1, -1, 3, -1, -1 },
		{ "retry-after: 0\n", true, -1, -1, -1, 0, -1, -1 },
		/* not a whole number: ignored */
		{ "Retry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n", true, -1, -1, -1, -1, -1, -1 },
		{ "X-RateLimit-Remaining: -1\r\n", true, -1, -1, -1, -1, -1, -1 },
		{ "X-RateLimit-Remaining: 5x\r\n", true, -1, -1, -1, -1, -1, -1 },
		{ "X-RateLimit-Remaining:\r\n", true, -1, -1, -1, -1, -1, -1 },
		{ "X-RateLimit-Daily-Remaining: 99999999999999999999999\r\n", true, -1, -1, -1, -1, -1, -1 },
		/* other headers, near names and no colon */
		{ "X-RateLimit-Remaining-Extra: 5\r\n", false, -1, -1, -1, -1, -1, -1 },
		{ "Content-Type: application/json\r\n", false, -1, -1, -1, -1, -1, -1 },
		{ "X-RateLimit-Max 100\r\n", false, -1, -1, -1, -1, -1, -1 },
		{ "\r\n", false, -1, -1, -1, -1, -1, -1 },
	};
	int bad = 0;

	(void)unused;
	for (int i = 0; i < N(rows); i++) {
		struct http_limits l;
		bool known;
		http_limits_clear(&l);
		known = http_limits_header(rows[i].line, strlen(rows[i].line), &l);
		if (known != rows[i].known || l.burst_max != rows[i].max || l.burst_remaining != rows[i].remaining ||
		    l.interval_ms != rows[i].interval || l.retry_after != rows[i].retry_after ||
		    l.daily_limit != rows[i].daily || l.daily_remaining != rows[i].daily_remaining) {
			print_error("%s: got known=%d max=%ld remaining=%ld interval=%ld retry_after=%ld "
				    "daily=%lld daily_remaining=%lld\n", rows[i].line, known, l.burst_max,
				    l.burst_remaining, l.interval_ms, l.retry_after, l.daily_limit, l.daily_remaining);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* The line is read within its length only (libcurl's buffer is not
 * NUL-terminated): a value cut by len is what counts. */
static void test_limits_header_bounded(void **unused)
{
	const char line[] = "X-RateLimit-Remaining: 123456";
	struct http_limits l;

	(void)unused;
	http_limits_clear(&l);
	assert_true(http_limits_header(line, strlen(line) - 3, &l));
	assert_int_equal(l.burst_remaining, 123);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_method_idempotent),
		cmocka_unit_test(test_excerpt),
		cmocka_unit_test(test_limits_header),
		cmocka_unit_test(test_limits_header_bounded),
	};

	return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
