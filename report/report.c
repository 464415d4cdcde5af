/*
 * report.c - the report, explain and status as documents. Each is built
 * once as typed JSON (numbers as numbers, sets as arrays, NULL as null)
 * from the named queries of report/queries.c, then rendered as JSON,
 * text, CSV (one section) or HTML (render_html.c would be the next file
 * if the page grows; today it is the last part of this one). Filters
 * (--system, --person, --limit) act on the rows of the details, so the
 * summary always answers for the whole run range.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "queries.h"
#include "../core/record.h"
#include "../core/str.h"

struct section {
	const char *name;       /* for --section */
	const char *key;        /* JSON key and query */
	const char *title;
	/* Text line: "{col}" placeholders are replaced by column values. */
	const char *line;
	/* CSV columns, in order. */
	const char *csv;
};

/* The detail sections of one run range, in report order. */
static const struct section sections[] = {
	{ "changes", "observed", "changes seen",
	  "  run {run_id} {system} {remote_id} (person {person_id}) {field}: \"{old_value}\" -> \"{new_value}\"",
	  "run_id,system,remote_id,person_id,field,old_value,new_value" },
	{ "conflicts", "conflicts", "conflicts",
	  "  run {run_id} person {person_id} {field}: base \"{base}\", values {candidates} -> \"{value}\" "
	  "from {winner} (rule {rule}: {reason})",
	  "run_id,person_id,field,base,candidates,winner,value,rule,reason" },
	{ "writes", "writes", "writes",
	  "  #{outbox_id} run {run_id} {system} {op} {remote_id} (person {person_id}) [{status}, {attempts} "
	  "attempt(s)] {last_error}",
	  "outbox_id,run_id,done_run,system,op,remote_id,person_id,status,attempts,last_error,"
	  "field,old_value,new_value,rule,reason" },
	{ "opt-outs", "optouts", "opt-outs",
	  "  run {run_id} {phone} {channel} (person {person_id}): {action} by {system}: {reason}",
	  "run_id,phone,channel,person_id,action,system,reason" },
	{ "deliveries", "deliveries", "calls and messages (delivered in these runs, or waiting)",
	  "  #{delivery_id} {kind} {source} {source_id} -> {target} (person {person_id}) [{status}, "
	  "{attempts} attempt(s)] {remote_id} {last_error}",
	  "delivery_id,run_id,done_run,kind,source,source_id,target,person_id,status,attempts,remote_id,last_error" },
	{ "quarantine", "quarantine", "quarantined records",
	  "  run {run_id} {system} {remote_id}: {kind}: {reason}",
	  "run_id,system,remote_id,kind,reason" },
	{ "notices", "notices", "not done",
	  "  run {run_id} {system} {remote_id} (person {person_id}): {kind}: {message}",
	  "run_id,system,person_id,remote_id,kind,message" },
};
#define NSECTIONS (sizeof(sections) / sizeof(sections[0]))

/* Sections about every run, shown in a full report until `status`
 * carries them (issue 8, item 6: the status command's owner moves them). */
static const struct section all_runs[] = {
	{ "holds", "holds", "records held from linking (all runs; resolve with link or unlink)",
	  "  {record} ({kind}, phone {phone}, email {email}, since run {run_id}): {reason}; "
	  "candidates {candidates}", NULL },
	{ "admin_actions", "admin_actions", "admin actions (latest 20)",
	  "  #{id} {at} {action} {record} by {who}: {before} -> {after}", NULL },
	{ "pending", "pending", "writes waiting, refused or given up (all runs)",
	  "  #{outbox_id} {system} {op} {remote_id} (person {person_id}, run {run_id}) "
	  "[{status}, {attempts} attempt(s)] {last_error}", NULL },
};

/* The summary's columns: JSON key, text heading. */
static const struct { const char *key, *head; } summary_cols[] = {
	{ "read", "read" }, { "created", "created" }, { "updated", "updated" }, { "cleared", "cleared" },
	{ "deleted", "deleted" }, { "list_changes", "lists" }, { "optouts", "opt-outs" },
	{ "calls_delivered", "calls" }, { "texts_delivered", "texts" }, { "failed", "failed" },
	{ "waiting", "waiting" }, { "quarantined", "quarantined" }, { "requests", "requests" },
};
#define NSUMMARY (sizeof(summary_cols) / sizeof(summary_cols[0]))

int report_section_known(const char *name)
{
	for (size_t i = 0; i < NSECTIONS; i++)
		if (strcmp(sections[i].name, name) == 0)
			return 1;
	return 0;
}

/* ---- typed rows ---- */

static bool is_set_field(const char *name)
{
	int f = name ? field_find(name) : -1;

	return f >= 0 && field_get(f)->kind == FIELD_SET;
}

/* Sets travel as one member per line; as JSON they are arrays. */
static json_object *set_array(const char *v)
{
	json_object *arr = json_object_new_array();
	const char *p = v;

	while (p && *p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		json_object_array_add(arr, json_object_new_string_len(p, (int)n));
		p = nl ? nl + 1 : NULL;
	}
	return arr;
}

static json_object *cell_json(const struct state_cell *c, bool set)
{
	json_object *v;

	switch (c->type) {
	case STATE_NULL: return NULL;
	case STATE_INTEGER: return json_object_new_int64(strtoll(c->text, NULL, 10));
	case STATE_REAL: return json_object_new_double(strtod(c->text, NULL));
	default: break;
	}
	if ((strcmp(c->name, "candidates") == 0 || strcmp(c->name, "beaten") == 0) &&
	    (v = json_tokener_parse(c->text)) != NULL)
		return v;
	if (set && (strcmp(c->name, "old_value") == 0 || strcmp(c->name, "new_value") == 0 ||
		    strcmp(c->name, "value") == 0 || strcmp(c->name, "base") == 0))
		return set_array(c->text);
	return json_object_new_string(c->text);
}

struct rows {
	json_object *arr;
	const struct report_filter *f;  /* NULL: keep every row */
	long omitted;
};

static bool cell_is(const struct state_cell *c, const char *text)
{
	return c->text && strcmp(c->text, text) == 0;
}

/* Does the row pass --system and --person? A row names a system in a
 * system, source, target or winner column, a person in person_id. */
static bool row_matches(const struct report_filter *f, int n, const struct state_cell *cells)
{
	bool sys_ok = f->system == NULL, person_ok = f->person == 0;
	char person[32];

	snprintf(person, sizeof(person), "%lld", f->person);
	for (int i = 0; i < n; i++) {
		const char *name = cells[i].name;
		if (f->system && (strcmp(name, "system") == 0 || strcmp(name, "source") == 0 ||
				  strcmp(name, "target") == 0 || strcmp(name, "winner") == 0) &&
		    cell_is(&cells[i], f->system))
			sys_ok = true;
		if (f->person && strcmp(name, "person_id") == 0 && cell_is(&cells[i], person))
			person_ok = true;
	}
	return sys_ok && person_ok;
}

static int collect_row(void *arg, int n, const struct state_cell *cells)
{
	struct rows *r = arg;
	json_object *row;
	bool set = false;

	if (r->f && !row_matches(r->f, n, cells))
		return 0;
	if (r->f && r->f->limit > 0 && (long)json_object_array_length(r->arr) >= r->f->limit) {
		r->omitted++;
		return 0;
	}
	for (int i = 0; i < n; i++)
		if (strcmp(cells[i].name, "field") == 0)
			set = is_set_field(cells[i].text);
	row = json_object_new_object();
	for (int i = 0; i < n; i++)
		json_object_object_add(row, cells[i].name, cell_json(&cells[i], set));
	json_object_array_add(r->arr, row);
	return 0;
}

/* The rows of a named query as a new JSON array; *omitted (may be NULL)
 * counts what the filter's limit left out. */
static json_object *query_rows(struct state *st, const char *name, const char *const *params, int n,
			       const struct report_filter *f, long *omitted, struct df_err *err)
{
	struct rows r = { json_object_new_array(), f, 0 };

	if (report_query(st, name, params, n, collect_row, &r, err)) {
		json_object_put(r.arr);
		return NULL;
	}
	if (omitted)
		*omitted = r.omitted;
	return r.arr;
}

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;

	json_object_object_get_ex(o, key, &v);
	return v;
}

/* ---- the report document ---- */

/* Each write gets its fields (one object per write, its fields inside). */
static int attach_write_fields(struct state *st, json_object *writes, const char *const *params,
			       struct df_err *err)
{
	json_object *fields = query_rows(st, "write_fields", params, 2, NULL, NULL, err);
	size_t j = 0, nf;

	if (fields == NULL)
		return -1;
	nf = json_object_array_length(fields);
	for (size_t i = 0; i < json_object_array_length(writes); i++) {
		json_object *w = json_object_array_get_idx(writes, i), *list = json_object_new_array();
		long long id = json_object_get_int64(get(w, "outbox_id"));
		while (j < nf && json_object_get_int64(get(json_object_array_get_idx(fields, j), "outbox_id")) < id)
			j++;
		for (; j < nf; j++) {
			json_object *fl = json_object_array_get_idx(fields, j);
			if (json_object_get_int64(get(fl, "outbox_id")) != id)
				break;
			json_object_object_del(fl, "outbox_id");
			json_object_array_add(list, json_object_get(fl));
		}
		json_object_object_add(w, "fields", list);
	}
	json_object_put(fields);
	return 0;
}

static json_object *report_doc(struct state *st, const struct report_filter *f, struct df_err *err)
{
	char from[24], to[24];
	const char *params[2] = { from, to };
	json_object *doc = json_object_new_object(), *omitted = json_object_new_object(), *v, *summary;

	snprintf(from, sizeof(from), "%lld", f->run_from);
	snprintf(to, sizeof(to), "%lld", f->run_to);
	json_object_object_add(doc, "omitted", omitted);
	v = query_rows(st, "run", params, 2, NULL, NULL, err);
	if (v == NULL)
		goto fail;
	if (json_object_array_length(v) == 0) {
		json_object_put(v);
		df_fail(err, DF_FAIL_STATE, "no run %lld in the state file", f->run_to);
		goto fail;
	}
	json_object_object_add(doc, "run", json_object_get(json_object_array_get_idx(v, 0)));
	json_object_put(v);
	v = json_object_new_object();
	json_object_object_add(v, "from", json_object_new_int64(f->run_from));
	json_object_object_add(v, "to", json_object_new_int64(f->run_to));
	json_object_object_add(doc, "range", v);
	summary = json_object_new_object();
	json_object_object_add(doc, "summary", summary);
	if ((v = query_rows(st, "summary", params, 2, NULL, NULL, err)) == NULL)
		goto fail;
	json_object_object_add(summary, "systems", v);
	if ((v = query_rows(st, "problems", params, 2, NULL, NULL, err)) == NULL)
		goto fail;
	json_object_object_add(summary, "problems", v);
	if ((v = query_rows(st, "runs_range", params, 2, NULL, NULL, err)) == NULL)
		goto fail;
	json_object_object_add(doc, "runs", v);
	if ((v = query_rows(st, "timeline", params, 2, NULL, NULL, err)) == NULL)
		goto fail;
	json_object_object_add(doc, "timeline", v);
	if ((v = query_rows(st, "systems", params, 2, f, NULL, err)) == NULL)
		goto fail;
	json_object_object_add(doc, "systems", v);
	for (size_t i = 0; i < NSECTIONS; i++) {
		long left = 0;
		if (f->section && strcmp(f->section, sections[i].name) != 0)
			continue;
		if ((v = query_rows(st, sections[i].key, params, 2, f, &left, err)) == NULL)
			goto fail;
		json_object_object_add(doc, sections[i].key, v);
		json_object_object_add(omitted, sections[i].key, json_object_new_int64(left));
		if (strcmp(sections[i].key, "writes") == 0 && attach_write_fields(st, v, params, err))
			goto fail;
	}
	for (size_t i = 0; i < sizeof(all_runs) / sizeof(all_runs[0]) && f->section == NULL; i++) {
		if ((v = query_rows(st, all_runs[i].key, params, 2, NULL, NULL, err)) == NULL)
			goto fail;
		json_object_object_add(doc, all_runs[i].key, v);
	}
	return doc;
fail:
	json_object_put(doc);
	return NULL;
}

/* ---- text ---- */

static void put_text(FILE *out, json_object *v)
{
	if (v == NULL)
		return;
	if (json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++)
			fprintf(out, "%s%s", i ? ", " : "", json_object_get_string(json_object_array_get_idx(v, i)));
		return;
	}
	fputs(json_object_get_string(v), out);
}

static void text_line(FILE *out, const char *line, json_object *row)
{
	for (const char *p = line; *p;) {
		const char *close;
		if (*p == '{' && (close = strchr(p, '}')) != NULL) {
			char key[64];
			snprintf(key, sizeof(key), "%.*s", (int)(close - p - 1), p + 1);
			put_text(out, get(row, key));
			p = close + 1;
		} else {
			fputc(*p++, out);
		}
	}
	fputc('\n', out);
}

/* one_run: the report covers one run, so its lines leave the run out. */
static void text_section(FILE *out, const struct section *s, json_object *rows, long omitted, bool one_run)
{
	static const char prefix[] = "  run {run_id} ";
	size_t n = json_object_array_length(rows);
	struct section shorter;
	char line[512];

	if (one_run && strncmp(s->line, prefix, sizeof(prefix) - 1) == 0) {
		snprintf(line, sizeof(line), "  %s", s->line + sizeof(prefix) - 1);
		shorter = *s;
		shorter.line = line;
		s = &shorter;
	}

	fprintf(out, "%s:\n", s->title);
	for (size_t i = 0; i < n; i++) {
		json_object *row = json_object_array_get_idx(rows, i), *fields = get(row, "fields");
		text_line(out, s->line, row);
		for (size_t j = 0; fields && j < json_object_array_length(fields); j++)
			text_line(out, "    {field}: \"{old_value}\" -> \"{new_value}\" (rule {rule}: {reason})",
				  json_object_array_get_idx(fields, j));
	}
	if (n == 0 && omitted == 0)
		fprintf(out, "  (none)\n");
	if (omitted > 0)
		fprintf(out, "  ... %ld more not shown (--limit)\n", omitted);
}

static void text_summary(FILE *out, json_object *doc)
{
	json_object *systems = get(get(doc, "summary"), "systems"), *problems = get(get(doc, "summary"), "problems");
	json_object *range = get(doc, "range");

	fprintf(out, "summary (run%s %s", json_object_get_int64(get(range, "from")) ==
		json_object_get_int64(get(range, "to")) ? "" : "s", json_object_get_string(get(range, "from")));
	if (json_object_get_int64(get(range, "from")) != json_object_get_int64(get(range, "to")))
		fprintf(out, "..%s", json_object_get_string(get(range, "to")));
	fprintf(out, "):\n  %-10s", "system");
	for (size_t c = 0; c < NSUMMARY; c++)
		fprintf(out, " %*s", (int)strlen(summary_cols[c].head) < 6 ? 6 : (int)strlen(summary_cols[c].head),
			summary_cols[c].head);
	fputc('\n', out);
	for (size_t i = 0; i < json_object_array_length(systems); i++) {
		json_object *row = json_object_array_get_idx(systems, i);
		fprintf(out, "  %-10s", json_object_get_string(get(row, "system")));
		for (size_t c = 0; c < NSUMMARY; c++)
			fprintf(out, " %*lld", (int)strlen(summary_cols[c].head) < 6 ? 6 : (int)strlen(summary_cols[c].head),
				(long long)json_object_get_int64(get(row, summary_cols[c].key)));
		fputc('\n', out);
	}
	fprintf(out, "problems:\n");
	for (size_t i = 0; i < json_object_array_length(problems); i++) {
		json_object *p = json_object_array_get_idx(problems, i);
		const char *sys = json_object_get_string(get(p, "system"));
		fprintf(out, "  run %s %s%s%s: %s\n", json_object_get_string(get(p, "run_id")), sys, *sys ? " " : "",
			json_object_get_string(get(p, "kind")), json_object_get_string(get(p, "cause")));
	}
	if (json_object_array_length(problems) == 0)
		fprintf(out, "  (none)\n");
	fputc('\n', out);
}

static void render_text(FILE *out, json_object *doc, const struct report_filter *f)
{
	bool one = f->run_from == f->run_to;

	text_line(out, "dfreconcile report: run {id} ({mode}), started {started_at}, finished {finished_at}, "
		  "status {status}, exit {exit_code}", get(doc, "run"));
	if (json_object_get_string_len(get(get(doc, "run"), "message")) > 0)
		text_line(out, "{message}", get(doc, "run"));
	text_summary(out, doc);
	if (f->section == NULL) {
		static const struct section sys = { "systems", "systems", "systems (per run)",
			"  run {run_id} {system}: polled {polled}, changed {changed}, quarantined {quarantined}, "
			"writes done {writes_done}, failed {writes_failed}, swept {swept} (at this budget "
			"{sweep_cycle} run(s) cover every linked record), unlinked {unlinked}, requests {requests}", NULL };
		text_section(out, &sys, get(doc, "systems"), 0, one);
	}
	for (size_t i = 0; i < NSECTIONS; i++)
		if (get(doc, sections[i].key))
			text_section(out, &sections[i], get(doc, sections[i].key),
				     (long)json_object_get_int64(get(get(doc, "omitted"), sections[i].key)), one);
	for (size_t i = 0; i < sizeof(all_runs) / sizeof(all_runs[0]); i++)
		if (get(doc, all_runs[i].key))
			text_section(out, &all_runs[i], get(doc, all_runs[i].key), 0, false);
}

/* ---- CSV (RFC 4180: CRLF, fields with , " CR LF quoted, " doubled) ---- */

static void csv_field(FILE *out, json_object *v)
{
	struct strbuf b;
	const char *s;

	sb_init(&b);
	if (v && json_object_is_type(v, json_type_array)) {
		/* A set's members, one per line, as the state keeps them. */
		for (size_t i = 0; i < json_object_array_length(v); i++)
			sb_addf(&b, "%s%s", i ? "\n" : "", json_object_get_string(json_object_array_get_idx(v, i)));
	} else if (v && (json_object_is_type(v, json_type_object))) {
		sb_addf(&b, "%s", json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
	} else if (v) {
		sb_addf(&b, "%s", json_object_get_string(v));
	}
	s = b.buf ? b.buf : "";
	if (strpbrk(s, ",\"\r\n")) {
		fputc('"', out);
		for (; *s; s++) {
			if (*s == '"')
				fputc('"', out);
			fputc(*s, out);
		}
		fputc('"', out);
	} else {
		fputs(s, out);
	}
	sb_free(&b);
}

static void csv_row(FILE *out, const char *cols, json_object *row, json_object *sub)
{
	char name[64];

	for (const char *p = cols; *p;) {
		size_t n = strcspn(p, ",");
		snprintf(name, sizeof(name), "%.*s", (int)n, p);
		if (p != cols)
			fputc(',', out);
		csv_field(out, get(row, name) ? get(row, name) : sub ? get(sub, name) : NULL);
		p += n;
		if (*p == ',')
			p++;
	}
	fputs("\r\n", out);
}

static void render_csv(FILE *out, json_object *doc, const struct section *s)
{
	json_object *rows = get(doc, s->key);

	fprintf(out, "%s\r\n", s->csv);
	for (size_t i = 0; i < json_object_array_length(rows); i++) {
		json_object *row = json_object_array_get_idx(rows, i), *fields = get(row, "fields");
		if (fields == NULL || json_object_array_length(fields) == 0)
			csv_row(out, s->csv, row, NULL);
		/* A write is one line per field it changed. */
		for (size_t j = 0; fields && j < json_object_array_length(fields); j++)
			csv_row(out, s->csv, row, json_object_array_get_idx(fields, j));
	}
}

/* ---- HTML ---- */

static void html_escape(FILE *out, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", out); break;
		case '>': fputs("&gt;", out); break;
		case '&': fputs("&amp;", out); break;
		case '"': fputs("&quot;", out); break;
		default: fputc(*s, out);
		}
	}
}

static void html_value(FILE *out, json_object *v)
{
	if (v == NULL)
		return;
	if (json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			if (i)
				fputs(", ", out);
			html_escape(out, json_object_get_string(json_object_array_get_idx(v, i)));
		}
		return;
	}
	html_escape(out, json_object_get_string(v));
}

static const char html_head[] =
	"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	"<meta name=\"viewport\" content=\"width=device-width\">\n<title>dfreconcile report</title>\n<style>\n"
	"body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.4em}"
	"h2{font-size:1.1em;margin-top:1.5em;border-bottom:1px solid #ccc}"
	"table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:2px 6px;"
	"text-align:left;vertical-align:top}td.n{text-align:right}th{background:#f3f3f3}"
	".bar{display:flex;align-items:center;margin:2px 0}.bar .l{width:7em}"
	".bar .b{height:14px;background:#3a7bd5;margin-right:4px}.bar .f{background:#d9534f}"
	".tl{display:flex;align-items:flex-end;gap:2px;height:60px}.tl div{width:10px;background:#5cb85c}"
	".tl div.bad{background:#d9534f}.problems li{color:#a00}.problems li.ok{color:#080}"
	"input.filter{margin:.3em 0;width:20em}\n</style></head><body>\n";

/* Filters: typing in a table's box hides the rows without the text. A
 * link can carry one (#filter=t-writes:verity). data-ready marks a page
 * whose script ran to the end. */
static const char html_script[] =
	"<script>\n"
	"function dfFilter(inp){\n"
	"  var q=inp.value.toLowerCase(),t=document.getElementById(inp.dataset.table),shown=0;\n"
	"  t.querySelectorAll('tbody tr').forEach(function(tr){\n"
	"    var hit=tr.textContent.toLowerCase().indexOf(q)>=0;tr.style.display=hit?'':'none';if(hit)shown++;});\n"
	"  document.getElementById(inp.dataset.table+'-shown').textContent=shown;}\n"
	"document.querySelectorAll('input.filter').forEach(function(inp){\n"
	"  inp.addEventListener('input',function(){dfFilter(inp);});});\n"
	"var m=/^#filter=([^:]+):(.*)$/.exec(location.hash);\n"
	"if(m){var inp=document.querySelector('input[data-table=\"'+m[1]+'\"]');\n"
	"  if(inp){inp.value=decodeURIComponent(m[2]);dfFilter(inp);}}\n"
	"document.body.dataset.ready='1';\n"
	"</script>\n";

static void html_summary(FILE *out, json_object *doc)
{
	json_object *systems = get(get(doc, "summary"), "systems"), *problems = get(get(doc, "summary"), "problems");
	long long max = 1;

	fputs("<h2>Summary</h2>\n<table id=\"summary\"><thead><tr><th>system</th>", out);
	for (size_t c = 0; c < NSUMMARY; c++)
		fprintf(out, "<th>%s</th>", summary_cols[c].head);
	fputs("</tr></thead><tbody>\n", out);
	for (size_t i = 0; i < json_object_array_length(systems); i++) {
		json_object *row = json_object_array_get_idx(systems, i);
		const char *sys = json_object_get_string(get(row, "system"));
		fputs("<tr><td>", out);
		html_escape(out, sys);
		fputs("</td>", out);
		for (size_t c = 0; c < NSUMMARY; c++) {
			fputs("<td class=\"n\" data-system=\"", out);
			html_escape(out, sys);
			fprintf(out, "\" data-key=\"%s\">%lld</td>", summary_cols[c].key,
				(long long)json_object_get_int64(get(row, summary_cols[c].key)));
		}
		fputs("</tr>\n", out);
		for (size_t c = 1; c < NSUMMARY - 1; c++)
			if (json_object_get_int64(get(row, summary_cols[c].key)) > max)
				max = json_object_get_int64(get(row, summary_cols[c].key));
	}
	fputs("</tbody></table>\n<h2>Problems</h2>\n<ul class=\"problems\" id=\"problems\">\n", out);
	for (size_t i = 0; i < json_object_array_length(problems); i++) {
		json_object *p = json_object_array_get_idx(problems, i);
		fputs("<li>run ", out);
		html_value(out, get(p, "run_id"));
		fputs(" ", out);
		html_value(out, get(p, "system"));
		fputs(" <b>", out);
		html_value(out, get(p, "kind"));
		fputs("</b>: ", out);
		html_value(out, get(p, "cause"));
		fputs("</li>\n", out);
	}
	if (json_object_array_length(problems) == 0)
		fputs("<li class=\"ok\">none</li>\n", out);
	/* Per system: what was written (blue) and what failed or waits (red). */
	fputs("</ul>\n<h2>Writes per system</h2>\n<div id=\"bars\">\n", out);
	for (size_t i = 0; i < json_object_array_length(systems); i++) {
		json_object *row = json_object_array_get_idx(systems, i);
		long long ok = 0, bad = json_object_get_int64(get(row, "failed")) + json_object_get_int64(get(row, "waiting"));
		for (size_t c = 1; c <= 8; c++)
			ok += json_object_get_int64(get(row, summary_cols[c].key));
		fputs("<div class=\"bar\"><span class=\"l\">", out);
		html_value(out, get(row, "system"));
		fprintf(out, "</span><span class=\"b\" style=\"width:%lldpx\"></span>"
			"<span class=\"b f\" style=\"width:%lldpx\"></span>%lld written, %lld failed or waiting</div>\n",
			ok * 300 / (max * 4 > ok ? max * 4 : ok ? ok : 1), bad * 300 / (max * 4 > bad ? max * 4 : bad ? bad : 1),
			ok, bad);
	}
	fputs("</div>\n", out);
}

static void html_timeline(FILE *out, json_object *doc)
{
	json_object *tl = get(doc, "timeline");
	long long max = 1;
	size_t n = json_object_array_length(tl);

	for (size_t i = 0; i < n; i++) {
		json_object *r = json_object_array_get_idx(tl, i);
		long long w = json_object_get_int64(get(r, "written")) + json_object_get_int64(get(r, "delivered"));
		if (w > max)
			max = w;
	}
	fputs("<h2>Recent runs</h2>\n<div class=\"tl\" id=\"timeline\">\n", out);
	for (size_t i = n; i-- > 0;) {
		json_object *r = json_object_array_get_idx(tl, i);
		long long w = json_object_get_int64(get(r, "written")) + json_object_get_int64(get(r, "delivered"));
		fprintf(out, "<div class=\"%s\" style=\"height:%lldpx\" title=\"run %lld ",
			json_object_get_int64(get(r, "exit_code")) == 0 ? "" : "bad", 4 + w * 56 / max,
			(long long)json_object_get_int64(get(r, "id")));
		html_value(out, get(r, "started_at"));
		fputs(": ", out);
		html_value(out, get(r, "status"));
		fprintf(out, ", %lld written\"></div>\n", w);
	}
	fputs("</div>\n", out);
}

static void html_table(FILE *out, const struct section *s, json_object *rows, long omitted)
{
	size_t n = json_object_array_length(rows);
	const char *cols = s->csv;
	char name[64];

	fprintf(out, "<h2>%s</h2>\n<input class=\"filter\" placeholder=\"filter\" data-table=\"t-%s\"> "
		"<span id=\"t-%s-shown\">%zu</span> of %zu shown", s->title, s->key, s->key, n, n);
	if (omitted > 0)
		fprintf(out, "; %ld more not shown (--limit)", omitted);
	fprintf(out, "\n<table id=\"t-%s\" data-rows=\"%zu\"><thead><tr>", s->key, n);
	for (const char *p = cols; *p; p += *p == ',') {
		size_t k = strcspn(p, ",");
		fprintf(out, "<th>%.*s</th>", (int)k, p);
		p += k;
	}
	fputs("</tr></thead><tbody>\n", out);
	for (size_t i = 0; i < n; i++) {
		json_object *row = json_object_array_get_idx(rows, i), *fields = get(row, "fields");
		size_t nf = fields ? json_object_array_length(fields) : 0;
		for (size_t j = 0; j < (nf ? nf : 1); j++) {
			json_object *sub = nf ? json_object_array_get_idx(fields, j) : NULL;
			fputs("<tr>", out);
			for (const char *p = cols; *p; p += *p == ',') {
				size_t k = strcspn(p, ",");
				snprintf(name, sizeof(name), "%.*s", (int)k, p);
				fputs("<td>", out);
				html_value(out, get(row, name) ? get(row, name) : sub ? get(sub, name) : NULL);
				fputs("</td>", out);
				p += k;
			}
			fputs("</tr>\n", out);
		}
	}
	fputs("</tbody></table>\n", out);
}

static void render_html(FILE *out, json_object *doc)
{
	json_object *run = get(doc, "run"), *range = get(doc, "range");

	fputs(html_head, out);
	long long from = json_object_get_int64(get(range, "from")), to = json_object_get_int64(get(range, "to"));

	if (from == to)
		fprintf(out, "<h1>dfreconcile report: run <span id=\"from\">%lld</span>"
			"<span id=\"to\" hidden>%lld</span></h1>\n<p>", from, to);
	else
		fprintf(out, "<h1>dfreconcile report: runs <span id=\"from\">%lld</span>..<span id=\"to\">%lld</span>"
			"</h1>\n<p>", from, to);
	fputs("Last run started ", out);
	html_value(out, get(run, "started_at"));
	fputs(", finished ", out);
	html_value(out, get(run, "finished_at"));
	fputs(", status <b id=\"status\">", out);
	html_value(out, get(run, "status"));
	fputs("</b>. ", out);
	html_value(out, get(run, "message"));
	fputs("</p>\n", out);
	html_summary(out, doc);
	html_timeline(out, doc);
	for (size_t i = 0; i < NSECTIONS; i++)
		if (get(doc, sections[i].key))
			html_table(out, &sections[i], get(doc, sections[i].key),
				   (long)json_object_get_int64(get(get(doc, "omitted"), sections[i].key)));
	fputs(html_script, out);
	fputs("</body></html>\n", out);
}

int report_first_run_since(struct state *st, const char *since, long long *run, struct df_err *err)
{
	json_object *v = query_rows(st, "first_run_since", &since, 1, NULL, NULL, err);

	if (v == NULL)
		return -1;
	*run = json_object_get_int64(get(json_object_array_get_idx(v, 0), "id"));
	json_object_put(v);
	return 0;
}

int report_print(struct state *st, const struct report_filter *f, enum report_format fmt, FILE *out,
		 struct df_err *err)
{
	json_object *doc;

	if (fmt == REPORT_CSV && f->section == NULL)
		return df_fail(err, DF_FAIL_INPUT, "--format csv needs --section (one table per file)");
	doc = report_doc(st, f, err);
	if (doc == NULL)
		return -1;
	switch (fmt) {
	case REPORT_JSON:
		fprintf(out, "%s\n", json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED));
		break;
	case REPORT_CSV:
		for (size_t i = 0; i < NSECTIONS; i++)
			if (strcmp(sections[i].name, f->section) == 0)
				render_csv(out, doc, &sections[i]);
		break;
	case REPORT_HTML: render_html(out, doc); break;
	default: render_text(out, doc, f); break;
	}
	json_object_put(doc);
	return 0;
}

/* ---- explain ---- */

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
	{ "admin", "explain_admin", "admin actions (manual links and unlinks)",
	  "  #{id} {at} {action} {record} by {who}: {before} -> {after}", NULL },
	/* Pins (issue 8, item 4) slot in here: a query "explain_pins" and a
	 * line, and explain_fields marks a pinned field's "pin". */
};

/* For each agreed value: every linked system's current value (from its
 * snapshot) and when it was read, and the field's conflict history. */
static json_object *explain_fields(json_object *doc, json_object *sides)
{
	json_object *values = get(doc, "explain_values"), *conflicts = get(doc, "explain_conflicts");
	json_object *fields = json_object_new_array();

	for (size_t i = 0; i < json_object_array_length(values); i++) {
		json_object *v = NULL, *bysys = json_object_new_object();
		json_object *hist = json_object_new_array();
		const char *field;

		json_object_deep_copy(json_object_array_get_idx(values, i), &v, NULL);
		field = json_object_get_string(get(v, "field"));
		for (size_t s = 0; s < json_object_array_length(sides); s++) {
			json_object *side = json_object_array_get_idx(sides, s), *rec, *val = NULL, *one;
			const char *text = json_object_get_string(get(side, "fields"));
			rec = text ? json_tokener_parse(text) : NULL;
			one = json_object_new_object();
			if (rec && json_object_object_get_ex(rec, field, &val)) {
				const char *t = json_object_get_string(val);
				json_object_object_add(one, "value", is_set_field(field) ? set_array(t) : json_object_new_string(t));
			} else {
				json_object_object_add(one, "value", NULL); /* the system does not carry it */
			}
			json_object_object_add(one, "remote_id", json_object_get(get(side, "remote_id")));
			json_object_object_add(one, "seen_run", json_object_get(get(side, "seen_run")));
			json_object_object_add(one, "seen_at", json_object_get(get(side, "seen_at")));
			json_object_object_add(bysys, json_object_get_string(get(side, "system")), one);
			json_object_put(rec);
		}
		for (size_t c = 0; c < json_object_array_length(conflicts); c++) {
			json_object *con = json_object_array_get_idx(conflicts, c);
			if (strcmp(json_object_get_string(get(con, "field")), field) == 0)
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
	json_object *fields = get(doc, "fields");

	text_line(out, "person {id} (first seen in run {created_run})", get(doc, "person"));
	text_section(out, &explain_sections[0], get(doc, "explain_links"), 0, false);
	fprintf(out, "fields (agreed value, rule and reason; each system's side; conflict history):\n");
	for (size_t i = 0; i < json_object_array_length(fields); i++) {
		json_object *f = json_object_array_get_idx(fields, i), *hist = get(f, "conflicts");
		text_line(out, "  {field} = \"{value}\" from {system} (rule {rule}: {reason}; run {run_id})", f);
		json_object_object_foreach(get(f, "systems"), sys, side) {
			fprintf(out, "    %s: ", sys);
			if (get(side, "value"))
				text_line(out, "\"{value}\" (read in run {seen_run}, {seen_at})", side);
			else
				fprintf(out, "(not carried)\n");
		}
		for (size_t c = 0; c < json_object_array_length(hist); c++)
			text_line(out, "    conflict in run {run_id}: base \"{base}\", values {candidates} -> \"{value}\" "
				  "from {winner} (rule {rule}: {reason})", json_object_array_get_idx(hist, c));
	}
	if (json_object_array_length(fields) == 0)
		fprintf(out, "  (none)\n");
	for (size_t i = 2; i < sizeof(explain_sections) / sizeof(explain_sections[0]); i++)
		if (explain_sections[i].line)
			text_section(out, &explain_sections[i], get(doc, explain_sections[i].key), 0, false);
}

int report_explain(struct state *st, long long person, enum report_format fmt, FILE *out,
		   struct df_err *err)
{
	char key[24];
	const char *params[1] = { key };
	json_object *doc = json_object_new_object(), *v, *sides;
	int rc = -1;

	snprintf(key, sizeof(key), "%lld", person);
	if ((v = query_rows(st, "person", params, 1, NULL, NULL, err)) == NULL)
		goto done;
	if (json_object_array_length(v) == 0) {
		json_object_put(v);
		rc = df_fail(err, DF_FAIL_INPUT, "no person %lld in the state file", person);
		goto done;
	}
	json_object_object_add(doc, "person", json_object_get(json_object_array_get_idx(v, 0)));
	json_object_put(v);
	for (size_t i = 0; i < sizeof(explain_sections) / sizeof(explain_sections[0]); i++) {
		if ((v = query_rows(st, explain_sections[i].key, params, 1, NULL, NULL, err)) == NULL)
			goto done;
		json_object_object_add(doc, explain_sections[i].key, v);
	}
	if ((sides = query_rows(st, "explain_sides", params, 1, NULL, NULL, err)) == NULL)
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

/* ---- status ---- */

/* Prints each row of a named all-runs query as line; returns the row
 * count, -1 on failure. */
static long print_query(struct state *st, const char *name, const char *line, FILE *out, struct df_err *err)
{
	const char *params[1] = { "0" };
	json_object *rows = query_rows(st, name, params, 1, NULL, NULL, err);
	long n;

	if (rows == NULL)
		return -1;
	n = (long)json_object_array_length(rows);
	for (long i = 0; i < n; i++)
		text_line(out, line, json_object_array_get_idx(rows, (size_t)i));
	json_object_put(rows);
	return n;
}

int report_status(struct state *st, FILE *out, struct df_err *err)
{
	long long pending = 0, failed = 0, unknown = 0, refused = 0;
	long n;

	fprintf(out, "cursors:\n");
	if (print_query(st, "cursors", "  {system} {stream}: changes up to {position} (run {run_id})", out, err) < 0)
		return -1;
	fprintf(out, "recent runs:\n");
	if (print_query(st, "runs", "  run {id} {mode} {started_at} .. {finished_at} {status} exit {exit_code} {message}",
			out, err) < 0)
		return -1;
	if (state_outbox_count(st, "pending", &pending, err) || state_outbox_count(st, "failed", &failed, err) ||
	    state_outbox_count(st, "unknown", &unknown, err) || state_outbox_count(st, "refused", &refused, err))
		return -1;
	fprintf(out, "calls and messages to deliver:\n");
	if ((n = print_query(st, "delivery_counts", "  {status}: {n}", out, err)) < 0)
		return -1;
	if (n == 0)
		fprintf(out, "  (none)\n");
	/* unknown: sent without an answer; refused: the system's answer is
	 * in the list below, `dfreconcile retry` sends it again (I11). */
	fprintf(out, "outbox: %lld pending, %lld unknown, %lld refused, %lld given up\n", pending, unknown,
		refused, failed);
	return print_query(st, "pending", all_runs[2].line, out, err) < 0 ? -1 : 0;
}
