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
#include "logsys.h"
#include "str.h"

static enum log_level current = LOG_INFO;
static enum log_target target = LOG_TO_STDERR;
static enum log_format format = LOG_TEXT;
static const char *const names[] = { "error", "warn", "info", "debug", NULL };
static const char *const targets[] = { "stderr", "syslog", NULL };
static const char *const formats[] = { "text", "json", NULL };

void log_set_level(enum log_level level)
{
	current = level;
}

bool log_enabled(enum log_level level)
{
	return level <= current;
}

static int find_name(const char *const *list, const char *name)
{
	for (int i = 0; list[i]; i++)
		if (strcmp(name, list[i]) == 0)
			return i;
	return -1;
}

int log_parse_level(const char *name, enum log_level *out)
{
	int i = find_name(names, name);

	if (i >= 0)
		*out = (enum log_level)i;
	return i >= 0 ? 0 : -1;
}

int log_parse_target(const char *name, enum log_target *out)
{
	int i = find_name(targets, name);

	if (i >= 0)
		*out = (enum log_target)i;
	return i >= 0 ? 0 : -1;
}

int log_parse_format(const char *name, enum log_format *out)
{
	int i = find_name(formats, name);

	if (i >= 0)
		*out = (enum log_format)i;
	return i >= 0 ? 0 : -1;
}

void log_set_output(enum log_target t, enum log_format f)
{
	if (t == LOG_TO_SYSLOG && target != LOG_TO_SYSLOG)
		logsys_open();
	target = t;
	format = f;
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

/* Appends s (n bytes) as the inside of a JSON string. */
static void json_text(struct strbuf *sb, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			sb_addf(sb, "\\%c", c);
		else if (c < ' ' || c == 0x7f)
			sb_addf(sb, "\\u%04x", c);
		else
			sb_addn(sb, (const char *)&c, 1);
	}
}

/* Reads one value of a text line at *p (bare up to a space, or quoted
 * with the escapes add_value makes) into out, unescaped. */
static void read_value(const char **p, struct strbuf *out)
{
	const char *s = *p;
	bool quoted = *s == '"';

	for (s += quoted; *s && (quoted ? *s != '"' : *s != ' '); s++) {
		if (*s != '\\' || s[1] == '\0') {
			sb_addn(out, s, 1);
			continue;
		}
		s++;
		switch (*s) {
		case 'n': sb_add(out, "\n"); break;
		case 'r': sb_add(out, "\r"); break;
		case 't': sb_add(out, "\t"); break;
		case 'x': {
			char hex[3] = { s[1], s[1] ? s[2] : 0, 0 };
			char ch = (char)strtol(hex, NULL, 16);
			sb_addn(out, &ch, 1);
			s += hex[0] && hex[1] ? 2 : 0;
			break;
		}
		default: sb_addn(out, s, 1);
		}
	}
	*p = *s == '"' ? s + 1 : s;
}

/* The text line (our keys, escaped values) as one JSON object. */
static char *line_to_json(const char *ts, const char *level, const char *line)
{
	struct strbuf sb, text;
	const char *p = line;

	sb_init(&sb);
	sb_init(&text);
	sb_add(&sb, "{");
	if (ts)
		sb_addf(&sb, "\"ts\":\"%s\",", ts);
	sb_addf(&sb, "\"level\":\"%s\"", level);
	while (*p) {
		size_t key = strcspn(p, "= ");
		struct strbuf v;
		if (*p == ' ') {
			p++;
			continue;
		}
		if (p[key] != '=') {
			/* A word of free text: kept, in order, under "text". */
			if (text.len)
				sb_add(&text, " ");
			sb_addn(&text, p, key);
			p += key;
			continue;
		}
		sb_init(&v);
		sb_add(&sb, ",\"");
		json_text(&sb, p, key);
		sb_add(&sb, "\":\"");
		p += key + 1;
		read_value(&p, &v);
		json_text(&sb, v.buf ? v.buf : "", v.len);
		sb_add(&sb, "\"");
		sb_free(&v);
	}
	if (text.len) {
		sb_add(&sb, ",\"text\":\"");
		json_text(&sb, text.buf, text.len);
		sb_add(&sb, "\"");
	}
	sb_add(&sb, "}");
	sb_free(&text);
	return sb_detach(&sb);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char ts[32];
	time_t now;
	struct tm tm;
	va_list ap;
	char *line, *json = NULL;

	if (level > current)
		return;
	now = time(NULL);
	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	va_start(ap, fmt);
	line = log_vformat(fmt, ap);
	va_end(ap);
	/* syslog stamps its own time and priority. */
	if (format == LOG_JSON)
		json = line_to_json(target == LOG_TO_SYSLOG ? NULL : ts, names[level], line);
	if (target == LOG_TO_SYSLOG) {
		char *text = json ? NULL : xasprintf("%s %s", names[level], line);
		logsys_write((int)level, json ? json : text);
		free(text);
	} else if (json)
		fprintf(stderr, "%s\n", json);
	else
		fprintf(stderr, "%s %s %s\n", ts, names[level], line);
	free(json);
	free(line);
}
