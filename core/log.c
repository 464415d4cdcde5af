/*
 * log.c - the key=value event log on stderr.
 *
 * One event is one line, whatever the values hold. Every value a caller
 * passes through %s may come from a remote system (an id, an error text),
 * so it is escaped here, once, for every caller: control characters become
 * \n, \r, \t or \xNN, and quotes and backslashes are escaped; a value
 * standing bare after "key=" that holds a space, '=', a quote, a backslash
 * or a control character is quoted, so it can neither end the line nor add
 * a key of its own. The format text itself is ours and printed as it is.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "str.h"

static enum log_level current = LOG_INFO;
static const char *names[] = { "error", "warn", "info", "debug" };

void log_set_level(enum log_level level)
{
	current = level;
}

int log_parse_level(const char *name, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(name, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

static bool needs_quotes(const char *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c <= ' ' || c == 0x7f || c == '"' || c == '=' || c == '\\')
			return true;
	}
	return false;
}

/* Appends n bytes of one %s value; in_quotes when the format already
 * quotes it (key="%s"). */
static void add_value(struct strbuf *sb, const char *v, size_t n, bool in_quotes)
{
	bool quote = !in_quotes && needs_quotes(v, n);

	if (quote)
		sb_add(sb, "\"");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		switch (c) {
		case '\n': sb_add(sb, "\\n"); break;
		case '\r': sb_add(sb, "\\r"); break;
		case '\t': sb_add(sb, "\\t"); break;
		case '"': sb_add(sb, "\\\""); break;
		case '\\': sb_add(sb, "\\\\"); break;
		default:
			if (c < ' ' || c == 0x7f)
				sb_addf(sb, "\\x%02x", c);
			else
				sb_addn(sb, (const char *)&c, 1);
		}
	}
	if (quote)
		sb_add(sb, "\"");
}

/* One conversion spec of fmt at *p ("%...X"), its argument taken from ap
 * with the type the spec names. */
static void add_conversion(struct strbuf *sb, const char *fmt, const char **p, va_list *ap)
{
	const char *start = *p, *s = *p + 1;
	int width = -1, prec = -1, longs = 0;
	bool size = false, star_w = false, star_p = false;
	char spec[32];

	s += strspn(s, "-+ #0");
	if (*s == '*') {
		star_w = true;
		s++;
	} else {
		s += strspn(s, "0123456789");
	}
	if (*s == '.') {
		s++;
		if (*s == '*') {
			star_p = true;
			s++;
		} else {
			s += strspn(s, "0123456789");
		}
	}
	for (; *s == 'l' || *s == 'h' || *s == 'z' || *s == 'j' || *s == 't'; s++) {
		longs += *s == 'l';
		size |= *s == 'z' || *s == 'j' || *s == 't';
	}
	*p = *s ? s + 1 : s;
	if (star_w)
		width = va_arg(*ap, int);
	if (star_p)
		prec = va_arg(*ap, int);
	snprintf(spec, sizeof(spec), "%.*s", (int)(*p - start), start);
	switch (*s) {
	case 's': {
		const char *v = va_arg(*ap, const char *);
		size_t n;
		v = v ? v : "(null)";
		n = prec >= 0 ? strnlen(v, (size_t)prec) : strlen(v);
		add_value(sb, v, n, start > fmt && start[-1] == '"');
		break;
	}
	case '%':
		sb_add(sb, "%");
		break;
	case 'd': case 'i': case 'u': case 'x': case 'X': case 'c':
		/* Our own numbers: printed as the spec says, stars dropped. */
		if (star_w || star_p) {
			char *q = spec, *w = spec;
			for (; *q; q++)
				if (*q != '*')
					*w++ = *q;
			*w = '\0';
			(void)width;
		}
		if (size)
			sb_addf(sb, spec, va_arg(*ap, size_t));
		else if (longs >= 2)
			sb_addf(sb, spec, va_arg(*ap, long long));
		else if (longs == 1)
			sb_addf(sb, spec, va_arg(*ap, long));
		else
			sb_addf(sb, spec, va_arg(*ap, int));
		break;
	case 'f': case 'g': case 'e':
		sb_addf(sb, spec, va_arg(*ap, double));
		break;
	default:
		sb_add(sb, "?");        /* a conversion this log does not know */
	}
}

char *log_vformat(const char *fmt, va_list ap)
{
	struct strbuf sb;
	va_list cp;
	const char *p = fmt;

	sb_init(&sb);
	va_copy(cp, ap);
	while (*p) {
		const char *pct = strchr(p, '%');
		if (pct == NULL) {
			sb_add(&sb, p);
			break;
		}
		sb_addn(&sb, p, (size_t)(pct - p));
		p = pct;
		add_conversion(&sb, fmt, &p, &cp);
	}
	va_end(cp);
	return sb_detach(&sb);
}

char *log_format(const char *fmt, ...)
{
	va_list ap;
	char *line;

	va_start(ap, fmt);
	line = log_vformat(fmt, ap);
	va_end(ap);
	return line;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char ts[32];
	time_t now;
	struct tm tm;
	va_list ap;
	char *line;

	if (level > current)
		return;
	now = time(NULL);
	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	va_start(ap, fmt);
	line = log_vformat(fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s %s %s\n", ts, names[level], line);
	free(line);
}
