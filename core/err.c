/*
 * err.c - building and wrapping struct df_err messages.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

int df_fail(struct df_err *err, enum df_fail fail, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return -1;
	err->fail = fail;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return -1;
}

int df_wrap(struct df_err *err, const char *fmt, ...)
{
	char prefix[256], old[sizeof(err->msg)];
	va_list ap;

	if (err == NULL)
		return -1;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	/* Keep the prefix whole and cut the old message if it must give way. */
	size_t pl = strlen(prefix), cap = sizeof(err->msg) - 1, n = 0;
	if (pl > cap - 2)
		pl = cap - 2;
	memcpy(err->msg, prefix, pl);
	memcpy(err->msg + pl, ": ", 2);
	n = strnlen(old, cap - pl - 2);
	memcpy(err->msg + pl + 2, old, n);
	err->msg[pl + 2 + n] = '\0';
	return -1;
}

void df_err_clear(struct df_err *err)
{
	err->fail = DF_OK;
	err->msg[0] = '\0';
}

const char *df_fail_name(enum df_fail fail)
{
	switch (fail) {
	case DF_OK: return "ok";
	case DF_FAIL_TEMP: return "temporary";
	case DF_FAIL_REMOTE: return "refused";
	case DF_FAIL_INPUT: return "input";
	case DF_FAIL_CONFIG: return "config";
	case DF_FAIL_STATE: return "state";
	case DF_FAIL_AUTH: return "credentials";
	case DF_FAIL_UNKNOWN: return "unknown";
	case DF_FAIL_BUDGET: return "budget";
	}
	return "unknown";
}
