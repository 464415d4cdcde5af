/*
 * event.h - the canonical form of things that happened (a call, a text
 * message), as connectors read them from the source and deliver them to the
 * target. An event carries its identity and links plus a small set of
 * named attributes (direction, body, duration, ...) that travel as they are.
 */
#ifndef DF_EVENT_H
#define DF_EVENT_H

#define EVENT_MAX_ATTRS 16

struct event {
	char *kind;             /* "call" or "message" */
	char *source_id;        /* the source system's id of the event */
	char *contact_id;       /* the source system's contact id, or NULL */
	char *phone;            /* the contact's phone, or NULL */
	long long occurred_ms;  /* when it happened */
	long long updated_ms;   /* the source's update time (cursor) */
	int nattr;
	struct {
		char *key, *value;
	} attr[EVENT_MAX_ATTRS];
};

void event_init(struct event *ev);
void event_clear(struct event *ev);
/* Copies key and value (NULL value is skipped); extra attributes past the
 * limit are dropped. */
void event_set(struct event *ev, const char *key, const char *value);
const char *event_get(const struct event *ev, const char *key); /* NULL if absent */

/* Attributes as a JSON object (caller frees) and back. */
char *event_attrs_json(const struct event *ev);
int event_attrs_from_json(struct event *ev, const char *json);

#endif
