/*
 * queries.c - every SQL statement the report layer runs: the report of a
 * run range, explain, status. Read-only by construction (state_query
 * refuses a statement that writes); the state layer owns the schema and
 * the run's own statements, this file owns what auditors and admins read.
 */
#include <string.h>

#include "queries.h"

static const struct { const char *name; const char *sql; } queries[] = {
	{ "run", "SELECT id, started_at, finished_at, mode, status, exit_code, message FROM run WHERE id = ?2" },
	{ "systems", "SELECT run_id, system, polled, changed, quarantined, writes_done, writes_failed, swept, "
		     "sweep_cycle, unlinked, requests "
		     "FROM run_system WHERE run_id BETWEEN ?1 AND ?2 ORDER BY run_id, rowid" },
	{ "observed", "SELECT run_id, system, remote_id, person_id, field, old_value, new_value FROM observed "
		      "WHERE run_id BETWEEN ?1 AND ?2 ORDER BY run_id, rowid" },
	{ "conflicts", "SELECT run_id, person_id, field, base, candidates, winner, value, rule, reason FROM conflict "
		       "WHERE run_id BETWEEN ?1 AND ?2 ORDER BY id" },
	/* One row per write; its fields come from write_fields. */
	{ "writes", "SELECT o.id AS outbox_id, o.run_id, o.done_run, o.system, coalesce(o.remote_id, '') AS remote_id, "
		    "o.person_id, o.op, o.status, o.attempts, coalesce(o.last_error, '') AS last_error FROM outbox o "
		    "WHERE o.run_id BETWEEN ?1 AND ?2 OR o.done_run BETWEEN ?1 AND ?2 ORDER BY o.id" },
	/* A write's fields are packed in its row (outbox.fields, schema 11):
	 * [field, old_value, new_value, rule, reason], in the order planned,
	 * rule and reason by their id in wording. */
	{ "write_fields", "SELECT o.id AS outbox_id, f.value ->> 0 AS field, f.value ->> 1 AS old_value, "
			  "f.value ->> 2 AS new_value, "
			  "coalesce((SELECT text FROM wording WHERE id = f.value ->> 3), '-') AS rule, "
			  "coalesce((SELECT text FROM wording WHERE id = f.value ->> 4), '') AS reason "
			  "FROM outbox o, json_each(o.fields) f "
			  /* The range's writes by id: an OR beside json_each
			   * made the planner walk every write. */
			  "WHERE o.id IN (SELECT id FROM outbox WHERE run_id BETWEEN ?1 AND ?2 "
			  "OR done_run BETWEEN ?1 AND ?2) ORDER BY o.id, f.key" },
	{ "quarantine", "SELECT run_id, system, coalesce(remote_id, '') AS remote_id, kind, reason FROM quarantine "
			"WHERE run_id BETWEEN ?1 AND ?2 ORDER BY id" },
	{ "notices", "SELECT run_id, system, nullif(person_id, 0) AS person_id, coalesce(remote_id, '') AS remote_id, "
		     "kind, message FROM notice WHERE run_id BETWEEN ?1 AND ?2 ORDER BY id" },
	{ "optouts", "SELECT run_id, phone, channel, person_id, action, coalesce(system, '') AS system, "
		     "coalesce(reason, '') AS reason FROM optout_log WHERE run_id BETWEEN ?1 AND ?2 ORDER BY id" },
	{ "deliveries", "SELECT d.id AS delivery_id, d.run_id, d.done_run, e.kind, e.source, e.source_id, d.target, "
			"e.person_id, d.status, d.attempts, coalesce(d.remote_id, '') AS remote_id, "
			"coalesce(d.last_error, '') AS last_error FROM delivery d JOIN event e ON e.id = d.event_id "
			"WHERE d.done_run BETWEEN ?1 AND ?2 OR d.status IN ('waiting', 'pending', 'unknown', 'refused') "
			"OR (d.status = 'failed' AND d.run_id BETWEEN ?1 AND ?2) ORDER BY d.id" },
	{ "person", "SELECT id, created_run FROM person WHERE id = ?1" },
	{ "explain_links", "SELECT system, remote_id, how, run_id, CASE WHEN deleted_run IS NULL THEN '' "
			   "ELSE 'deleted there in run ' || deleted_run END AS deleted FROM link "
			   "WHERE person_id = ?1 ORDER BY system" },
	{ "explain_values", "SELECT field, value, coalesce(system, '-') AS system, rule, reason, run_id, "
			    "coalesce(beaten, '{}') AS beaten FROM field_value WHERE person_id = ?1 ORDER BY field" },
	{ "explain_optouts", "SELECT o.phone, o.channel, o.status, o.source, coalesce(o.reason, '') AS reason, "
			     "o.changed_at FROM optout o JOIN agreed a ON a.phone = o.phone "
			     "WHERE a.person_id = ?1 ORDER BY o.channel" },
	{ "explain_lists", "SELECT list_id, status, run_id FROM list_member WHERE person_id = ?1 ORDER BY list_id" },
	{ "explain_conflicts", "SELECT run_id, field, base, candidates, winner, value, rule, reason FROM conflict "
			       "WHERE person_id = ?1 ORDER BY id" },
	{ "explain_writes", "SELECT id AS outbox_id, run_id, system, op, coalesce(remote_id, '') AS remote_id, status, "
			    "attempts, coalesce(last_error, '') AS last_error FROM outbox WHERE person_id = ?1 "
			    "ORDER BY id DESC LIMIT 20" },
	{ "explain_deliveries", "SELECT e.kind, e.source, e.source_id, d.target, d.status, "
				"coalesce(d.remote_id, '') AS remote_id FROM event e JOIN delivery d ON d.event_id = e.id "
				"WHERE e.person_id = ?1 ORDER BY d.id" },
	{ "holds", "SELECT h.system || ':' || h.remote_id AS record, h.kind, h.reason, h.run_id, h.since, "
		   "coalesce(s.phone, '') AS phone, coalesce(s.email, '') AS email, "
		   "(SELECT json_group_array(c) FROM (SELECT s2.system || ':' || s2.remote_id || "
		   "CASE WHEN l.person_id IS NOT NULL THEN ' person ' || l.person_id ELSE ' held' END AS c "
		   "FROM snapshot s2 LEFT JOIN link l ON l.system = s2.system AND l.remote_id = s2.remote_id "
		   "AND l.deleted_run IS NULL LEFT JOIN hold h2 ON h2.system = s2.system AND h2.remote_id = s2.remote_id "
		   "WHERE (l.person_id IS NOT NULL OR h2.system IS NOT NULL) "
		   "AND ((s.phone <> '' AND s2.phone = s.phone) OR (s.email <> '' AND s2.email = s.email)) "
		   "ORDER BY s2.system, s2.remote_id)) AS candidates "
		   "FROM hold h LEFT JOIN snapshot s ON s.system = h.system AND s.remote_id = h.remote_id "
		   "WHERE ?1 = ?1 ORDER BY h.system, h.remote_id" },
	{ "admin_actions", "SELECT id, at, action, who, system || ':' || remote_id AS record, "
			   "coalesce(person_before, '') AS person_before, coalesce(person_after, '') AS person_after, "
			   "coalesce(before, '') AS before, coalesce(after, '') AS after FROM admin_action "
			   "WHERE ?1 = ?1 ORDER BY id DESC LIMIT 20" },
	{ "explain_pins", "SELECT field, value, at, who FROM pin WHERE person_id = ?1 ORDER BY field" },
	{ "explain_admin", "SELECT id, at, action, who, system || ':' || remote_id AS record, "
			   "coalesce(person_before, '') AS person_before, coalesce(person_after, '') AS person_after, "
			   "coalesce(before, '') AS before, coalesce(after, '') AS after FROM admin_action "
			   "WHERE person_before = ?1 OR person_after = ?1 ORDER BY id" },
	/* The summary: per system, what the runs ?1..?2 read, wrote and could
	 * not do. Writes count when done in the range; failed and waiting
	 * count the writes and deliveries the range queued that are still in
	 * that state. */
	{ "summary", "WITH sys(system) AS (SELECT DISTINCT system FROM run_system WHERE run_id BETWEEN ?1 AND ?2 "
		     "UNION SELECT DISTINCT target FROM delivery WHERE done_run BETWEEN ?1 AND ?2), "
		     "w AS (SELECT * FROM outbox WHERE status = 'done' AND done_run BETWEEN ?1 AND ?2), "
		     "d AS (SELECT d.target, d.status, d.run_id, d.done_run, e.kind FROM delivery d "
		     "JOIN event e ON e.id = d.event_id WHERE d.done_run BETWEEN ?1 AND ?2 "
		     "OR (d.status IN ('failed', 'refused', 'waiting', 'pending', 'unknown') AND d.run_id BETWEEN ?1 AND ?2)) "
		     "SELECT s.system, "
		     "(SELECT coalesce(sum(polled), 0) FROM run_system WHERE system = s.system "
		     "AND run_id BETWEEN ?1 AND ?2) AS read, "
		     "(SELECT count(*) FROM w WHERE system = s.system AND op = 'create') AS created, "
		     "(SELECT count(*) FROM w WHERE system = s.system AND op = 'update') AS updated, "
		     "(SELECT count(*) FROM w, json_each(w.fields) f WHERE w.system = s.system "
		     "AND w.op = 'update' AND coalesce(f.value ->> 2, '') = '' AND coalesce(f.value ->> 1, '') <> '') "
		     "AS cleared, "
		     "(SELECT count(*) FROM w WHERE system = s.system AND op = 'delete') AS deleted, "
		     "(SELECT count(*) FROM w WHERE system = s.system AND op IN ('list-add', 'list-remove')) AS list_changes, "
		     "(SELECT count(*) FROM optout_log WHERE system = s.system AND action = 'opt-out' "
		     "AND run_id BETWEEN ?1 AND ?2) AS optouts, "
		     "(SELECT count(*) FROM d WHERE target = s.system AND status = 'done' AND kind = 'call' "
		     "AND done_run BETWEEN ?1 AND ?2) AS calls_delivered, "
		     "(SELECT count(*) FROM d WHERE target = s.system AND status = 'done' AND kind <> 'call' "
		     "AND done_run BETWEEN ?1 AND ?2) AS texts_delivered, "
		     "(SELECT count(*) FROM outbox WHERE system = s.system AND status IN ('failed', 'refused') "
		     "AND run_id BETWEEN ?1 AND ?2) + (SELECT count(*) FROM d WHERE target = s.system "
		     "AND status IN ('failed', 'refused') AND run_id BETWEEN ?1 AND ?2) AS failed, "
		     "(SELECT count(*) FROM outbox WHERE system = s.system AND status IN ('pending', 'unknown') "
		     "AND run_id BETWEEN ?1 AND ?2) + (SELECT count(*) FROM d WHERE target = s.system "
		     "AND status IN ('waiting', 'pending', 'unknown') AND run_id BETWEEN ?1 AND ?2) AS waiting, "
		     "(SELECT coalesce(sum(quarantined), 0) FROM run_system WHERE system = s.system "
		     "AND run_id BETWEEN ?1 AND ?2) AS quarantined, "
		     "(SELECT coalesce(sum(requests), 0) FROM run_system WHERE system = s.system "
		     "AND run_id BETWEEN ?1 AND ?2) AS requests "
		     "FROM sys s ORDER BY s.system" },
	/* One line per problem with its cause: a system that could not be
	 * read, refused our credentials or ran out of quota (notices the run
	 * records), then what stopped a run (the valve, a failure) or cut it
	 * short (the deadline), from the run's own message. */
	{ "problems", "SELECT run_id, system, kind, message AS cause FROM notice "
		      "WHERE run_id BETWEEN ?1 AND ?2 AND kind IN ('unreadable', 'credentials', 'quota', 'custom-field') "
		      "UNION ALL SELECT id, '', CASE status WHEN 'safety-valve' THEN 'valve' "
		      "WHEN 'ok' THEN 'deadline' WHEN 'partial' THEN 'deadline' ELSE status END, message FROM run "
		      "WHERE id BETWEEN ?1 AND ?2 AND message IS NOT NULL AND (status IN ('safety-valve', 'failed', 'locked') "
		      "OR message LIKE '%deadline%') ORDER BY 1, 2" },
	/* The runs of the range, and the recent ones before it (timeline). */
	{ "runs_range", "SELECT id, started_at, finished_at, mode, status, exit_code, coalesce(message, '') AS message "
			"FROM run WHERE id BETWEEN ?1 AND ?2 ORDER BY id" },
	{ "timeline", "SELECT r.id, r.started_at, r.finished_at, r.status, r.exit_code, "
		      "(SELECT coalesce(sum(polled), 0) FROM run_system WHERE run_id = r.id) AS read, "
		      "(SELECT count(*) FROM outbox WHERE done_run = r.id AND status = 'done') AS written, "
		      "(SELECT count(*) FROM delivery WHERE done_run = r.id AND status = 'done') AS delivered "
		      "FROM run r WHERE r.id <= ?2 ORDER BY r.id DESC LIMIT 30" },
	{ "first_run_since", "SELECT coalesce(min(id), 0) AS id FROM run WHERE started_at >= ?1" },
	/* explain: each system's current record for the person and when it
	 * was last read (every system's side of each field). */
	{ "explain_sides", "SELECT l.system, l.remote_id, s.fields, s.seen_run, r.started_at AS seen_at "
			   "FROM link l LEFT JOIN snapshot s ON s.system = l.system AND s.remote_id = l.remote_id "
			   "LEFT JOIN run r ON r.id = s.seen_run WHERE l.person_id = ?1 AND l.deleted_run IS NULL "
			   "ORDER BY l.system" },
};

const char *report_query_sql(const char *name)
{
	for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++)
		if (strcmp(queries[i].name, name) == 0)
			return queries[i].sql;
	return NULL;
}

int report_query_count(void)
{
	return (int)(sizeof(queries) / sizeof(queries[0]));
}

const char *report_query_at(int i)
{
	return i >= 0 && i < report_query_count() ? queries[i].sql : NULL;
}

int report_query(struct state *st, const char *name, const char *const *params, int nparams,
		 state_row_fn row, void *arg, struct df_err *err)
{
	const char *sql = report_query_sql(name);

	if (sql == NULL)
		return df_fail(err, DF_FAIL_STATE, "report: no query %s", name);
	return state_query(st, sql, params, nparams, row, arg, err);
}
