/*
 * progress.c - a line now and then on long runs: how far a stage is, at
 * what rate, and (where the total is known) when it will be done.
 *
 * Shown only to someone watching: on a terminal, or with -v. Cron's mail
 * and the journal stay as they were. Lines come at most every
 * progress_interval seconds, so a long first sync prints a few dozen.
 */
#include <stdio.h>
#include <unistd.h>

#include "engine.h"
#include "../core/str.h"

void progress_start(struct run *r, struct progress *p, const char *stage, const char *system,
		    long long total)
{
	*p = (struct progress){ .stage = stage, .system = system, .total = total,
				.started_ms = time_now_ms() };
	p->last_ms = p->started_ms;
	p->on = r->progress;
}

void progress_step(struct run *r, struct progress *p, long long n)
{
	long long now, elapsed;
	double rate;

	p->done += n;
	if (!p->on)
		return;
	now = time_now_ms();
	if (now - p->last_ms < r->cfg->progress_interval * 1000LL)
		return;
	p->last_ms = now;
	elapsed = now - p->started_ms;
	rate = elapsed > 0 ? (double)p->done * 1000.0 / (double)elapsed : 0;
	if (p->total > 0) {
		char eta[32] = "unknown";
		if (rate > 0)
			snprintf(eta, sizeof(eta), "%.0fs",
				 (double)(p->total > p->done ? p->total - p->done : 0) / rate);
		log_info("event=progress stage=%s system=%s done=%lld total=%lld rate=%.0f/s eta=%s",
			 p->stage, p->system, p->done, p->total, rate, eta);
	} else
		log_info("event=progress stage=%s system=%s done=%lld rate=%.0f/s", p->stage, p->system,
			 p->done, rate);
}

bool progress_wanted(void)
{
	return isatty(STDERR_FILENO) || log_enabled(LOG_DEBUG);
}
