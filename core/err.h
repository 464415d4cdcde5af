/*
 * err.h - the one error type that travels up through every layer.
 *
 * A failure is classified once, near where it happens, and the class tells
 * the outermost caller what to do with it (modelled on mbsync's FAIL_*):
 *   DF_FAIL_TEMP    the remote side or network failed; retry on a later run
 *   DF_FAIL_REMOTE  the remote side refused this request for good (4xx);
 *                   retrying the same request will not help
 *   DF_FAIL_AUTH    the system refused our credentials (401/403): stop
 *                   talking to it for this run; its work stays pending
 *   DF_FAIL_UNKNOWN a create or append (POST) was sent but no answer came
 *                   (timeout, reset, 500/502/504): it may have been made,
 *                   so the next attempt looks for it before sending again
 *   DF_FAIL_BUDGET  the run's request budget for the system is used up:
 *                   nothing was sent, so it is not a failed attempt
 *   DF_FAIL_INPUT   a record cannot be understood; quarantine it, go on
 *   DF_FAIL_CONFIG  the configuration is wrong; stop before doing anything
 *   DF_FAIL_STATE   the state file cannot be used; stop
 * The message is built near the failure and never holds a secret.
 */
#ifndef DF_ERR_H
#define DF_ERR_H

enum df_fail {
	DF_OK = 0,
	DF_FAIL_TEMP,
	DF_FAIL_REMOTE,
	DF_FAIL_INPUT,
	DF_FAIL_CONFIG,
	DF_FAIL_STATE,
	DF_FAIL_AUTH,
	DF_FAIL_UNKNOWN,
	DF_FAIL_BUDGET,
};

struct df_err {
	enum df_fail fail;
	char msg[512];
};

/* Records the failure class and message in err (may be NULL); returns -1 so
 * callers can write "return df_fail(err, ...)". */
int df_fail(struct df_err *err, enum df_fail fail, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefixes err->msg with "context: ", keeping the class. Returns -1. */
int df_wrap(struct df_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void df_err_clear(struct df_err *err);
const char *df_fail_name(enum df_fail fail);

#endif
