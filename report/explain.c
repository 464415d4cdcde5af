/*
 * explain.c - why a person's values are what they are (each field's
 * agreed value, every system's side, rule, reason, conflict history,
 * links and admin actions), and status, the admin's view of all runs.
 * Read-only, from report/queries.c.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "render.h"
#include "queries.h"

static const struct section explain_sections[] = {
	{ "records", "explain_links", "records (links; how admin = a manual link)",
	  "  {system} {remote_id}: linked by {how} in run {run_id} {deleted}", NULL },
	{ "values", "explain_values", NULL, NULL, NULL },  /* rendered per field, below */
	{ "optouts", "explain_optouts", "opt-out registry",
	  "  {phone} {channel}: {status} by {source} ({reason}) at {changed_at}", NULL },
	{ "lists", "explain_lists", "call lists", "  list {list_id}: {status} (run {run_id})", NULL },
	{ "conflicts", "explain_conflicts", NULL, NULL, NULL },  /* per field, below */
	{ "writes", "explain_writes", "writes (latest 20)",
	  "  #{outbox_id} run {run_id} {system} {op} {remote_id} [{status}, {attempts} attempt(s)] {last_error}", NULL },
	{ "deliveries", "explain_deliveries", "calls and messages",
	  "  {kind} {source} {source_id} -> {target} [{status}] {remote_id}", NULL },
	{ "pins", "explain_pins", "pins (held against every system until unpinned)",
	  "  {field} = \"{value}\" pinned by {who} at {at}", NULL },
	{ "admin", "explain_admin", "admin actions (links, unlinks, pins, unpins, undos)",
	  "  #{id} {at} {action} {record} by {who}: {before} -> {after}", NULL },
	/* A pinned field's agreed value says so itself: rule "pin", reason
	 * "pinned by an admin" (engine/reconcile.c). */
};

/* For each agreed value: every linked system's current value (from its
 * snapshot) and when it was read, and the field's conflict history. */
static json_object *explain_fields(json_object *doc, json_object *sides)
{
	json_object *values = report_get(doc, "explain_values"), *conflicts = report_get(doc, "explain_conflicts");
	json_object *fields = json_object_new_array();

	for (size_t i = 0; i < json_object_array_length(values); i++) {
		json_object *v = NULL, *bysys = json_object_new_object();
		json_object *hist = json_object_new_array();
		const char *field;

		json_object_deep_copy(json_object_array_get_idx(values, i), &v, NULL);
		field = json_object_get_string(report_get(v, "field"));
		for (size_t s = 0; s < json_object_array_length(sides); s++) {
			json_object *side = json_object_array_get_idx(sides, s), *rec, *val = NULL, *one;
			const char *text = json_object_get_string(report_get(side, "fields"));
			rec = text ? json_tokener_parse(text) : NULL;
			one = json_object_new_object();
			if (rec && json_object_object_get_ex(rec, field, &val)) {
				const char *t = json_object_get_string(val);
				json_object_object_add(one, "value", report_is_set_field(field) ? report_set_array(t) : json_object_new_string(t));
			} else {
				json_object_object_add(one, "value", NULL); /* the system does not carry it */
			}
			json_object_object_add(one, "remote_id", json_object_get(report_get(side, "remote_id")));
			json_object_object_add(one, "seen_run", json_object_get(report_get(side, "seen_run")));
			json_object_object_add(one, "seen_at", json_object_get(report_get(side, "seen_at")));
			json_object_object_add(bysys, json_object_get_string(report_get(side, "system")), one);
			json_object_put(rec);
		}
		for (size_t c = 0; c < json_object_array_length(conflicts); c++) {
			json_object *con = json_object_array_get_idx(conflicts, c);
			if (strcmp(json_object_get_string(report_get(con, "field")), field) == 0)
				json_object_array_add(hist, json_object_get(con));
		}
		json_object_object_add(v, "systems", bysys);
		json_object_object_add(v, "conflicts", hist);
		json_object_array_add(fields, v);
	}
	return fields;
}

static void explain_text(FILE *out, json_object *doc)
{
	json_object *fields = report_get(doc, "fields");

	report_text_line(out, "person {id} (first seen in run {created_run})", report_get(doc, "person"));
	report_text_section(out, &explain_sections[0], report_get(doc, "explain_links"), 0, false);
	fprintf(out, "fields (agreed value, rule and reason; each system's side; conflict history):\n");
	for (size_t i = 0; i < json_object_array_length(fields); i++) {
		json_object *f = json_object_array_get_idx(fields, i), *hist = report_get(f, "conflicts");
		report_text_line(out, "  {field} = \"{value}\" from {system} (rule {rule}: {reason}; run {run_id})", f);
		json_object_object_foreach(report_get(f, "systems"), sys, side) {
			fprintf(out, "    %s: ", sys);
			if (report_get(side, "value"))
				report_text_line(out, "\"{value}\" (read in run {seen_run}, {seen_at})", side);
			else
				fprintf(out, "(not carried)\n");
		}
		for (size_t c = 0; c < json_object_array_length(hist); c++)
			report_text_line(out, "    conflict in run {run_id}: base \"{base}\", values {candidates} -> \"{value}\" "
				  "from {winner} (rule {rule}: {reason})", json_object_array_get_idx(hist, c));
	}
	if (json_object_array_length(fields) == 0)
		fprintf(out, "  (none)\n");
	for (size_t i = 2; i < sizeof(explain_sections) / sizeof(explain_sections[0]); i++)
		if (explain_sections[i].line)
			report_text_section(out, &explain_sections[i], report_get(doc, explain_sections[i].key), 0, false);
}

int report_explain(struct state *st, long long person, enum report_format fmt, FILE *out,
		   struct df_err *err)
{
	char key[24];
	const char *params[1] = { key };
	json_object *doc = json_object_new_object(), *v, *sides;
	int rc = -1;

	snprintf(key, sizeof(key), "%lld", person);
	if ((v = report_rows(st, "person", params, 1, NULL, NULL, err)) == NULL)
		goto done;
	if (json_object_array_length(v) == 0) {
		json_object_put(v);
		rc = df_fail(err, DF_FAIL_INPUT, "no person %lld in the state file", person);
		goto done;
	}
	json_object_object_add(doc, "person", json_object_get(json_object_array_get_idx(v, 0)));
	json_object_put(v);
	for (size_t i = 0; i < sizeof(explain_sections) / sizeof(explain_sections[0]); i++) {
		if ((v = report_rows(st, explain_sections[i].key, params, 1, NULL, NULL, err)) == NULL)
			goto done;
		json_object_object_add(doc, explain_sections[i].key, v);
	}
	if ((sides = report_rows(st, "explain_sides", params, 1, NULL, NULL, err)) == NULL)
		goto done;
	json_object_object_add(doc, "fields", explain_fields(doc, sides));
	json_object_put(sides);
	if (fmt == REPORT_JSON)
		fprintf(out, "%s\n", json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED));
	else
		explain_text(out, doc);
	rc = 0;
done:
	json_object_put(doc);
	return rc;
}
