/*
 * poll.c - the POLL stage: each system's changed-since API, page by page.
 *
 * A page is observed and its cursor advanced in one transaction, so the
 * cursor never runs ahead of durable work (I1); a crash mid-poll repeats at
 * most one page. Every poll starts lookback seconds behind the cursor,
 * because APIs index changes late and share timestamps; observing twice is
 * harmless. Pages are processed as they arrive and freed: memory does not
 * grow with the number of records.
 */
#include <stdlib.h>

#include "engine.h"
#include "../core/str.h"

static int observe_page(struct run *r, int s, struct connector_page *page, long long *pos)
{
	const struct system_run *sr = &r->sys[s];

	if (state_begin(r->st, &r->err))
		return -1;
	for (int i = 0; i < page->nrecs; i++) {
		if (page->recs[i].updated_ms > *pos)
			*pos = page->recs[i].updated_ms;
		if (observe_record(r, s, &page->recs[i]))
			goto fail;
	}
	for (int i = 0; i < page->nbad; i++) {
		r->sys[s].counts.polled++;
		r->sys[s].counts.quarantined++;
		r->quarantined++;
		log_warn("event=quarantine system=%s record=%s kind=malformed reason=\"%s\"",
			 sr->conf->name, page->bad[i].remote_id ? page->bad[i].remote_id : "-",
			 page->bad[i].reason);
		if (state_quarantine_add(r->st, r->id, sr->conf->name, page->bad[i].remote_id,
					 "malformed", page->bad[i].reason, &r->err))
			goto fail;
	}
	if (state_cursor_set(r->st, sr->conf->name, "contacts", *pos, r->id, &r->err))
		goto fail;
	return state_commit(r->st, &r->err);
fail:
	state_rollback(r->st);
	return -1;
}

static int poll_system(struct run *r, int s)
{
	struct system_run *sr = &r->sys[s];
	long long pos = 0, since;
	char *cursor = NULL;
	int page_no;

	if (state_cursor_get(r->st, sr->conf->name, "contacts", &pos, &r->err))
		return -1;
	since = r->opt->full ? 0 : pos - sr->conf->lookback * 1000LL;
	if (since < 0)
		since = 0;
	for (page_no = 0; page_no < r->cfg->max_pages; page_no++) {
		struct connector_page page = { 0 };
		struct df_err e = { 0 };

		if (sr->conn->poll_contacts(sr->handle, since, &cursor, &page, &e)) {
			/* The system is unreachable or broken: the others go on, the
			 * cursor stays, and the run reports itself partial. */
			log_error("event=poll-failed system=%s reason=\"%s\"", sr->conf->name, e.msg);
			sr->poll_failed = true;
			connector_page_clear(&page);
			break;
		}
		if (observe_page(r, s, &page, &pos)) {
			connector_page_clear(&page);
			free(cursor);
			return -1;
		}
		connector_page_clear(&page);
		if (cursor == NULL)
			break;
	}
	if (cursor != NULL) {
		log_warn("event=poll-truncated system=%s pages=%d reason=\"max_pages reached; the next run goes on\"",
			 sr->conf->name, page_no);
		free(cursor);
	}
	log_info("event=polled system=%s records=%ld changed=%ld quarantined=%ld", sr->conf->name,
		 sr->counts.polled, sr->counts.changed, sr->counts.quarantined);
	return 0;
}

int poll_all(struct run *r)
{
	for (int s = 0; s < r->nsys; s++)
		if (poll_system(r, s))
			return -1;
	return 0;
}
