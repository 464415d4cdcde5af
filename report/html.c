/*
 * html.c - the report as one self-contained HTML page for a browser:
 * inline CSS and JavaScript, nothing fetched from the network. The
 * summary, the problems, a bar per system, a timeline of recent runs and
 * a table per section with a filter box. Figures are written by C (the
 * page is complete without its script); the script only filters.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "render.h"

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
	json_object *systems = report_get(report_get(doc, "summary"), "systems"), *problems = report_get(report_get(doc, "summary"), "problems");
	long long max = 1;

	fputs("<h2>Summary</h2>\n<table id=\"summary\"><thead><tr><th>system</th>", out);
	for (size_t c = 0; c < report_nsummary; c++)
		fprintf(out, "<th>%s</th>", report_summary_cols[c].head);
	fputs("</tr></thead><tbody>\n", out);
	for (size_t i = 0; i < json_object_array_length(systems); i++) {
		json_object *row = json_object_array_get_idx(systems, i);
		const char *sys = json_object_get_string(report_get(row, "system"));
		fputs("<tr><td>", out);
		html_escape(out, sys);
		fputs("</td>", out);
		for (size_t c = 0; c < report_nsummary; c++) {
			fputs("<td class=\"n\" data-system=\"", out);
			html_escape(out, sys);
			fprintf(out, "\" data-key=\"%s\">%lld</td>", report_summary_cols[c].key,
				(long long)json_object_get_int64(report_get(row, report_summary_cols[c].key)));
		}
		fputs("</tr>\n", out);
		for (size_t c = 1; c < report_nsummary - 1; c++)
			if (json_object_get_int64(report_get(row, report_summary_cols[c].key)) > max)
				max = json_object_get_int64(report_get(row, report_summary_cols[c].key));
	}
	fputs("</tbody></table>\n<h2>Problems</h2>\n<ul class=\"problems\" id=\"problems\">\n", out);
	for (size_t i = 0; i < json_object_array_length(problems); i++) {
		json_object *p = json_object_array_get_idx(problems, i);
		fputs("<li>run ", out);
		html_value(out, report_get(p, "run_id"));
		fputs(" ", out);
		html_value(out, report_get(p, "system"));
		fputs(" <b>", out);
		html_value(out, report_get(p, "kind"));
		fputs("</b>: ", out);
		html_value(out, report_get(p, "cause"));
		fputs("</li>\n", out);
	}
	if (json_object_array_length(problems) == 0)
		fputs("<li class=\"ok\">none</li>\n", out);
	/* Per system: what was written (blue) and what failed or waits (red). */
	fputs("</ul>\n<h2>Writes per system</h2>\n<div id=\"bars\">\n", out);
	for (size_t i = 0; i < json_object_array_length(systems); i++) {
		json_object *row = json_object_array_get_idx(systems, i);
		long long ok = 0, bad = json_object_get_int64(report_get(row, "failed")) + json_object_get_int64(report_get(row, "waiting"));
		for (size_t c = 1; c <= 8; c++)
			ok += json_object_get_int64(report_get(row, report_summary_cols[c].key));
		fputs("<div class=\"bar\"><span class=\"l\">", out);
		html_value(out, report_get(row, "system"));
		fprintf(out, "</span><span class=\"b\" style=\"width:%lldpx\"></span>"
			"<span class=\"b f\" style=\"width:%lldpx\"></span>%lld written, %lld failed or waiting</div>\n",
			ok * 300 / (max * 4 > ok ? max * 4 : ok ? ok : 1), bad * 300 / (max * 4 > bad ? max * 4 : bad ? bad : 1),
			ok, bad);
	}
	fputs("</div>\n", out);
}

static void html_timeline(FILE *out, json_object *doc)
{
	json_object *tl = report_get(doc, "timeline");
	long long max = 1;
	size_t n = json_object_array_length(tl);

	for (size_t i = 0; i < n; i++) {
		json_object *r = json_object_array_get_idx(tl, i);
		long long w = json_object_get_int64(report_get(r, "written")) + json_object_get_int64(report_get(r, "delivered"));
		if (w > max)
			max = w;
	}
	fputs("<h2>Recent runs</h2>\n<div class=\"tl\" id=\"timeline\">\n", out);
	for (size_t i = n; i-- > 0;) {
		json_object *r = json_object_array_get_idx(tl, i);
		long long w = json_object_get_int64(report_get(r, "written")) + json_object_get_int64(report_get(r, "delivered"));
		fprintf(out, "<div class=\"%s\" style=\"height:%lldpx\" title=\"run %lld ",
			json_object_get_int64(report_get(r, "exit_code")) == 0 ? "" : "bad", 4 + w * 56 / max,
			(long long)json_object_get_int64(report_get(r, "id")));
		html_value(out, report_get(r, "started_at"));
		fputs(": ", out);
		html_value(out, report_get(r, "status"));
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
		json_object *row = json_object_array_get_idx(rows, i), *fields = report_get(row, "fields");
		size_t nf = fields ? json_object_array_length(fields) : 0;
		for (size_t j = 0; j < (nf ? nf : 1); j++) {
			json_object *sub = nf ? json_object_array_get_idx(fields, j) : NULL;
			fputs("<tr>", out);
			for (const char *p = cols; *p; p += *p == ',') {
				size_t k = strcspn(p, ",");
				snprintf(name, sizeof(name), "%.*s", (int)k, p);
				fputs("<td>", out);
				html_value(out, report_get(row, name) ? report_get(row, name) : sub ? report_get(sub, name) : NULL);
				fputs("</td>", out);
				p += k;
			}
			fputs("</tr>\n", out);
		}
	}
	fputs("</tbody></table>\n", out);
}

void report_render_html(FILE *out, json_object *doc)
{
	json_object *run = report_get(doc, "run"), *range = report_get(doc, "range");

	fputs(html_head, out);
	long long from = json_object_get_int64(report_get(range, "from")), to = json_object_get_int64(report_get(range, "to"));

	if (from == to)
		fprintf(out, "<h1>dfreconcile report: run <span id=\"from\">%lld</span>"
			"<span id=\"to\" hidden>%lld</span></h1>\n<p>", from, to);
	else
		fprintf(out, "<h1>dfreconcile report: runs <span id=\"from\">%lld</span>..<span id=\"to\">%lld</span>"
			"</h1>\n<p>", from, to);
	fputs("Last run started ", out);
	html_value(out, report_get(run, "started_at"));
	fputs(", finished ", out);
	html_value(out, report_get(run, "finished_at"));
	fputs(", status <b id=\"status\">", out);
	html_value(out, report_get(run, "status"));
	fputs("</b>. ", out);
	html_value(out, report_get(run, "message"));
	fputs("</p>\n", out);
	html_summary(out, doc);
	html_timeline(out, doc);
	for (size_t i = 0; i < report_nsections; i++)
		if (report_get(doc, report_sections[i].key))
			html_table(out, &report_sections[i], report_get(doc, report_sections[i].key),
				   (long)json_object_get_int64(report_get(report_get(doc, "omitted"), report_sections[i].key)));
	fputs(html_script, out);
	fputs("</body></html>\n", out);
}
