/*
 * status.c - the admin's and the monitor's view across runs: how old each
 * system's and stream's data is, what waits to be written, what is held,
 * quarantined or was repaired by hand. Text for people, typed JSON for
 * tools (numbers are numbers, flags are booleans). Its SQL lives here, one
 * read-only query per section (issue 8 item 6: the report layer owns its
 * queries, like report/queries.c); the state layer only runs them
 * (state_query).
 *
 * Every query takes ?1 = now in ms since the epoch, so ages and lags are
 * computed against one clock reading.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "report.h"

/* Seconds from the ISO-8601 UTC time x to ?1 (ms). */
#define AGE(x) "CAST(round(?1 / 1000.0 - (julianday(" x ") - 2440587.5) * 86400) AS INTEGER)"

enum shape { ONE, ROWS, COUNTS };

struct status_section {
	const char *name;  /* JSON key */
	enum shape shape;  /* ONE: an object (or null); ROWS: an array; COUNTS: {status: n} */
	const char *title; /* text heading */
	const char *line;  /* text line: {col} placeholders */
	const char *sql;
};

static const struct status_section sections[] = {
	{ "last_run", ONE, "last run",
	  "  run {id} ({mode}) finished {finished_at} ({age_seconds} s ago): {status}, exit {exit_code} {message}",
	  "SELECT id, mode, started_at, finished_at, status, exit_code, coalesce(message, '') AS message, "
	  AGE("coalesce(finished_at, started_at)") " AS age_seconds FROM run ORDER BY id DESC LIMIT 1" },
	{ "last_ok_run", ONE, "last run that exited 0",
	  "  run {id} ({mode}) finished {finished_at} ({age_seconds} s ago)",
	  "SELECT id, mode, started_at, finished_at, " AGE("finished_at") " AS age_seconds "
	  "FROM run WHERE exit_code = 0 ORDER BY id DESC LIMIT 1" },
	/* A stream's cursor advances only after its pages are committed (I1):
	 * the run that last moved it is the last run that read it. */
	{ "systems", ROWS, "systems (last run that read each)",
	  "  {system}: last read by run {last_read_run}, finished {finished_at} ({age_seconds} s ago)",
	  "SELECT c.system, max(c.run_id) AS last_read_run, r.finished_at, " AGE("r.finished_at")
	  " AS age_seconds FROM cursor c JOIN run r ON r.id = c.run_id GROUP BY c.system ORDER BY c.system" },
	/* A stream never read to the end nor listing a change has no
	 * position nor lag (null). */
	{ "streams", ROWS, "streams (lag: now minus cursor)",
	  "  {system} {stream}: read up to {position}, lag {lag_seconds} s (run {run_id}, {run_age_seconds} s ago)",
	  "SELECT c.system, c.stream, CASE WHEN c.position_ms > 0 THEN strftime('%Y-%m-%dT%H:%M:%fZ', "
	  "c.position_ms / 1000.0, 'unixepoch') END AS position, "
	  "CASE WHEN c.position_ms > 0 THEN (?1 - c.position_ms) / 1000 END AS lag_seconds, c.run_id, r.finished_at AS run_finished_at, "
	  AGE("r.finished_at") " AS run_age_seconds FROM cursor c LEFT JOIN run r ON r.id = c.run_id "
	  "ORDER BY c.system, c.stream" },
	{ "recent_runs", ROWS, "recent runs",
	  "  run {id} {mode} {started_at} .. {finished_at} {status} exit {exit_code} {message}",
	  "SELECT id, mode, started_at, finished_at, status, exit_code, coalesce(message, '') AS message "
	  "FROM run WHERE ?1 = ?1 ORDER BY id DESC LIMIT 10" },
	{ "outbox", ONE, "writes",
	  "  {pending} pending, {unknown} unknown, {refused} refused, {given_up} given up",
	  "SELECT coalesce(sum(status = 'pending'), 0) AS pending, coalesce(sum(status = 'unknown'), 0) AS unknown, "
	  "coalesce(sum(status = 'refused'), 0) AS refused, coalesce(sum(status = 'failed'), 0) AS given_up "
	  "FROM outbox WHERE status IN ('pending', 'unknown', 'refused', 'failed') AND ?1 = ?1" },
	{ "oldest_pending", ONE, "oldest write waiting",
	  "  #{outbox_id} {system} {op} (person {person_id}) queued by run {run_id} at {queued_at} "
	  "({age_seconds} s ago) [{status}, {attempts} attempt(s)]",
	  "SELECT o.id AS outbox_id, o.system, o.op, o.person_id, o.run_id, o.status, o.attempts, "
	  "r.started_at AS queued_at, " AGE("r.started_at") " AS age_seconds FROM outbox o "
	  "JOIN run r ON r.id = o.run_id WHERE o.status IN ('pending', 'unknown') ORDER BY o.id LIMIT 1" },
	{ "deliveries", COUNTS, "calls and messages to deliver", "  {status}: {n}",
	  "SELECT status, count(*) AS n FROM delivery WHERE ?1 = ?1 GROUP BY status ORDER BY status" },
	/* known: the record's quarantine before had the same kind and reason
	 * (engine/observe.c); such a run exits 0 (man page, EXIT STATUS). */
	{ "quarantine", ROWS, "quarantined in the last run (known: reported before, unchanged)",
	  "  {system} {remote_id}: {kind}: {reason} (known {known}, first reported in run {first_run})",
	  "SELECT q.system, coalesce(q.remote_id, '') AS remote_id, q.kind, q.reason, "
	  "EXISTS (SELECT 1 FROM quarantine p WHERE p.id = (SELECT max(id) FROM quarantine "
	  "WHERE system = q.system AND remote_id IS q.remote_id AND run_id < q.run_id) "
	  "AND p.kind = q.kind AND p.reason = q.reason) AS known, "
	  "(SELECT min(run_id) FROM quarantine WHERE system = q.system AND remote_id IS q.remote_id "
	  "AND kind = q.kind AND reason = q.reason) AS first_run FROM quarantine q "
	  "WHERE q.run_id = (SELECT max(id) FROM run) AND ?1 = ?1 ORDER BY q.id" },
	{ "holds", ROWS, "records held from linking (resolve with link or unlink)",
	  "  {record} ({kind}, since run {run_id}): {reason}",
	  "SELECT system || ':' || remote_id AS record, system, remote_id, kind, reason, run_id, since "
	  "FROM hold WHERE ?1 = ?1 ORDER BY system, remote_id" },
	{ "admin_actions", ROWS, "admin actions (latest 20)",
	  "  #{id} {at} {action} {record} by {who}: {before} -> {after}",
	  "SELECT id, at, action, who, system || ':' || remote_id AS record, person_before, person_after, "
	  "coalesce(before, '') AS before, coalesce(after, '') AS after FROM admin_action "
	  "WHERE ?1 = ?1 ORDER BY id DESC LIMIT 20" },
	{ "writes_waiting", ROWS, "writes waiting, refused or given up (all runs)",
	  "  #{outbox_id} {system} {op} {remote_id} (person {person_id}, run {run_id}) "
	  "[{status}, {attempts} attempt(s)] {last_error}",
	  "SELECT id AS outbox_id, run_id, system, coalesce(remote_id, '') AS remote_id, person_id, op, "
	  "status, attempts, coalesce(last_error, '') AS last_error FROM outbox "
	  "WHERE status IN ('pending', 'unknown', 'refused', 'failed') AND ?1 = ?1 ORDER BY id" },
};

/* Columns that are flags: JSON booleans, text yes/no. */
static bool is_flag(const char *name)
{
	return strcmp(name, "known") == 0;
}

static json_object *typed_value(const struct state_cell *c)
{
	const char *v = c->text;

	if (c->type == STATE_NULL || v == NULL)
		return NULL;
	if (is_flag(c->name))
		return json_object_new_boolean(strcmp(v, "0") != 0);
	if (c->type == STATE_INTEGER)
		return json_object_new_int64(strtoll(v, NULL, 10));
	if (c->type == STATE_REAL)
		return json_object_new_double(strtod(v, NULL));
	return json_object_new_string(v);
}

struct json_ctx {
	enum shape shape;
	json_object *doc; /* ROWS: the array; ONE and COUNTS: the object */
	bool seen;
};

static int json_row(void *arg, int n, const struct state_cell *cells)
{
	struct json_ctx *j = arg;
	json_object *row;

	if (j->shape == COUNTS) {
		json_object_object_add(j->doc, cells[0].text ? cells[0].text : "", typed_value(&cells[1]));
		return 0;
	}
	row = j->shape == ONE ? j->doc : json_object_new_object();
	for (int i = 0; i < n; i++)
		json_object_object_add(row, cells[i].name, typed_value(&cells[i]));
	if (j->shape == ROWS)
		json_object_array_add(j->doc, row);
	j->seen = true;
	return j->shape == ONE; /* one row only */
}

struct text_ctx {
	FILE *out;
	const char *line;
	int rows;
};

static int text_row(void *arg, int n, const struct state_cell *cells)
{
	struct text_ctx *t = arg;
	const char *p = t->line;

	while (*p) {
		const char *close;
		if (*p == '{' && (close = strchr(p, '}')) != NULL) {
			for (int i = 0; i < n; i++) {
				if (strlen(cells[i].name) != (size_t)(close - p - 1) ||
				    strncmp(cells[i].name, p + 1, (size_t)(close - p - 1)) != 0)
					continue;
				if (is_flag(cells[i].name))
					fputs(cells[i].text && strcmp(cells[i].text, "0") ? "yes" : "no", t->out);
				else
					fputs(cells[i].text ? cells[i].text : "-", t->out);
			}
			p = close + 1;
		} else {
			fputc(*p++, t->out);
		}
	}
	fputc('\n', t->out);
	t->rows++;
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int report_status(struct state *st, enum report_format fmt, FILE *out, struct df_err *err)
{
	const size_t n = sizeof(sections) / sizeof(sections[0]);
	long long now = now_ms();
	char now_s[24];
	const char *params[1] = { now_s };

	snprintf(now_s, sizeof(now_s), "%lld", now);
	if (fmt == REPORT_JSON) {
		json_object *doc = json_object_new_object();
		char at[32];
		time_t secs = (time_t)(now / 1000);
		int rc = 0;

		strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", gmtime(&secs));
		json_object_object_add(doc, "now", json_object_new_string(at));
		for (size_t i = 0; i < n && rc == 0; i++) {
			struct json_ctx j = { sections[i].shape, sections[i].shape == ROWS ? json_object_new_array()
										  : json_object_new_object(), false };
			rc = state_query(st, sections[i].sql, params, 1, json_row, &j, err);
			if (sections[i].shape == ONE && !j.seen) {
				json_object_put(j.doc);
				j.doc = NULL;
			}
			json_object_object_add(doc, sections[i].name, j.doc);
		}
		if (rc == 0)
			fprintf(out, "%s\n", json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY |
									    JSON_C_TO_STRING_SPACED));
		json_object_put(doc);
		return rc;
	}
	for (size_t i = 0; i < n; i++) {
		struct text_ctx t = { out, sections[i].line, 0 };
		fprintf(out, "%s:\n", sections[i].title);
		if (state_query(st, sections[i].sql, params, 1, text_row, &t, err))
			return -1;
		if (t.rows == 0)
			fprintf(out, "  (none)\n");
	}
	return 0;
}
