/*
 * report.c - rendering the report queries of the state layer as text or
 * JSON. Each section is one named query (state.c: report_queries); text
 * rendering is table-driven so a new section is one line here.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "../core/str.h"

struct section {
	const char *query;
	const char *title;
	/* Text line: "{col}" placeholders are replaced by column values. */
	const char *line;
};

static const struct section sections[] = {
	{ "systems", "systems",
	  "  {system}: polled {polled}, changed {changed}, quarantined {quarantined}, "
	  "writes done {writes_done}, failed {writes_failed}, swept {swept} (at this budget "
	  "{sweep_cycle} run(s) cover every linked record), unlinked {unlinked}, requests {requests}" },
	{ "observed", "changes seen",
	  "  {system} {remote_id} (person {person_id}) {field}: \"{old_value}\" -> \"{new_value}\"" },
	{ "conflicts", "conflicts",
	  "  person {person_id} {field}: base \"{base}\", values {candidates} -> \"{value}\" "
	  "from {winner} (rule {rule}: {reason})" },
	{ "writes", "writes",
	  "  #{outbox_id} {system} {op} {remote_id} (person {person_id}) [{status}, {attempts} attempt(s)] "
	  "{field}: \"{old_value}\" -> \"{new_value}\" (rule {rule}) {last_error}" },
	{ "optouts", "opt-outs",
	  "  {phone} {channel} (person {person_id}): {action} by {system}: {reason}" },
	{ "deliveries", "calls and messages (delivered this run, or waiting)",
	  "  #{delivery_id} {kind} {source} {source_id} -> {target} (person {person_id}) [{status}, "
	  "{attempts} attempt(s)] {remote_id} {last_error}" },
	{ "quarantine", "quarantined records",
	  "  {system} {remote_id}: {kind}: {reason}" },
	{ "notices", "not done",
	  "  {system} {remote_id} (person {person_id}): {kind}: {message}" },
	{ "holds", "records held from linking (all runs; resolve with link or unlink)",
	  "  {record} ({kind}, phone {phone}, email {email}, since run {run_id}): {reason}; "
	  "candidates {candidates}" },
	{ "admin_actions", "admin actions (latest 20)",
	  "  #{id} {at} {action} {record} by {who}: {before} -> {after}" },
	{ "pending", "writes waiting, refused or given up (all runs)",
	  "  #{outbox_id} {system} {op} {remote_id} (person {person_id}, run {run_id}) "
	  "[{status}, {attempts} attempt(s)] {last_error}" },
};

struct text_ctx {
	FILE *out;
	const char *line;
	int rows;
};

static void put_value(FILE *out, const char *v)
{
	/* Sets are stored one member per line; show them as a list. */
	for (; v && *v; v++) {
		if (*v == '\n')
			fputs(", ", out);
		else
			fputc(*v, out);
	}
}

static int text_row(void *arg, int n, const char *const *names, const char *const *values)
{
	struct text_ctx *t = arg;
	const char *p = t->line;

	while (*p) {
		const char *close;
		if (*p == '{' && (close = strchr(p, '}')) != NULL) {
			for (int i = 0; i < n; i++)
				if (strlen(names[i]) == (size_t)(close - p - 1) &&
				    strncmp(names[i], p + 1, (size_t)(close - p - 1)) == 0)
					put_value(t->out, values[i] ? values[i] : "");
			p = close + 1;
		} else {
			fputc(*p++, t->out);
		}
	}
	fputc('\n', t->out);
	t->rows++;
	return 0;
}

static int json_row(void *arg, int n, const char *const *names, const char *const *values)
{
	json_object *arr = arg, *row = json_object_new_object();

	for (int i = 0; i < n; i++) {
		json_object *v = NULL;
		if (values[i] && strcmp(names[i], "candidates") == 0)
			v = json_tokener_parse(values[i]);
		if (v == NULL && values[i])
			v = json_object_new_string(values[i]);
		json_object_object_add(row, names[i], v);
	}
	json_object_array_add(arr, row);
	return 0;
}

/* The sections as one JSON document (head: the single-row query that
 * names what the document is about) or as text. */
static int render(struct state *st, const struct section *secs, size_t n, const char *head,
		  const char *head_line, long long key, enum report_format fmt, FILE *out,
		  struct df_err *err)
{
	if (fmt == REPORT_JSON) {
		json_object *doc = json_object_new_object(), *rows = json_object_new_array();
		int rc = state_report(st, head, key, json_row, rows, err);
		if (rc == 0 && json_object_array_length(rows) == 0)
			rc = df_fail(err, DF_FAIL_STATE, "no %s %lld in the state file", head, key);
		if (rc == 0)
			json_object_object_add(doc, head, json_object_get(json_object_array_get_idx(rows, 0)));
		json_object_put(rows);
		for (size_t i = 0; i < n && rc == 0; i++) {
			json_object *arr = json_object_new_array();
			rc = state_report(st, secs[i].query, key, json_row, arr, err);
			json_object_object_add(doc, secs[i].query, arr);
		}
		if (rc == 0)
			fprintf(out, "%s\n", json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY |
									    JSON_C_TO_STRING_SPACED));
		json_object_put(doc);
		return rc;
	}
	struct text_ctx h = { out, head_line, 0 };
	if (state_report(st, head, key, text_row, &h, err))
		return -1;
	if (h.rows == 0)
		return df_fail(err, DF_FAIL_STATE, "no %s %lld in the state file", head, key);
	for (size_t i = 0; i < n; i++) {
		struct text_ctx t = { out, secs[i].line, 0 };
		fprintf(out, "%s:\n", secs[i].title);
		if (state_report(st, secs[i].query, key, text_row, &t, err))
			return -1;
		if (t.rows == 0)
			fprintf(out, "  (none)\n");
	}
	return 0;
}

int report_print(struct state *st, long long run, enum report_format fmt, FILE *out,
		 struct df_err *err)
{
	return render(st, sections, sizeof(sections) / sizeof(sections[0]), "run",
		      "dfreconcile report: run {id} ({mode}), started {started_at}, finished {finished_at}, "
		      "status {status}, exit {exit_code}\n{message}", run, fmt, out, err);
}

static const struct section explain_sections[] = {
	{ "explain_links", "records", "  {system} {remote_id}: linked by {how} in run {run_id} {deleted}" },
	{ "explain_values", "agreed values (I5: who won, by which rule, what it beat)",
	  "  {field} = \"{value}\" from {system} (rule {rule}: {reason}; run {run_id}) beat {beaten}" },
	{ "explain_optouts", "opt-out registry", "  {phone} {channel}: {status} by {source} ({reason}) at {changed_at}" },
	{ "explain_lists", "call lists", "  list {list_id}: {status} (run {run_id})" },
	{ "explain_conflicts", "conflicts (latest 20)",
	  "  run {run_id} {field}: base \"{base}\", values {candidates} -> \"{value}\" from {winner} "
	  "(rule {rule}: {reason})" },
	{ "explain_writes", "writes (latest 20)",
	  "  #{outbox_id} run {run_id} {system} {op} {remote_id} [{status}, {attempts} attempt(s)] {last_error}" },
	{ "explain_deliveries", "calls and messages",
	  "  {kind} {source} {source_id} -> {target} [{status}] {remote_id}" },
	{ "explain_admin", "admin actions",
	  "  #{id} {at} {action} {record} by {who}: {before} -> {after}" },
};

int report_explain(struct state *st, long long person, enum report_format fmt, FILE *out,
		   struct df_err *err)
{
	return render(st, explain_sections, sizeof(explain_sections) / sizeof(explain_sections[0]),
		      "person", "person {id} (first seen in run {created_run})", person, fmt, out, err);
}

int report_status(struct state *st, FILE *out, struct df_err *err)
{
	struct text_ctx cur = { out, "  {system} {stream}: changes up to {position} (run {run_id})", 0 };
	struct text_ctx runs = { out, "  run {id} {mode} {started_at} .. {finished_at} {status} exit {exit_code} {message}", 0 };
	struct text_ctx pend = { out, sections[sizeof(sections) / sizeof(sections[0]) - 1].line, 0 };
	long long pending = 0, failed = 0, unknown = 0, refused = 0;

	fprintf(out, "cursors:\n");
	if (state_report(st, "cursors", 0, text_row, &cur, err))
		return -1;
	fprintf(out, "recent runs:\n");
	if (state_report(st, "runs", 0, text_row, &runs, err))
		return -1;
	if (state_outbox_count(st, "pending", &pending, err) || state_outbox_count(st, "failed", &failed, err) ||
	    state_outbox_count(st, "unknown", &unknown, err) || state_outbox_count(st, "refused", &refused, err))
		return -1;
	struct text_ctx deliv = { out, "  {status}: {n}", 0 };
	fprintf(out, "calls and messages to deliver:\n");
	if (state_report(st, "delivery_counts", 0, text_row, &deliv, err))
		return -1;
	if (deliv.rows == 0)
		fprintf(out, "  (none)\n");
	/* unknown: sent without an answer; refused: the system's answer is
	 * in the list below, `dfreconcile retry` sends it again (I11). */
	fprintf(out, "outbox: %lld pending, %lld unknown, %lld refused, %lld given up\n", pending, unknown,
		refused, failed);
	return state_report(st, "pending", 0, text_row, &pend, err);
}
