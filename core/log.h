/*
 * log.h - one event per line on stderr: "ts level event=... key=value ...".
 *
 * Callers pass only ids, counts, field names and error classes; never a
 * token, never a full payload. Values with spaces are quoted by the caller's
 * format (use %s with log_quote() when a value may hold spaces).
 */
#ifndef DF_LOG_H
#define DF_LOG_H

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level level);
int log_parse_level(const char *name, enum log_level *out);
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
