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
#include <string.h>

#include "engine.h"
#include "../core/str.h"

/* The cursor moves to the newest update seen, but never past our own
 * clock: one record dated in the future would otherwise hide every later
 * change (the lookback absorbs ordinary clock skew). */
static void advance(struct run *r, int s, long long *pos, long long updated_ms, const char *id)
{
	long long now = time_now_ms();

	if (updated_ms > now) {
		log_warn("event=future-date system=%s record=%s reason=\"update time is in the future; "
			 "the cursor stops at now\"", r->sys[s].conf->name, id ? id : "-");
		updated_ms = now;
	}
	if (updated_ms > *pos)
		*pos = updated_ms;
}

/* How many of a stream's latest cursors are remembered to catch a listing
 * that goes round in circles; a longer circle still ends at max_pages. */
#define RECENT_CURSORS 16

/* True when cursor is one of the recent ones (seen[] holds their hashes,
 * page_no counts the pages read); else it is remembered. */
static bool cursor_repeats(unsigned long long *seen, int page_no, const char *cursor)
{
	unsigned long long h = 1469598103934665603ULL;  /* FNV-1a */
	int n = page_no < RECENT_CURSORS ? page_no : RECENT_CURSORS;

	for (const unsigned char *p = (const unsigned char *)cursor; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	for (int i = 0; i < n; i++)
		if (seen[i] == h)
			return true;
	seen[page_no % RECENT_CURSORS] = h;
	return false;
}

/* Observes one page of a stream and advances its cursor, in one
 * transaction. The last page of a listing read to the end passes when
 * that listing began (listed_from, else 0): every change dated before it
 * has now been observed, save those indexed late, which the lookback
 * behind the cursor exists for. So the cursor moves there, never back:
 * without it, it would stay at the newest record's date and every poll
 * would re-read the lookback before it until something newer came. */
static int observe_page(struct run *r, int s, const char *stream, struct connector_page *page,
			long long *pos, long long listed_from)
{
	const struct system_run *sr = &r->sys[s];

	if (state_begin(r->st, &r->err))
		return -1;
	for (int i = 0; i < page->nrecs; i++) {
		advance(r, s, pos, page->recs[i].updated_ms, page->recs[i].remote_id);
		if (observe_record(r, s, &page->recs[i]))
			goto fail;
	}
	for (int i = 0; i < page->nevents; i++) {
		advance(r, s, pos, page->events[i].updated_ms, page->events[i].source_id);
		if (observe_event(r, s, &page->events[i]))
			goto fail;
	}
	for (int i = 0; i < page->nbad; i++) {
		r->sys[s].counts.polled++;
		if (quarantine(r, s, page->bad[i].remote_id, "malformed", page->bad[i].reason))
			goto fail;
	}
	if (listed_from > *pos)
		*pos = listed_from;
	if (state_cursor_set(r->st, sr->conf->name, stream, *pos, r->id, &r->err))
		goto fail;
	return state_commit(r->st, &r->err);
fail:
	state_rollback(r->st);
	return -1;
}

static int fetch_page(struct system_run *sr, const char *stream, long long since, char **cursor,
		      struct connector_page *page, struct df_err *e)
{
	if (strcmp(stream, "contacts") == 0)
		return sr->conn->poll_contacts(sr->handle, since, cursor, page, e);
	return sr->conn->poll_events(sr->handle, stream, since, cursor, page, e);
}

/* A listing that could not be read to the end. The poll's: the system
 * is unreachable or broken, so the others go on, its cursor stays, it gets
 * no writes this run and the run reports itself partial. A re-check's
 * (recheck): its updates fall back to reading each record first, so only
 * refused credentials stop it (I11). */
static void stream_failed(struct run *r, int s, const char *stream, bool recheck, struct df_err *e)
{
	struct system_run *sr = &r->sys[s];

	log_error("event=%s system=%s stream=%s reason=\"%s\"", recheck ? "recheck-failed" : "poll-failed",
		  sr->conf->name, stream, e->msg);
	sr->failures[e->fail]++;
	if (e->fail == DF_FAIL_AUTH) {
		engine_system_refused(r, s, e);
	} else if (!recheck) {
		char what[64];
		sr->poll_failed = true;
		snprintf(what, sizeof(what), "reading %s", stream);
		engine_note_problem(r, s, what, e);
	}
}

/* Pages through one stream of system s from its cursor minus lookback.
 * *complete says every page was read. recheck: the write stage's re-check
 * listing (poll_recheck). */
static int poll_stream(struct run *r, int s, const char *stream, bool recheck, bool *complete)
{
	struct system_run *sr = &r->sys[s];
	long long pos = 0, since, began = time_now_ms();
	char *cursor = NULL;
	unsigned long long seen[RECENT_CURSORS] = { 0 };
	struct progress prog;
	int page_no;

	*complete = false;
	if (state_cursor_get(r->st, sr->conf->name, stream, &pos, &r->err))
		return -1;
	since = r->opt->full ? 0 : pos - sr->conf->lookback * 1000LL;
	if (since < 0)
		since = 0;
	progress_start(r, &prog, stream, sr->conf->name, 0);
	for (page_no = 0; page_no < r->cfg->max_pages; page_no++) {
		struct observe_listing listing;
		struct connector_page page = { 0 };
		struct df_err e = { 0 };

		/* Records listed again unchanged are not even parsed. */
		observe_listing(&listing, r, s, &page);
		if (run_out_of_time(r))
			break;
		if (fetch_page(sr, stream, since, &cursor, &page, &e)) {
			stream_failed(r, s, stream, recheck, &e);
			connector_page_clear(&page);
			return 0;
		}
		if (observe_page(r, s, stream, &page, &pos, cursor == NULL ? began : 0)) {
			connector_page_clear(&page);
			free(cursor);
			return -1;
		}
		progress_step(r, &prog, page.nrecs + page.nevents + page.nbad);
		connector_page_clear(&page);
		if (cursor == NULL) {
			*complete = true;
			return 0;
		}
		if (cursor_repeats(seen, page_no, cursor)) {
			/* A listing handing back a cursor it gave before would page
			 * for ever: this stream fails for the run, its cursor stays
			 * at the last page that moved forward. */
			df_fail(&e, DF_FAIL_TEMP, "the listing repeated its cursor after %d pages", page_no + 1);
			stream_failed(r, s, stream, recheck, &e);
			free(cursor);
			return 0;
		}
	}
	if (page_no == r->cfg->max_pages)
		log_warn("event=poll-truncated system=%s stream=%s pages=%d reason=\"max_pages reached; "
			 "the next run goes on\"", sr->conf->name, stream, page_no);
	free(cursor);
	return 0;
}

static int poll_system(struct run *r, int s)
{
	struct system_run *sr = &r->sys[s];
	bool complete;

	/* Every read of its records this run comes after this moment; a
	 * changed-since listing read to the end has shown each record changed
	 * before it (write.c: known_recently). */
	sr->read_from_ms = time_now_ms();
	if (sr->conf->listing) {
		if (poll_stream(r, s, "contacts", false, &complete))
			return -1;
		sr->listed_all = complete && r->opt->full;
		sr->listed = complete && !sr->poll_failed;
	}
	/* A system that refused our credentials is asked nothing more (I11). */
	for (int i = 0; sr->conf->events && sr->conn->streams && sr->conn->streams[i] && !sr->auth_failed; i++)
		if (poll_stream(r, s, sr->conn->streams[i], false, &complete))
			return -1;
	log_info("event=polled system=%s records=%lld changed=%lld quarantined=%lld", sr->conf->name,
		 sr->counts.polled, sr->counts.changed, sr->counts.quarantined);
	return 0;
}

int poll_recheck(struct run *r, int s)
{
	struct system_run *sr = &r->sys[s];
	const struct run_options *was = r->opt;
	struct run_options incremental = *r->opt;
	long long began = time_now_ms(), polled = sr->counts.polled, changed = sr->counts.changed;
	bool complete = false;
	int rc;

	/* An incremental listing whatever the run: from the cursor (where the
	 * last complete listing began) minus the lookback, and observed as a
	 * plain run observes (a full run would read every GHL record whole
	 * and merge every person again). */
	incremental.full = false;
	r->opt = &incremental;
	rc = poll_stream(r, s, "contacts", true, &complete);
	r->opt = was;
	sr->rechecked = true;
	sr->listed = complete;
	if (complete)
		sr->read_from_ms = began;
	else
		sr->recheck_failed = true;
	r->recheck_changes += sr->counts.changed - changed;
	log_info("event=recheck system=%s complete=%s records=%lld changed=%lld", sr->conf->name,
		 complete ? "yes" : "no", sr->counts.polled - polled, sr->counts.changed - changed);
	return rc;
}

int poll_all(struct run *r)
{
	for (int s = 0; s < r->nsys; s++)
		if (poll_system(r, s))
			return -1;
	return 0;
}
