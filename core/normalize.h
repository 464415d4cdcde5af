/*
 * normalize.h - turning what a system stores into canonical values, so that
 * "(555) 010-2030" in one system and "+15550102030" in another compare equal.
 *
 * Pure functions, no I/O. Phones become E.164 using a default country for
 * national numbers; emails are trimmed and lower-cased; text is trimmed.
 * A phone that cannot be made E.164 is kept as trimmed text and reported as
 * invalid: the prefer-valid merge rule needs to see it lose.
 */
#ifndef DF_NORMALIZE_H
#define DF_NORMALIZE_H

#include <stdbool.h>

#include "record.h"

/* Calling code for an ISO-3166 alpha-2 country ("US" -> 1); 0 if unknown. */
int country_calling_code(const char *iso2);

/* E.164 form of phone, or NULL when it cannot be one. Caller frees. */
char *phone_to_e164(const char *phone, const char *default_country);
bool phone_is_e164(const char *s);
char *email_normalize(const char *email);  /* caller frees */
bool email_is_valid(const char *s);

/* Canonical form of a value of the given kind; caller frees. Returns NULL and
 * sets *why when the value is malformed input (control characters, too long):
 * such a record is quarantined, not synced. */
char *value_normalize(enum field_kind kind, const char *value,
		      const char *default_country, const char **why);
/* Whether two canonical values say the same: sets ignore the case of
 * their members, as their merge does. */
bool value_same(enum field_kind kind, const char *a, const char *b);
/* Whether a canonical value of this kind is well-formed (prefer-valid). */
bool value_is_valid(enum field_kind kind, const char *value);

#endif
