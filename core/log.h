/*
 * log.h - one event per line on stderr or syslog: "ts level event=... key=value ..."
 * or the same as a JSON object.
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
#include <stdbool.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };
/* Where lines go: stderr (cron mails it, journald takes it) or syslog(3),
 * facility daemon, which stamps its own time. */
enum log_target { LOG_TO_STDERR, LOG_TO_SYSLOG };
/* text: "ts level event=... key=value"; json: one object per line with
 * "ts", "level" and every key, its value unescaped (a word without a key
 * goes to "text"). */
enum log_format { LOG_TEXT, LOG_JSON };

void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);
int log_parse_level(const char *name, enum log_level *out);
void log_set_output(enum log_target target, enum log_format format);
int log_parse_target(const char *name, enum log_target *out);
int log_parse_format(const char *name, enum log_format *out);
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
