/*
 * event.c - canonical events.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "str.h"

void event_init(struct event *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->occurred_ms = ev->updated_ms = -1;
}

void event_clear(struct event *ev)
{
	free(ev->kind);
	free(ev->source_id);
	free(ev->contact_id);
	free(ev->phone);
	for (int i = 0; i < ev->nattr; i++) {
		free(ev->attr[i].key);
		free(ev->attr[i].value);
	}
	event_init(ev);
}

void event_set(struct event *ev, const char *key, const char *value)
{
	if (value == NULL || ev->nattr >= EVENT_MAX_ATTRS)
		return;
	for (int i = 0; i < ev->nattr; i++) {
		if (strcmp(ev->attr[i].key, key) == 0) {
			free(ev->attr[i].value);
			ev->attr[i].value = xstrdup(value);
			return;
		}
	}
	ev->attr[ev->nattr].key = xstrdup(key);
	ev->attr[ev->nattr].value = xstrdup(value);
	ev->nattr++;
}

const char *event_get(const struct event *ev, const char *key)
{
	for (int i = 0; i < ev->nattr; i++)
		if (strcmp(ev->attr[i].key, key) == 0)
			return ev->attr[i].value;
	return NULL;
}

char *event_attrs_json(const struct event *ev)
{
	json_object *o = json_object_new_object();
	char *s;

	for (int i = 0; i < ev->nattr; i++)
		json_object_object_add(o, ev->attr[i].key, json_object_new_string(ev->attr[i].value));
	s = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

int event_attrs_from_json(struct event *ev, const char *json)
{
	json_object *o = json ? json_tokener_parse(json) : NULL;

	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return -1;
	}
	json_object_object_foreach(o, key, val)
		if (json_object_is_type(val, json_type_string))
			event_set(ev, key, json_object_get_string(val));
	json_object_put(o);
	return 0;
}
