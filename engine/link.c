/*
 * link.c - the LINK stage: which person an unlinked record belongs to.
 *
 * Phone first (E.164, valid only), then lower-case email, matched against
 * both the agreed values and every linked record's snapshot, so two systems
 * first seen in the same run still find each other. Doubt is never merged:
 * several candidates, phone and email pointing at different persons, or a
 * person who already has another record in the same system (a duplicate in
 * that system) leave the record unlinked and reported.
 */
#include <stdio.h>
#include <stdlib.h>

#include "engine.h"
#include "../core/normalize.h"
#include "../core/str.h"

#define MAX_CANDIDATES 4

static void describe(char *why, size_t n, const char *key, const char *value,
		     const long long *ids, int nids)
{
	int k = snprintf(why, n, "%s %s matches persons", key, value);

	for (int i = 0; i < nids && k > 0 && (size_t)k < n; i++)
		k += snprintf(why + k, n - (size_t)k, "%s %lld", i ? "," : "", ids[i]);
}

int link_record(struct run *r, int s, const struct record *rec, long long *person,
		const char **how, char *why, size_t whylen)
{
	const char *phone = rec->value[F_PHONE], *email = rec->value[F_EMAIL];
	long long byphone[MAX_CANDIDATES], byemail[MAX_CANDIDATES];
	int np = 0, ne = 0;
	char *other = NULL;

	*person = 0;
	if (phone_is_e164(phone) &&
	    state_match(r->st, "phone", phone, byphone, MAX_CANDIDATES, &np, &r->err))
		return -1;
	if (email_is_valid(email) &&
	    state_match(r->st, "email", email, byemail, MAX_CANDIDATES, &ne, &r->err))
		return -1;
	if (np > 1) {
		describe(why, whylen, "phone", phone, byphone, np);
		return 0;
	}
	if (ne > 1 && np == 0) {
		describe(why, whylen, "email", email, byemail, ne);
		return 0;
	}
	if (np == 1 && ne == 1 && byphone[0] != byemail[0]) {
		snprintf(why, whylen, "phone %s matches person %lld but email %s matches person %lld",
			 phone, byphone[0], email, byemail[0]);
		return 0;
	}
	if (np == 1 || ne == 1) {
		long long p = np == 1 ? byphone[0] : byemail[0];
		if (state_link_of(r->st, p, r->sys[s].conf->name, &other, &r->err))
			return -1;
		if (other != NULL) {
			snprintf(why, whylen, "%s %s matches person %lld, who already has %s record %s",
				 np == 1 ? "phone" : "email", np == 1 ? phone : email, p,
				 r->sys[s].conf->name, other);
			free(other);
			return 0;
		}
		*person = p;
		*how = np == 1 ? "phone" : "email";
		return 0;
	}
	*person = state_person_new(r->st, r->id, &r->err);
	*how = "new";
	return *person < 0 ? -1 : 0;
}
