/*
 * check.h - what the unit tests share: cmocka's includes, the table size
 * macro and the checks that report a wrong table row without stopping, so
 * one run lists every wrong row.
 */
#ifndef DF_TEST_CHECK_H
#define DF_TEST_CHECK_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* 0 when got equals want (both may be NULL), else prints and returns 1. */
static inline int check_str(const char *label, const char *what, const char *got, const char *want)
{
	if (got == NULL && want == NULL)
		return 0;
	if (got != NULL && want != NULL && strcmp(got, want) == 0)
		return 0;
	print_error("%s: %s: got %s%s%s, want %s%s%s\n", label, what,
		    got ? "\"" : "", got ? got : "NULL", got ? "\"" : "",
		    want ? "\"" : "", want ? want : "NULL", want ? "\"" : "");
	return 1;
}

static inline int check_int(const char *label, const char *what, long long got, long long want)
{
	if (got == want)
		return 0;
	print_error("%s: %s: got %lld, want %lld\n", label, what, got, want);
	return 1;
}

#endif
