/*
 * render.h - private to report/: the sections of a report, the typed rows
 * every document is built from, and the text and HTML renderers the
 * report and explain share. Not for use outside report/.
 */
#ifndef DF_REPORT_RENDER_H
#define DF_REPORT_RENDER_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>

#include "report.h"

struct section {
	const char *name;       /* for --section */
	const char *key;        /* JSON key and query */
	const char *title;
	/* Text line: "{col}" placeholders are replaced by column values. */
	const char *line;
	/* CSV and HTML columns, in order. */
	const char *csv;
};

/* The detail sections of a run range, in report order (report.c). */
extern const struct section report_sections[];
extern const size_t report_nsections;
/* The summary's columns: JSON key, text heading. */
struct summary_col { const char *key, *head; };
extern const struct summary_col report_summary_cols[];
extern const size_t report_nsummary;

/* The rows of a named query as a new JSON array (caller puts it), typed;
 * f (may be NULL) filters and limits them, *omitted (may be NULL) counts
 * what the limit left out. NULL on failure, err set. */
json_object *report_rows(struct state *st, const char *name, const char *const *params, int n,
			 const struct report_filter *f, long *omitted, struct df_err *err);
/* o's member key, borrowed; NULL when absent. */
json_object *report_get(json_object *o, const char *key);
bool report_is_set_field(const char *name);
/* A set's text (one member per line) as a new JSON array. */
json_object *report_set_array(const char *v);
/* line with each "{col}" replaced by row's value, and a newline. */
void report_text_line(FILE *out, const char *line, json_object *row);
/* A titled section of rows; one_run leaves "run N" out of the lines. */
void report_text_section(FILE *out, const struct section *s, json_object *rows, long omitted, bool one_run);
void report_render_html(FILE *out, json_object *doc);

#endif
