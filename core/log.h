/*
 * log.h - one event per line on stderr: "ts level event=... key=value ...".
 *
 * Callers pass only ids, counts, field names and error classes; never a
 * token, never a full payload. Every %s value is escaped by the log itself
 * (log.c): control characters, quotes and backslashes, and a bare value
 * that could read as more than one value is quoted, so no input can forge
 * a line or a key. The conversions known are %s (with precision, also
 * %.*s), %d %i %u %x %c with h, l, ll, z, and %f %g %e.
 */
#ifndef DF_LOG_H
#define DF_LOG_H

#include <stdarg.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level level);
int log_parse_level(const char *name, enum log_level *out);
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The line log_msg would print after its time and level, escaped as above;
 * caller frees. */
char *log_format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *log_vformat(const char *fmt, va_list ap);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
