/*
 * normalize.c - phone, email and text normalisation.
 *
 * Only the national-number conventions we can apply safely are encoded: drop
 * one trunk '0' (most of the world) and, for NANP, accept 10 digits or 11
 * starting with 1. Anything else keeps its text and counts as invalid; a
 * wrong guess would link two different people.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "normalize.h"
#include "str.h"

static const struct { const char iso[3]; int code; } countries[] = {
	{ "US", 1 }, { "CA", 1 }, { "PR", 1 }, { "GB", 44 }, { "IE", 353 },
	{ "AU", 61 }, { "NZ", 64 }, { "DE", 49 }, { "FR", 33 }, { "ES", 34 },
	{ "IT", 39 }, { "NL", 31 }, { "BE", 32 }, { "CH", 41 }, { "AT", 43 },
	{ "SE", 46 }, { "NO", 47 }, { "DK", 45 }, { "FI", 358 }, { "PT", 351 },
	{ "PL", 48 }, { "MX", 52 }, { "BR", 55 }, { "AR", 54 }, { "IN", 91 },
	{ "JP", 81 }, { "SG", 65 }, { "ZA", 27 }, { "IL", 972 }, { "AE", 971 },
	{ "PH", 63 },
};

int country_calling_code(const char *iso2)
{
	if (iso2 == NULL)
		return 0;
	for (size_t i = 0; i < sizeof(countries) / sizeof(countries[0]); i++)
		if (strcasecmp(countries[i].iso, iso2) == 0)
			return countries[i].code;
	return 0;
}

bool phone_is_e164(const char *s)
{
	size_t n;

	if (s == NULL || s[0] != '+' || s[1] < '1' || s[1] > '9')
		return false;
	for (n = 1; s[n]; n++)
		if (!isdigit((unsigned char)s[n]))
			return false;
	return n - 1 >= 8 && n - 1 <= 15;
}

/* Digits of phone up to an extension marker; *plus says it began with '+'
 * (or the international prefix 00). Returns -1 on a character no phone has. */
static int phone_digits(const char *phone, char *out, size_t cap, bool *plus)
{
	size_t n = 0;
	const char *p = phone;

	while (isspace((unsigned char)*p))
		p++;
	*plus = *p == '+';
	if (*plus)
		p++;
	for (; *p; p++) {
		if (isdigit((unsigned char)*p)) {
			if (n + 1 >= cap)
				return -1;
			out[n++] = *p;
		} else if (*p == 'x' || *p == 'X' || *p == '#' || *p == ';') {
			break;
		} else if (!strchr(" -.()/\t", *p)) {
			return -1;
		}
	}
	out[n] = '\0';
	if (!*plus && n > 2 && out[0] == '0' && out[1] == '0') {
		memmove(out, out + 2, n - 1);
		*plus = true;
	}
	return 0;
}

char *phone_to_e164(const char *phone, const char *default_country)
{
	char d[40], *e;
	bool plus;
	int cc = country_calling_code(default_country);
	size_t n;

	if (phone == NULL || phone_digits(phone, d, sizeof(d), &plus) < 0)
		return NULL;
	n = strlen(d);
	if (plus) {
		e = xasprintf("+%s", d);
	} else if (cc == 1) {
		if (n == 11 && d[0] == '1')
			e = xasprintf("+%s", d);
		else if (n == 10 && d[0] >= '2')
			e = xasprintf("+1%s", d);
		else
			return NULL;
		if (e[2] < '2') {          /* NANP area codes never start 0/1 */
			free(e);
			return NULL;
		}
	} else if (cc > 0 && n >= 6) {
		e = xasprintf("+%d%s", cc, d[0] == '0' ? d + 1 : d);
	} else {
		return NULL;
	}
	if (!phone_is_e164(e)) {
		free(e);
		return NULL;
	}
	return e;
}

char *email_normalize(const char *email)
{
	const char *b = email, *end;
	char *out;
	size_t i;

	while (isspace((unsigned char)*b))
		b++;
	end = b + strlen(b);
	while (end > b && isspace((unsigned char)end[-1]))
		end--;
	out = xmalloc((size_t)(end - b) + 1);
	for (i = 0; b + i < end; i++)
		out[i] = (char)tolower((unsigned char)b[i]);
	out[i] = '\0';
	return out;
}

bool email_is_valid(const char *s)
{
	const char *at, *dot;

	if (s == NULL || strchr(s, ' ') || (at = strchr(s, '@')) == NULL)
		return false;
	if (at == s || at[1] == '.' || strchr(at + 1, '@') || strstr(s, ".."))
		return false;
	dot = strrchr(at + 1, '.');
	return dot != NULL && dot > at + 1 && dot[1] != '\0';
}

static char *trim_copy(const char *s)
{
	const char *end;
	char *out;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	out = xmalloc((size_t)(end - s) + 1);
	memcpy(out, s, (size_t)(end - s));
	out[end - s] = '\0';
	return out;
}

char *value_normalize(enum field_kind kind, const char *value,
		      const char *default_country, const char **why)
{
	char *e;

	if (strlen(value) > DF_MAX_VALUE) {
		*why = "value too long";
		return NULL;
	}
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		if ((*p < 0x20 || *p == 0x7f) && !(kind == FIELD_SET && *p == '\n')) {
			*why = "control character in value";
			return NULL;
		}
	}
	switch (kind) {
	case FIELD_PHONE:
		if (str_blank(value))
			return xstrdup("");
		e = phone_to_e164(value, default_country);
		return e ? e : trim_copy(value);
	case FIELD_EMAIL:
		return email_normalize(value);
	case FIELD_SET:
		return xstrdup(value);  /* connectors build sets canonically */
	case FIELD_FLAG:
		return xstrdup(strcmp(value, "true") == 0 ? "true" : "false");
	case FIELD_TEXT:
		break;
	}
	return trim_copy(value);
}

bool value_same(enum field_kind kind, const char *a, const char *b)
{
	if (kind == FIELD_SET)
		return strcasecmp(a ? a : "", b ? b : "") == 0;
	return str_eq(a, b);
}

bool value_is_valid(enum field_kind kind, const char *value)
{
	switch (kind) {
	case FIELD_PHONE: return phone_is_e164(value);
	case FIELD_EMAIL: return email_is_valid(value);
	case FIELD_TEXT:
	case FIELD_SET:
	case FIELD_FLAG: break;
	}
	return !str_blank(value);
}
