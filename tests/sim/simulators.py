#!/usr/bin/python3
"""In-memory simulators of the GoHighLevel (GHL), Aloware, Verity and texting APIs.

Used by the integration tests and the demo script; see README.md in this directory
for the HTTP contracts.  Standard library only (Python 3.11).

Design
------
* One process serves four systems, each on its own 127.0.0.1 port, each with a
  ``SimServer`` (a thread per keep-alive connection).  The port numbers are
  written atomically to ``--port-file`` once every server is listening.
* Every system is one class derived from ``System``: ``GhlSystem``,
  ``AlowareSystem``, ``VeritySystem`` and ``TextingSystem``.  The base class owns
  everything the systems share -- the record stores, the simulated clock, request
  counting, fault injection, rate limiting, the ``/_sim/`` control API and the
  ``updated_since`` listing used by Aloware, Verity and texting.  A subclass adds
  only its route table, authentication, error-body format, record shapes and
  endpoint handlers.
* A system holds one or more ``Collection``s (record stores): contacts for the
  three contact systems, plus GHL notes/conversations/messages, Aloware
  calls/lists and texting messages/opt-out events.  The first collection is the
  default one, used when a control call names none.
* The single ``Connection`` (a strict HTTP/1.1 reader and writer, not
  http.server: its parsing cost more than most handlers) holds no per-system
  logic: it turns the HTTP request into a ``Request`` and writes back the
  ``Response`` the system returns.
* State lives in memory.  Each system has one re-entrant lock, held while a
  request is handled (except while a ``delay`` or ``slow`` fault sleeps), so handlers never
  need finer locking.  Responses are serialised to bytes while the lock is
  held (``System._invoke``), so no live record escapes it.
* Time comes from a per-system simulated clock: real UTC time plus an offset the
  control API can move.  Update stamps are strictly increasing per system (if the
  clock has not moved past the last stamp handed out, the next is last + 1 ms),
  which makes ``(updated, id)`` ordering deterministic.
* Records are stored by ``str(id)``.  "Raw" records seeded through the control
  API are stored exactly as given (possibly malformed).  Every code path reads
  them defensively, so listings return them as they are and never crash on them.
* GHL search reads a per-contact list of snapshots rather than the live record.
  That is how the late indexing of the real API is simulated: a snapshot becomes
  visible ``index_delay`` seconds after its ``dateUpdated``.
"""
from __future__ import annotations

import argparse
import base64
import bisect
import copy
import email.utils
import gc
import json
import math
import operator
import os
import re
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from collections import Counter, deque
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from typing import NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

SYSTEM_NAMES = ("ghl", "aloware", "verity", "texting")
DEFAULT_TOKENS = {
    "ghl": "ghl-test-token",
    "aloware": "aloware-test-token",
    "verity": "verity-test-token",
    "texting": "texting-test-token",
}
DEFAULT_LOCATION = "loc-demo"
GHL_VERSION = "2021-07-28"                 # /contacts/*
GHL_CONVERSATIONS_VERSION = "2021-04-15"   # /conversations/*
E164 = re.compile(r"\+[1-9]\d{1,14}")
MAX_PAGE_SIZE = 500
DEFAULT_LIST_LIMIT = 100
GHL_PAGE_WINDOW = 10_000  # page-number paging is capped at 10,000 records
MALFORMED_BODY = b'{"contacts": ['
RATE_LIMIT_BODY = {"statusCode": 429, "message": "Too Many Requests"}  # all systems
FAULT_KINDS = ("status", "malformed", "delay", "ratelimit", "slow", "edit", "repeat-cursor", "oversized")
# Faults that let the endpoint answer, then change its answer.
ANSWER_FAULTS = ("repeat-cursor", "oversized")
DEFAULT_CONFIG = {
    "index_delay": 0.0,       # GHL: seconds before an edit is visible to search
    "rate_limit": 0,          # max requests per window; 0 = unlimited
    "rate_window": 10.0,      # sliding window, seconds of simulated time
    "allow_duplicates": False,  # GHL: location allows duplicate contacts
    "strict_version": True,   # GHL: enforce the Version header
    "retry_after": True,      # a 429 of the rate limit carries Retry-After
    "conversation_index_delay": 0.0,  # GHL: seconds before a new conversation is searchable
    "sms_provider_id": "",    # GHL: the SMS provider inbound SMS must name ("" = any id)
    "sms_provider_replaced": False,  # GHL: a provider app replaced the default SMS provider
    "relay": False,           # Aloware: also serve OUR listing contract (a relay)
    "cursor_ttl": 3600.0,     # listings (ours): seconds a page cursor stays valid
    "daily_limit": 0,         # max admitted requests per simulated UTC day; 0 = unlimited
    "access_token_ttl": 86399,   # GHL: seconds an OAuth access token lives
}

# --------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_INTEGER = re.compile(r"-?\d+")
_NON_DIGITS = re.compile(r"[^0-9]+")


_last_second = (None, "")  # (epoch second, its ISO text): most stamps share one


def iso_from_ms(ms: int) -> str:
    """Epoch milliseconds -> '2025-06-01T12:00:00.123Z'."""
    global _last_second
    second, millis = divmod(ms, 1000)
    cached = _last_second
    if cached[0] != second:
        cached = _last_second = (second, (EPOCH + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{cached[1]}.{millis:03d}Z"


def to_ms(value) -> int | None:
    """ISO-8601 string, epoch-ms number or epoch-ms digit string -> epoch ms."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _INTEGER.fullmatch(text):
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - EPOCH) // timedelta(milliseconds=1)


def ms_or_zero(value) -> int:
    """Like to_ms, but a missing or unparseable timestamp counts as epoch 0."""
    ms = to_ms(value)
    return 0 if ms is None else ms


# --------------------------------------------------------------------------
# Value helpers (all tolerate malformed raw records)
# --------------------------------------------------------------------------


def phone_key(value) -> str | None:
    """Digits of a phone number, a 10-digit number taken as +1; None if no digits."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        return None
    digits = _NON_DIGITS.sub("", value)
    if not digits:
        return None
    return "1" + digits if len(digits) == 10 else digits


def lower_or_none(value) -> str | None:
    return value.lower() if isinstance(value, str) else None


def is_nonempty_str(value) -> bool:
    return isinstance(value, str) and value != ""


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def truthy(value) -> bool:
    return value is True or value == 1 or (isinstance(value, str) and value.lower() in ("1", "true"))


def split_name(name) -> tuple[str | None, str | None]:
    parts = name.split(None, 1) if isinstance(name, str) else []
    return (parts[0] if parts else None, parts[1] if len(parts) > 1 else None)


def display_name(first, last) -> str:
    return " ".join(str(part) for part in (first, last) if part)


def record_key(record_id) -> str | None:
    """Storage key of an id: str(id) for strings and integers, else None."""
    if isinstance(record_id, bool) or not isinstance(record_id, (int, str)):
        return None
    return str(record_id)


def id_sort_key(record_id) -> tuple:
    """Total order over ids of any JSON type: numbers, then strings, then the rest."""
    if isinstance(record_id, (int, float)) and not isinstance(record_id, bool):
        return (0, record_id)
    if isinstance(record_id, str):
        return (1, record_id)
    if record_id is None:
        return (3, "")
    return (2, json.dumps(record_id, sort_keys=True))


def merge_tags(existing: list, added: list) -> list:
    """Append the tags not already present (case-insensitive); keep existing case."""
    result = [tag for tag in existing if isinstance(tag, str)]
    seen = {tag.lower() for tag in result}
    for tag in added:
        if tag.lower() not in seen:
            result.append(tag)
            seen.add(tag.lower())
    return result


def remove_tags(existing: list, removed: list) -> list:
    drop = {tag.lower() for tag in removed}
    return [tag for tag in existing if isinstance(tag, str) and tag.lower() not in drop]


def encode_cursor(sort_key: tuple) -> str:
    ms, id_key, storage_key = sort_key
    raw = json.dumps([ms, list(id_key), storage_key]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple | None:
    """Inverse of encode_cursor; None when the cursor is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ms, (rank, value), storage_key = json.loads(raw)
    except (ValueError, TypeError):
        return None
    value_ok = isinstance(value, (int, float)) if rank == 0 else isinstance(value, str)
    if not (is_int(ms) and rank in (0, 1, 2, 3) and value_ok and isinstance(storage_key, str)):
        return None
    return (ms, (rank, value), storage_key)


def json_copy(value):
    """A deep copy of JSON data (dicts, lists, scalars): what copy.deepcopy
    gives for it, several times faster (a copy per record written)."""
    if isinstance(value, dict):
        return {key: json_copy(item) if isinstance(item, (dict, list, tuple)) else item
                for key, item in value.items()}
    if isinstance(value, list):
        return [json_copy(item) if isinstance(item, (dict, list, tuple)) else item for item in value]
    if isinstance(value, tuple):
        return tuple(json_copy(item) for item in value)
    return copy.deepcopy(value)  # anything else: as deepcopy would


def trace_id() -> str:
    return str(uuid.uuid4())


# --------------------------------------------------------------------------
# Request / response values and routing
# --------------------------------------------------------------------------


class BadBody(ValueError):
    """The request body is not a JSON object."""


# json.dumps's own encoder, without its check for circular references (a
# dict of ids per container of every answer): answers are trees.
_ENCODER = json.JSONEncoder(check_circular=False)


def encode_json(body) -> bytes:
    """The JSON text of body. A string holding U+DC80..U+DCFF (Python's
    surrogateescape, e.g. seeded as "\\udcff") is sent as that raw byte, so
    tests can serve invalid UTF-8; anything else is plain ASCII JSON."""
    text = _ENCODER.encode(body)
    if "\\udc" not in text:
        return text.encode()
    text = json.dumps(body, ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")


class Response:
    """A finished answer. A body given as JSON data is serialised when
    `body` is first read, which System._invoke does under the system's lock
    (so no live record escapes it), after the system's `finish` step (GHL
    drops nulls from the data itself, without a round trip through JSON)."""

    __slots__ = ("status", "headers", "_value", "_body")

    def __init__(self, status: int, body=None, headers: dict | None = None):
        self.status = status
        self.headers = headers or {}
        if isinstance(body, bytes):
            self._value, self._body = None, body
        else:
            self._value, self._body = body, None

    @property
    def body(self) -> bytes:
        if self._body is None:
            self._body = encode_json(self._value)
            self._value = None
        return self._body

    def drop_nulls(self) -> None:
        """Remove null members at every depth from a JSON object body; any
        other body (a malformed-body fault, raw bytes) stays as it is."""
        if self._body is None:
            if isinstance(self._value, dict):
                self._value = drop_nulls(self._value)
            return
        if not self._body.startswith(b"{"):
            return
        try:
            value = json.loads(self._body)
        except ValueError:
            return
        self._body = encode_json(drop_nulls(value))


class HttpError(Exception):
    def __init__(self, status: int, body, headers: dict | None = None):
        super().__init__(status)
        self.response = Response(status, body, headers)


def split_path(path: str) -> list[str]:
    return [unquote(segment) if "%" in segment else segment for segment in path.split("/") if segment]


def parse_query(query: str) -> dict:
    """The first value of each field, as parse_qs(query, keep_blank_values=True)
    gives it (fields split on "&", "+" is a space, %-escapes in UTF-8), without
    its cost per request."""
    fields = {}
    for field in query.split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        if "+" in field or "%" in field:
            name, value = unquote(name.replace("+", " ")), unquote(value.replace("+", " "))
        if name not in fields:
            fields[name] = value
    return fields


class Request:
    def __init__(self, method: str, target: str, headers, body: bytes):
        if target[:1] == "/" and target[1:2] != "/" and "#" not in target:
            path, _, query = target.partition("?")  # what urlsplit gives for these
        else:
            url = urlsplit(target)
            path, query = url.path, url.query
        self.method = method
        self.path = path
        self.segments = split_path(path)
        self.query = parse_query(query) if query else {}
        self.headers = headers  # case-insensitive .get()
        self.body = body
        self._json = None

    def json(self) -> dict:
        """The body as a JSON object ({} when empty); raises BadBody."""
        if self._json is None:
            if not self.body.strip():
                self._json = {}
            else:
                try:
                    parsed = json.loads(self.body)
                except ValueError as exc:
                    raise BadBody(f"Invalid JSON body: {exc}") from None
                if not isinstance(parsed, dict):
                    raise BadBody("Request body must be a JSON object")
                self._json = parsed
        return self._json


class Route(NamedTuple):
    method: str
    template: str
    handler: str
    segments: list


def make_routes(table) -> tuple[Route, ...]:
    return tuple(Route(method, template, handler, split_path(template))
                 for method, template, handler in table)


def is_placeholder(segment: str) -> bool:
    return segment.startswith("{") and segment.endswith("}")


def match_route(routes, method: str, segments: list):
    """First route (in table order) matching method and path -> (route, params)."""
    for route in routes:
        if route.method != method or len(route.segments) != len(segments):
            continue
        params = {}
        for pattern, actual in zip(route.segments, segments):
            if is_placeholder(pattern):
                params[pattern[1:-1]] = actual
            elif pattern != actual:
                break
        else:
            return route, params
    return None, None


def same_template(a: list, b: list) -> bool:
    """Equal paths, where any '{name}' placeholder equals any other."""
    return len(a) == len(b) and all(
        x == y or (is_placeholder(x) and is_placeholder(y)) for x, y in zip(a, b))


def bearer_matches(req: Request, token: str) -> bool:
    scheme, _, value = (req.headers.get("Authorization") or "").partition(" ")
    return scheme.lower() == "bearer" and value.strip() == token


def too_many_requests(retry_after) -> Response:
    """429; retry_after None: without Retry-After (GHL need not send one)."""
    if retry_after is None:
        return Response(429, RATE_LIMIT_BODY)
    if isinstance(retry_after, float) and retry_after.is_integer():
        retry_after = int(retry_after)
    return Response(429, RATE_LIMIT_BODY, {"Retry-After": str(retry_after)})


def drop_nulls(value):
    """value without null members, at every depth (array items stay)."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) if isinstance(v, (dict, list, tuple)) else v
                for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [drop_nulls(v) if isinstance(v, (dict, list, tuple)) else v for v in value]
    return value


def status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


# --------------------------------------------------------------------------
# Shared base of the systems
# --------------------------------------------------------------------------


class Collection:
    """One record store of a system (contacts, notes, calls, messages, ...).

    ``created``/``updated`` name the timestamp fields; either may be None (GHL
    notes and messages have no update time, Aloware lists no timestamps at
    all).  ``blank`` returns a record with every field at its default,
    ``format_id`` turns a counter into an id, ``derive`` recomputes derived
    fields of a well-formed record, and ``written``/``removed`` are told the
    storage key after a record was stored/changed or deleted.
    """

    def __init__(self, name: str, *, blank, format_id, id_field: str = "id",
                 created: str | None = None, updated: str | None = None,
                 derive=None, written=None, removed=None):
        self.name = name
        self.ID = id_field
        self.CREATED = created
        self.UPDATED = updated
        self.blank = blank
        self.format_id = format_id
        self.derive = derive or (lambda record: None)
        self.on_written = written or (lambda key: None)
        self.on_removed = removed or (lambda key: None)
        self.records: dict[str, dict] = {}
        self.raw_keys: set[str] = set()
        self.id_counter = 0
        self.raw_counter = 0
        # Lean mode (--lean): every change bumps the generation, which
        # dates the cached sorted listing; lean_indexes (name -> fn(record)
        # -> value) are kept as value -> keys maps, change by change.
        self.generation = 0
        self.lean_indexes: dict = {}
        self.lean_maps: dict[str, dict] = {}
        self.lean_values: dict[tuple, object] = {}
        self.lean_cache: dict = {}

    def written(self, key: str) -> None:
        """A record was stored or changed (after the change)."""
        self.generation += 1
        if self.lean_indexes:
            self.reindex(key)
        self.on_written(key)

    def removed(self, key: str) -> None:
        """A record was deleted (after it left records)."""
        self.generation += 1
        if self.lean_indexes:
            self.reindex(key)
        self.on_removed(key)

    def reindex(self, key: str) -> None:
        record = self.records.get(key)
        for name, value_of in self.lean_indexes.items():
            old = self.lean_values.pop((name, key), None)
            if old is not None:
                keys = self.lean_maps[name][old]
                keys.discard(key)
                if not keys:
                    del self.lean_maps[name][old]
            if record is None:
                continue
            try:
                value = value_of(record)
                hash(value)
            except TypeError:  # a raw record's list or object: matches nothing
                value = None
            if value is not None:
                self.lean_maps.setdefault(name, {}).setdefault(value, set()).add(key)
                self.lean_values[(name, key)] = value

    def lean_keys(self, name: str, value) -> set:
        """Keys of the records whose index `name` holds value."""
        try:
            return set(self.lean_maps.get(name, {}).get(value, ()))
        except TypeError:
            return set()

    def in_id_order(self, keys) -> list[str]:
        """keys in the order of System.sorted_items (id, then storage key)."""
        return sorted(keys, key=lambda key: (id_sort_key(self.records[key].get(self.ID)), key))


class System:
    """State and behaviour shared by every simulated system.

    Subclasses set ``name``, ``CREATED``/``UPDATED`` (timestamp field names of
    the default collection), ``ROUTES`` (first match wins, so literal paths come
    before ``{id}`` ones) and implement ``blank_record``, ``format_id``,
    ``authenticate`` and ``error_body``.  A subclass with more than one
    collection extends ``make_collections``.  Route handlers take
    ``(req, **path_params)`` and return a ``Response`` or raise ``HttpError``.
    """

    name = ""
    DEFAULT_COLLECTION = "contacts"
    ID = "id"
    CREATED = ""
    UPDATED = ""
    ROUTES: tuple[Route, ...] = ()
    CONTROL_ROUTES = make_routes((
        ("POST", "/_sim/seed", "ctl_seed"),
        ("POST", "/_sim/edit", "ctl_edit"),
        ("POST", "/_sim/delete", "ctl_delete"),
        ("GET", "/_sim/records", "ctl_records"),
        ("GET", "/_sim/records/{id}", "ctl_record"),
        ("GET", "/_sim/requests", "ctl_requests"),
        ("POST", "/_sim/requests/reset", "ctl_reset_requests"),
        ("GET", "/_sim/fault", "ctl_faults"),
        ("POST", "/_sim/fault", "ctl_add_fault"),
        ("DELETE", "/_sim/fault", "ctl_clear_faults"),
        ("GET", "/_sim/config", "ctl_config"),
        ("POST", "/_sim/config", "ctl_set_config"),
        ("GET", "/_sim/clock", "ctl_clock"),
        ("POST", "/_sim/clock", "ctl_advance_clock"),
        ("POST", "/_sim/reset", "ctl_reset"),
    ))

    # Lean mode: {collection: {index name: fn(record) -> value}} kept by
    # the collections; the lookups that would read every record use them.
    LEAN_INDEXES: dict = {}
    lean = False

    def __init__(self, token: str, location_id: str = DEFAULT_LOCATION):
        self.token = token
        self.location_id = location_id
        self.lock = threading.RLock()
        self.reset_state()

    def enable_lean(self) -> None:
        """--lean: the same answers, from indexes and a cached sorted listing
        instead of a pass over every record per request (benchmarks)."""
        self.lean = True
        for coll in self.collections.values():
            coll.lean_indexes = self.LEAN_INDEXES.get(coll.name, {})
            for key in list(coll.records):
                coll.reindex(key)

    def reset_state(self) -> None:
        self.collections: dict[str, Collection] = {
            coll.name: coll for coll in self.make_collections()}
        self.default = self.collections[self.DEFAULT_COLLECTION]
        # The default collection's store, used by the endpoint code.
        self.records: dict[str, dict] = self.default.records
        self.raw_keys: set[str] = self.default.raw_keys
        self.clock_offset = 0.0
        self.last_stamp: int | None = None
        self.config = dict(DEFAULT_CONFIG)
        self.faults: list[dict] = []
        self.counts: Counter = Counter()
        self.log: list[tuple] = []  # (method, path, status); dicts when read
        self.admitted: deque = deque()  # simulated times of rate-limited admissions
        self.cursors_issued: dict[str, float] = {}  # listing cursor -> clock when first issued
        if self.lean:
            self.enable_lean()

    def make_collections(self) -> list[Collection]:
        """The system's collections; the default one (contacts) first."""
        return [Collection(self.DEFAULT_COLLECTION, blank=self.blank_record,
                           format_id=self.format_id, id_field=self.ID,
                           created=self.CREATED, updated=self.UPDATED, derive=self.derive,
                           written=self.record_written, removed=self.record_removed)]

    # ----- hooks for subclasses ------------------------------------------

    def blank_record(self) -> dict:
        """A record with every field at its default, in display order."""
        raise NotImplementedError

    def format_id(self, n: int):
        raise NotImplementedError

    def authenticate(self, req: Request) -> None:
        raise NotImplementedError

    def error_body(self, status: int, message, **extra) -> dict:
        raise NotImplementedError

    def not_found_body(self, req: Request) -> dict:
        return self.error_body(404, "not found")

    def active_routes(self) -> tuple[Route, ...]:
        """The routes served now (Aloware adds its relay routes on demand)."""
        return self.ROUTES

    def derive(self, record: dict) -> None:
        """Recompute derived fields of a well-formed record."""

    def record_written(self, key: str) -> None:
        """Called after a record was created or changed."""

    def record_removed(self, key: str) -> None:
        """Called after a record was deleted."""

    # ----- clock -----------------------------------------------------------

    def now(self) -> float:
        return time.time() + self.clock_offset

    def now_ms(self) -> int:
        return math.floor(self.now() * 1000)

    def stamp(self, shared: bool = False) -> str:
        """Clock-now as ISO, strictly later than any stamp given before;
        shared: as late as any given before, but never past the clock (a
        seed file's records share milliseconds, as a real service's bulk
        import does: a millisecond each would date 100,000 records loaded
        in a few seconds into the future)."""
        ms = self.now_ms()
        if self.last_stamp is not None and ms <= self.last_stamp:
            ms = self.last_stamp if shared else self.last_stamp + 1
        self.last_stamp = ms
        return iso_from_ms(ms)

    # ----- record store (coll=None means the default collection) -----------

    def new_id(self, coll: Collection | None = None):
        coll = coll or self.default
        while True:
            coll.id_counter += 1
            candidate = coll.format_id(coll.id_counter)
            if record_key(candidate) not in coll.records:
                return candidate

    def build(self, fields: dict, coll: Collection | None = None, owned: bool = False,
              shared: bool = False) -> dict:
        """A well-formed record from (a subset of) stored-shape fields.

        Missing id and timestamps are assigned; a missing created time copies the
        updated time.  Given timestamps are kept.
        """
        coll = coll or self.default
        record = coll.blank()
        record.update(fields if owned else json_copy(fields))
        if record.get(coll.ID) is None:
            record[coll.ID] = self.new_id(coll)
        if coll.UPDATED and not record.get(coll.UPDATED):
            record[coll.UPDATED] = self.stamp(shared)
        if coll.CREATED and not record.get(coll.CREATED):
            record[coll.CREATED] = record[coll.UPDATED] if coll.UPDATED else self.stamp(shared)
        coll.derive(record)
        return record

    def store(self, record: dict, raw: bool = False, coll: Collection | None = None) -> str:
        coll = coll or self.default
        key = record_key(record.get(coll.ID))
        if key is None:
            coll.raw_counter += 1
            key = f"~raw-{coll.raw_counter}"
        coll.records[key] = record
        if raw:
            coll.raw_keys.add(key)
        else:
            coll.raw_keys.discard(key)
        coll.written(key)
        return key

    def create(self, fields: dict, coll: Collection | None = None) -> dict:
        record = self.build(fields, coll)
        self.store(record, coll=coll)
        return record

    def touch(self, key: str, coll: Collection | None = None) -> None:
        """Bump a record's update time (if it has one) after it changed."""
        coll = coll or self.default
        record = coll.records[key]
        if coll.UPDATED:
            record[coll.UPDATED] = self.stamp()
        if key not in coll.raw_keys:
            coll.derive(record)
        coll.written(key)

    def remove(self, key: str, coll: Collection | None = None) -> None:
        coll = coll or self.default
        del coll.records[key]
        coll.raw_keys.discard(key)
        coll.removed(key)

    def find_key(self, record_id, coll: Collection | None = None) -> str | None:
        coll = coll or self.default
        key = record_key(record_id)
        return key if key in coll.records else None

    def sorted_items(self, coll: Collection | None = None) -> list[tuple[str, dict]]:
        coll = coll or self.default
        return sorted(coll.records.items(),
                      key=lambda item: (id_sort_key(item[1].get(coll.ID)), item[0]))

    def seed(self, records: list, raw: bool = False, coll: Collection | None = None,
             owned: bool = False, shared: bool = False) -> list:
        """Store records; owned: they were just parsed from JSON and nothing
        else holds them, so they are stored without a copy (a large seed);
        shared: their stamps may share milliseconds (stamp)."""
        coll = coll or self.default
        ids = []
        for given in records:
            if raw:
                record = given if owned else json_copy(given)
            else:
                record = self.build(given, coll, owned, shared)
            self.store(record, raw, coll)
            ids.append(record.get(coll.ID))
        return ids

    # ----- errors ---------------------------------------------------------

    def fail(self, status: int, message, **extra) -> HttpError:
        return HttpError(status, self.error_body(status, message, **extra))

    # ----- request handling -----------------------------------------------

    def handle(self, req: Request) -> Response:
        if req.segments and req.segments[0] == "_sim":
            return self._handle_control(req)
        route, params = match_route(self.active_routes(), req.method, req.segments)
        fault = None
        if route and self.faults:  # read without the lock: a test adds faults between requests
            with self.lock:
                fault = self._take_fault(req, route)
        if fault is not None and fault["kind"] == "delay":
            time.sleep(fault["delay"])
            fault = None
        slow = edit = None
        if fault is not None and fault["kind"] == "edit":
            # A user's edit that lands just before this request is processed.
            edit, fault = fault, None
        if fault is not None and fault["kind"] == "slow":
            # Processed now, answered late: the effect is visible before the
            # client gets its answer (a crash after the write, before the ack).
            slow, fault = fault["delay"], None
        with self.lock:
            if edit is not None:
                self._edit_on_write(req, edit)
            response = self._invoke(lambda: self._serve(req, route, params, fault),
                                    lambda message: self.error_body(400, message), self.finish)
            label = f"{req.method} {route.template if route else req.path}"
            self.counts[label] += 1
            self.log.append((req.method, req.path, response.status))
        if slow:
            time.sleep(slow)
        return response

    def _serve(self, req: Request, route: Route | None, params: dict, fault: dict | None) -> Response:
        if route is None:
            raise HttpError(404, self.not_found_body(req))
        if fault is not None and fault["kind"] not in ANSWER_FAULTS:
            if fault.get("after"):
                # The server did the work, then failed to say so (a 5xx
                # after the effect): the client cannot know it took.
                self._check_rate_limit()
                self.authenticate(req)
                getattr(self, route.handler)(req, **params)
            return self._fault_response(fault)
        self._check_rate_limit()
        self.authenticate(req)
        response = getattr(self, route.handler)(req, **params)
        if fault is not None and response.status < 300:
            response = self._changed_answer(fault, req, response)
        return response

    @staticmethod
    def _changed_answer(fault: dict, req: Request, response: Response) -> Response:
        """repeat-cursor: the listing hands back the cursor it was asked
        with (a server stuck on one page). oversized: the answer is padded
        with an ignored key to `size` bytes."""
        body = json.loads(response.body)
        if fault["kind"] == "repeat-cursor" and req.query.get("cursor"):
            body["nextCursor"] = req.query["cursor"]
        elif fault["kind"] == "oversized":
            body["padding"] = "x" * max(0, fault["size"] - len(response.body))
        return Response(response.status, body, {**response.headers, "X-Sim-Fault": fault["kind"]})

    def _handle_control(self, req: Request) -> Response:
        route, params = match_route(self.CONTROL_ROUTES, req.method, req.segments)
        with self.lock:
            def run():
                if route is None:
                    raise control_error(404, f"unknown control endpoint {req.method} {req.path}")
                return getattr(self, route.handler)(req, **params)
            return self._invoke(run, lambda message: {"error": message})

    @staticmethod
    def _invoke(action, bad_body, finish=None) -> Response:
        """The answer of action(), finished and serialised (the caller holds the lock)."""
        try:
            try:
                response = action()
            except HttpError as exc:
                response = exc.response
            except BadBody as exc:
                response = Response(400, bad_body(str(exc)))
            if finish is not None:
                finish(response)
            response.body  # serialised now, under the lock
            return response
        except Exception:  # a simulator bug: report it, keep serving
            traceback.print_exc()
            return Response(500, {"error": "simulator internal error"})

    def finish(self, response: Response) -> None:
        """Last change to an API answer before it is serialised (GHL drops nulls)."""

    # ----- faults and rate limiting -----------------------------------------

    def _take_fault(self, req: Request, route: Route) -> dict | None:
        for fault in self.faults:
            if fault["method"] not in (None, req.method):
                continue
            wanted = fault["segments"]
            if wanted is not None and not (same_template(wanted, route.segments)
                                           or wanted == req.segments):
                continue
            fault["times"] -= 1
            if fault["times"] <= 0:
                self.faults.remove(fault)
            return dict(fault)
        return None

    def _fault_response(self, fault: dict) -> Response:
        """The answer of a fault; X-Sim-Fault marks it (the Prism gate of
        the tests checks no faulty answer a test asked for)."""
        if fault["kind"] == "ratelimit":
            response = too_many_requests(fault["retry_after"])
        elif fault["kind"] == "malformed":
            response = Response(200, MALFORMED_BODY)
        else:
            status = fault["status"]
            response = Response(status, self.error_body(status, f"Simulated fault: {status_phrase(status)}"))
        response.headers["X-Sim-Fault"] = fault["kind"]
        return response

    def _check_rate_limit(self) -> None:
        limit = self.config["rate_limit"]
        if not limit:
            return
        now, window = self.now(), self.config["rate_window"]
        while self.admitted and self.admitted[0] <= now - window:
            self.admitted.popleft()
        if len(self.admitted) >= limit:
            wait = self.admitted[0] + window - now
            raise HttpError(429, RATE_LIMIT_BODY, {"Retry-After": str(max(1, math.ceil(wait)))}
                            if self.config["retry_after"] else None)
        self.admitted.append(now)

    # ----- shared listing: GET ?updated_since=&limit=&cursor= ---------------

    def list_page(self, query: dict, coll: Collection | None = None) -> tuple[list, str | None]:
        """Records with updated >= updated_since, (updated, id) ascending, one page."""
        coll = coll or self.default
        since = 0
        if query.get("updated_since"):
            since = to_ms(query["updated_since"])
            if since is None:
                raise self.fail(422, "updated_since must be an ISO-8601 timestamp")
        limit_text = query.get("limit") or str(DEFAULT_LIST_LIMIT)
        if not _INTEGER.fullmatch(limit_text) or not 1 <= int(limit_text) <= MAX_PAGE_SIZE:
            raise self.fail(422, f"limit must be between 1 and {MAX_PAGE_SIZE}")
        limit = int(limit_text)
        after = None
        if query.get("cursor"):
            after = decode_cursor(query["cursor"])
            if after is None:
                raise self.fail(422, "invalid cursor")
            issued = self.cursors_issued.get(query["cursor"])
            if issued is not None and self.now() - issued > self.config["cursor_ttl"]:
                raise self.fail(410, "cursor expired")
        if self.lean:
            rows, keys = self.lean_sorted(coll, coll.UPDATED)
            start = bisect.bisect_left(keys, (since,))
            if after is not None:
                start = max(start, bisect.bisect_right(keys, after))
            page = rows[start:start + limit]
            next_cursor = encode_cursor(page[-1][0]) if len(rows) - start > limit else None
            return [record for _, record in page], next_cursor
        rows = []
        for key, record in coll.records.items():
            ms = ms_or_zero(record.get(coll.UPDATED))
            if ms >= since:
                rows.append(((ms, id_sort_key(record.get(coll.ID)), key), record))
        rows.sort(key=lambda row: row[0])
        if after is not None:
            rows = [row for row in rows if row[0] > after]
        page = rows[:limit]
        next_cursor = encode_cursor(page[-1][0]) if len(rows) > limit else None
        if next_cursor is not None:
            self.cursors_issued.setdefault(next_cursor, self.now())
        return [record for _, record in page], next_cursor

    def lean_sorted(self, coll: Collection, field: str, records=None) -> tuple[list, list]:
        """(rows, keys) of every record ordered by (field in ms, id, key), as
        list_page orders them; rebuilt only after a change. records: the
        {key: record} to order when not the collection's own (GHL search)."""
        name = (field, records is not None)
        cached = coll.lean_cache.get(name)
        if cached is not None and cached[0] == coll.generation:
            return cached[1], cached[2]
        items = (records() if records else coll.records).items()
        rows = [((ms_or_zero(record.get(field)), id_sort_key(record.get(coll.ID)), key), record)
                for key, record in items]
        rows.sort(key=lambda row: row[0])
        keys = [row[0] for row in rows]
        coll.lean_cache[name] = (coll.generation, rows, keys)
        return rows, keys

    # ----- control API (/_sim/...) -----------------------------------------

    def _control_collection(self, name) -> Collection:
        """The collection a control call names (body field or ?collection=)."""
        if name is None or name == "":
            return self.default
        coll = self.collections.get(name) if isinstance(name, str) else None
        if coll is None:
            raise control_error(400, f"unknown collection {name!r} for {self.name}; "
                                     f"one of: {', '.join(self.collections)}")
        return coll

    def ctl_seed(self, req: Request) -> Response:
        body = req.json()
        coll = self._control_collection(body.get("collection"))
        records = body.get("records")
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise control_error(400, "records must be a list of JSON objects")
        return Response(200, {"ids": self.seed(records, raw=bool(body.get("raw")), coll=coll, owned=True)})

    def _control_key(self, record_id, coll: Collection) -> str:
        key = self.find_key(record_id, coll)
        if key is None:
            what = self.name if coll is self.default else f"{self.name} {coll.name}"
            raise control_error(404, f"no {what} record with id {record_id!r}")
        return key

    def ctl_edit(self, req: Request) -> Response:
        body = req.json()
        coll = self._control_collection(body.get("collection"))
        fields = body.get("fields")
        if not isinstance(fields, dict):
            raise control_error(400, "fields must be a JSON object")
        if coll.ID in fields:
            raise control_error(400, "the id cannot be edited")
        key = self._control_key(body.get("id"), coll)
        return Response(200, self._apply_edit(key, coll, fields))

    def _edit_on_write(self, req: Request, fault: dict) -> None:
        """The `edit` fault: the fault's fields set on its record (by default
        the one the request's path names, last segment) as a user would."""
        key = self.find_key(fault["id"] if fault["id"] is not None else req.segments[-1], self.default)
        if key is not None:
            self._apply_edit(key, self.default, fault["fields"])

    def _apply_edit(self, key: str, coll: Collection, fields: dict) -> dict:
        record, defaults = coll.records[key], coll.blank()
        for field, value in fields.items():
            record[field] = json_copy(defaults.get(field) if value is None else value)
        if not coll.UPDATED or fields.get(coll.UPDATED) is None:
            self.touch(key, coll)  # sets the update time (if any) and re-derives
        else:  # an explicit update time given by the test is kept
            if key not in coll.raw_keys:
                coll.derive(record)
            coll.written(key)
        return record

    def ctl_delete(self, req: Request) -> Response:
        body = req.json()
        coll = self._control_collection(body.get("collection"))
        key = self._control_key(body.get("id"), coll)
        record_id = coll.records[key].get(coll.ID)
        self.remove(key, coll)
        return Response(200, {"deleted": record_id})

    def ctl_records(self, req: Request) -> Response:
        coll = self._control_collection(req.query.get("collection"))
        return Response(200, {"records": [record for _, record in self.sorted_items(coll)]})

    def ctl_record(self, req: Request, id: str) -> Response:
        coll = self._control_collection(req.query.get("collection"))
        return Response(200, {"record": coll.records[self._control_key(id, coll)]})

    def ctl_requests(self, req: Request) -> Response:
        return Response(200, {"counts": dict(sorted(self.counts.items())),
                              "total": sum(self.counts.values()),
                              "log": [{"method": method, "path": path, "status": status}
                                      for method, path, status in self.log]})

    def ctl_reset_requests(self, req: Request) -> Response:
        self.counts.clear()
        self.log = []
        return Response(200, {"ok": True})

    def _fault_views(self) -> list[dict]:
        return [{k: v for k, v in fault.items() if k != "segments"} for fault in self.faults]

    def ctl_faults(self, req: Request) -> Response:
        return Response(200, {"faults": self._fault_views()})

    def ctl_add_fault(self, req: Request) -> Response:
        spec = req.json()
        kind = spec.get("kind", "status")
        if kind not in FAULT_KINDS:
            raise control_error(400, f"kind must be one of {', '.join(FAULT_KINDS)}")
        times, status = spec.get("times", 1), spec.get("status", 500)
        if not is_int(times) or times < 1:
            raise control_error(400, "times must be an integer >= 1")
        if not is_int(status) or not 100 <= status <= 599:
            raise control_error(400, "status must be an HTTP status code")
        delay, retry_after = spec.get("delay", 0), spec.get("retry_after", 1)
        # retry_after null: the 429 carries no Retry-After header.
        no_header = "retry_after" in spec and retry_after is None
        retry_after = 0 if no_header else retry_after
        size = spec.get("size", 3 << 20)
        if not is_int(size) or size < 0:
            raise control_error(400, "size must be a non-negative integer")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
                   for v in (delay, retry_after)):
            raise control_error(400, "delay and retry_after must be non-negative numbers")
        fields, record_id = spec.get("fields"), spec.get("id")
        if kind == "edit" and (not isinstance(fields, dict) or not fields):
            raise control_error(400, "an edit fault needs fields, a non-empty JSON object")
        method, route = spec.get("method"), spec.get("route")
        any_method, any_route = method in (None, "", "*"), route in (None, "", "*")
        self.faults.append({
            "method": None if any_method else str(method).upper(),
            "route": None if any_route else route,
            "segments": None if any_route else split_path(str(route)),
            "kind": kind, "times": times, "status": status,
            "retry_after": None if no_header else retry_after, "delay": delay, "size": size,
            "after": bool(spec.get("after", False)) and kind == "status",
            **({"fields": fields, "id": record_id} if kind == "edit" else {}),
        })
        return Response(200, {"faults": self._fault_views()})

    def ctl_clear_faults(self, req: Request) -> Response:
        self.faults = []
        return Response(200, {"faults": []})

    def ctl_config(self, req: Request) -> Response:
        return Response(200, {"config": self.config})

    def ctl_set_config(self, req: Request) -> Response:
        changes = dict(req.json())
        changes.pop("collection", None)  # settings are per system, not per collection
        for field, value in changes.items():
            if field not in DEFAULT_CONFIG:
                raise control_error(400, f"unknown config key {field}")
            wanted = type(DEFAULT_CONFIG[field])
            if wanted is bool:
                ok = isinstance(value, bool)
            elif wanted is str:
                ok = isinstance(value, str)
            elif wanted is int:
                ok = is_int(value) and value >= 0
            else:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
            if not ok:
                raise control_error(400, f"invalid value for {field}: {value!r}")
        if "rate_window" in changes and changes["rate_window"] <= 0:
            raise control_error(400, "rate_window must be > 0")
        self.config.update(changes)
        if {"rate_limit", "rate_window"} & changes.keys():
            self.admitted.clear()  # a new limit counts requests from now on
        return Response(200, {"config": self.config})

    def _clock_view(self) -> dict:
        return {"now": iso_from_ms(self.now_ms()), "offset": self.clock_offset}

    def ctl_clock(self, req: Request) -> Response:
        return Response(200, self._clock_view())

    def ctl_advance_clock(self, req: Request) -> Response:
        seconds = req.json().get("advance")
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
            raise control_error(400, "advance must be a number of seconds")
        self.clock_offset += seconds
        return Response(200, self._clock_view())

    def ctl_reset(self, req: Request) -> Response:
        self.reset_state()
        return Response(200, {"ok": True})


def control_error(status: int, message: str) -> HttpError:
    return HttpError(status, {"error": message})


# --------------------------------------------------------------------------
# GoHighLevel (shaped after the official OpenAPI spec and observed responses)
# --------------------------------------------------------------------------

GHL_401 = {"statusCode": 401, "message": "Invalid token: access token is invalid",
           "error": "Unauthorized"}
GHL_RANGE_OPERATORS = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}
GHL_DATE_FIELDS = ("dateAdded", "dateUpdated")
GHL_DND_CHANNELS = ("Call", "Email", "SMS", "WhatsApp", "GMB", "FB")
GHL_DND_STATUSES = ("active", "inactive", "permanent")
# The suite's own custom field (tests/e2e/conftest.py: investor_tier, cf_tier).
DEFAULT_CUSTOM_FIELD = {"id": "cf_tier", "name": "Investor tier", "fieldKey": "contact.investor_tier",
                        "dataType": "TEXT"}
# dataTypes whose value is a number, a list of options, one option, a date.
GHL_NUMBER_TYPES = ("NUMERICAL", "MONETORY", "FLOAT")
GHL_LIST_TYPES = ("CHECKBOX", "MULTIPLE_OPTIONS")
GHL_OPTION_TYPES = ("SINGLE_OPTIONS", "RADIO")


def custom_value_problem(definition: dict, value) -> str | None:
    """Why value does not fit the custom field's dataType (None if it does).

    GHL's spec types field_value as a string, a string[] (multiple options,
    checkbox) or an object (file); which goes with which dataType, and the
    date and number formats, are our contract (tests/sim/README.md)."""
    kind = definition.get("dataType")
    options = definition.get("picklistOptions") or []
    if value is None or value == "":
        return None
    if kind in GHL_NUMBER_TYPES:
        # The spec's field_value is a string, a string[] or an object: a
        # number travels as its text.
        if not isinstance(value, str) or not re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", value):
            return f"field_value must be a number (as a string) for {kind}"
    elif kind in GHL_LIST_TYPES:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return f"field_value must be an array of strings for {kind}"
        unknown = [v for v in value if options and v not in options]
        if unknown:
            return f"{', '.join(unknown)} is not an option ({', '.join(options)})"
    elif kind == "DATE":
        if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return "field_value must be a date YYYY-MM-DD for DATE"
        try:
            datetime.strptime(value, "%Y-%m-%d")
        except ValueError:
            return f"{value} is not a date"
    elif kind == "FILE_UPLOAD":
        if not isinstance(value, dict):
            return "field_value must be an object for FILE_UPLOAD"
    elif not isinstance(value, str):
        return f"field_value must be a string for {kind}"
    elif kind in GHL_OPTION_TYPES and options and value not in options:
        return f"{value} is not an option ({', '.join(options)})"
    return None
# The messageType enum in the order of the older spec (before TYPE_RCS was
# inserted); the numeric `type` of a message is the 1-based position, which
# matches the spec's note that types 1 and 10 are Call and (campaign) voicemail.
GHL_MESSAGE_TYPES = (
    "TYPE_CALL", "TYPE_SMS", "TYPE_EMAIL", "TYPE_SMS_REVIEW_REQUEST", "TYPE_WEBCHAT",
    "TYPE_SMS_NO_SHOW_REQUEST", "TYPE_CAMPAIGN_SMS", "TYPE_CAMPAIGN_CALL",
    "TYPE_CAMPAIGN_EMAIL", "TYPE_CAMPAIGN_VOICEMAIL", "TYPE_FACEBOOK",
    "TYPE_CAMPAIGN_FACEBOOK", "TYPE_CAMPAIGN_MANUAL_CALL", "TYPE_CAMPAIGN_MANUAL_SMS",
    "TYPE_GMB", "TYPE_CAMPAIGN_GMB", "TYPE_REVIEW", "TYPE_INSTAGRAM", "TYPE_WHATSAPP",
    "TYPE_CUSTOM_SMS", "TYPE_CUSTOM_EMAIL", "TYPE_CUSTOM_PROVIDER_SMS",
    "TYPE_CUSTOM_PROVIDER_EMAIL", "TYPE_IVR_CALL", "TYPE_ACTIVITY_CONTACT",
    "TYPE_ACTIVITY_INVOICE", "TYPE_ACTIVITY_PAYMENT", "TYPE_ACTIVITY_OPPORTUNITY",
    "TYPE_LIVE_CHAT", "TYPE_LIVE_CHAT_INFO_MESSAGE", "TYPE_ACTIVITY_APPOINTMENT",
    "TYPE_FACEBOOK_COMMENT", "TYPE_INSTAGRAM_COMMENT", "TYPE_CUSTOM_CALL",
    "TYPE_INTERNAL_COMMENT", "TYPE_ACTIVITY_EMPLOYEE_ACTION_LOG", "TYPE_TIKTOK",
    "TYPE_TIKTOK_COMMENT", "TYPE_ACTIVITY_WHATSAPP", "TYPE_FORM_SUBMISSION",
    "TYPE_SMS_REACTION", "TYPE_RCS")
GHL_MESSAGE_TYPE_CODES = {name: index + 1 for index, name in enumerate(GHL_MESSAGE_TYPES)}
# ProcessMessageBodyDto.type -> stored messageType
GHL_INBOUND_TYPES = {
    "SMS": "TYPE_SMS", "RCS": "TYPE_RCS", "Email": "TYPE_EMAIL", "WhatsApp": "TYPE_WHATSAPP",
    "GMB": "TYPE_GMB", "IG": "TYPE_INSTAGRAM", "FB": "TYPE_FACEBOOK",
    "Custom": "TYPE_CUSTOM_PROVIDER_SMS", "WebChat": "TYPE_WEBCHAT",
    "Live_Chat": "TYPE_LIVE_CHAT", "Call": "TYPE_CALL", "IVR_Call": "TYPE_IVR_CALL",
    "Campaign_Call": "TYPE_CAMPAIGN_CALL", "Campaign_VoiceMail": "TYPE_CAMPAIGN_VOICEMAIL",
    "TIKTOK": "TYPE_TIKTOK", "ALL_IN_ONE_CHAT": "TYPE_LIVE_CHAT",
    "FORM_SUBMISSION": "TYPE_FORM_SUBMISSION",
}
GHL_CALL_TYPES = frozenset({"Call", "IVR_Call", "Campaign_Call", "Campaign_VoiceMail"})
GHL_CALL_STATUSES = ("pending", "completed", "answered", "busy", "no-answer", "failed",
                     "canceled", "voicemail")
# export ?channel= -> the messageTypes it selects
GHL_EXPORT_CHANNELS = {
    "SMS": frozenset({"TYPE_SMS", "TYPE_CUSTOM_SMS", "TYPE_CUSTOM_PROVIDER_SMS",
                      "TYPE_CAMPAIGN_SMS", "TYPE_CAMPAIGN_MANUAL_SMS"}),
    "Call": frozenset({"TYPE_CALL", "TYPE_IVR_CALL", "TYPE_CUSTOM_CALL", "TYPE_CAMPAIGN_CALL",
                       "TYPE_CAMPAIGN_MANUAL_CALL", "TYPE_CAMPAIGN_VOICEMAIL"}),
    "Email": frozenset({"TYPE_EMAIL", "TYPE_CUSTOM_EMAIL", "TYPE_CUSTOM_PROVIDER_EMAIL",
                        "TYPE_CAMPAIGN_EMAIL"}),
    "WhatsApp": frozenset({"TYPE_WHATSAPP"}),
    "Instagram": frozenset({"TYPE_INSTAGRAM", "TYPE_INSTAGRAM_COMMENT"}),
    "Facebook": frozenset({"TYPE_FACEBOOK", "TYPE_FACEBOOK_COMMENT", "TYPE_CAMPAIGN_FACEBOOK"}),
}
GHL_EXPORT_MIN, GHL_EXPORT_MAX, GHL_EXPORT_DEFAULT = 10, 500, 100
GHL_CONVERSATION_SEARCH_LIMIT = 20
GHL_OAUTH_SCOPE = ("contacts.readonly contacts.write conversations.readonly conversations.write "
                   "conversations/message.readonly conversations/message.write")
NOTE_FIELDS = {"body": str, "userId": str, "title": str, "color": str, "pinned": bool}


class GhlSystem(System):
    name = "ghl"
    CREATED, UPDATED = "dateAdded", "dateUpdated"
    ROUTES = make_routes((
        ("POST", "/contacts/search", "search"),
        ("GET", "/contacts/search/duplicate", "find_duplicate"),
        ("POST", "/contacts/upsert", "upsert"),
        ("POST", "/contacts/", "create_contact"),
        ("GET", "/contacts/{id}", "get_contact"),
        ("PUT", "/contacts/{id}", "update_contact"),
        ("DELETE", "/contacts/{id}", "delete_contact"),
        ("POST", "/contacts/{id}/tags", "add_tags"),
        ("DELETE", "/contacts/{id}/tags", "delete_tags"),
        ("POST", "/contacts/{id}/notes", "add_note"),
        ("GET", "/contacts/{id}/notes", "list_notes"),
        ("GET", "/conversations/search", "search_conversations"),
        ("POST", "/conversations/", "create_conversation"),
        ("GET", "/conversations/messages/export", "export_messages"),
        ("POST", "/conversations/messages/inbound", "add_inbound_message"),
        ("POST", "/conversations/messages/outbound", "add_outbound_call"),
        ("POST", "/oauth/token", "oauth_token"),
        ("GET", "/locations/{locationId}/customFields", "list_custom_fields"),
    ))
    CONTROL_ROUTES = System.CONTROL_ROUTES + make_routes((
        ("GET", "/_sim/oauth", "ctl_oauth"),
        ("POST", "/_sim/oauth", "ctl_set_oauth"),
        ("GET", "/_sim/quota", "ctl_quota"),
        ("POST", "/_sim/quota", "ctl_set_quota"),
    ))
    # GHL's documented limits (API 2.0): 100 per 10 s burst, 200,000 a day.
    LIMIT_DEFAULTS = {"rate_limit": 100, "rate_window": 10.0, "daily_limit": 200_000,
                      "retry_after": False}
    OAUTH_CLIENT = ("ghl-client-id", "ghl-client-secret")
    FIRST_REFRESH_TOKEN = "ghl-refresh-token-0"

    # Write DTO fields.  Everything not in FIELD_TYPES is a nullable string.
    STORED_STRINGS = frozenset({
        "firstName", "lastName", "email", "phone", "address1", "city", "state",
        "postalCode", "website", "timezone", "source", "dateOfBirth", "country",
        "assignedTo", "companyName"})
    UPDATE_FIELDS = STORED_STRINGS | {"name", "dnd", "dndSettings", "inboundDndSettings",
                                      "tags", "customFields"}
    CREATE_FIELDS = UPDATE_FIELDS | {"locationId", "gender"}
    UPSERT_FIELDS = CREATE_FIELDS | {"createNewIfDuplicateAllowed"}
    # Accepted on write but not part of the stored contact.
    NOT_STORED = frozenset({"name", "gender", "inboundDndSettings", "locationId",
                            "createNewIfDuplicateAllowed"})
    FIELD_TYPES = {"dnd": bool, "createNewIfDuplicateAllowed": bool, "dndSettings": dict,
                   "inboundDndSettings": dict, "tags": list, "customFields": list}
    TYPE_WORDS = {str: "a string", bool: "a boolean value", dict: "an object", list: "an array"}

    def reset_state(self) -> None:
        super().reset_state()
        self.config.update(self.LIMIT_DEFAULTS)
        self.quota_day, self.quota_used = None, 0
        # OAuth: client id -> secret, refresh tokens still valid, access
        # token -> simulated expiry time; the static (Private Integration)
        # token is valid until expired through /_sim/oauth.
        self.oauth_clients = {self.OAUTH_CLIENT[0]: self.OAUTH_CLIENT[1]}
        self.refresh_tokens = {self.FIRST_REFRESH_TOKEN}
        self.access_tokens: dict[str, float] = {}
        self.static_valid = True
        self.expire_after: int | None = None
        self.oauth_counts: Counter = Counter()
        self.token_serial = 0
        # search index: per contact, [(visible_at_ms, snapshot)] in write order
        self.versions: dict[str, list[tuple[float, dict]]] = {}
        # conversation search index: key -> ms from which a conversation
        # created through the API is found by search (seeded ones at once)
        self.conversation_visible: dict[str, float] = {}
        self.delayed = False  # a version was written with an index delay
        self.notes = self.collections["notes"]
        self.conversations = self.collections["conversations"]
        self.messages = self.collections["messages"]
        # The location's custom field definitions; the suite's own field
        # (investor_tier, id cf_tier) is defined from the start, as text.
        self.custom_fields = self.collections["customFields"]
        self.seed([DEFAULT_CUSTOM_FIELD], coll=self.custom_fields)

    def make_collections(self) -> list[Collection]:
        return super().make_collections() + [
            Collection("notes", blank=self.blank_note, format_id=lambda n: f"note{n:016d}",
                       created="dateAdded"),
            Collection("conversations", blank=self.blank_conversation,
                       format_id=lambda n: f"conv{n:016d}",
                       created="dateAdded", updated="dateUpdated"),
            Collection("messages", blank=self.blank_message, format_id=lambda n: f"msg{n:017d}",
                       created="dateAdded", derive=self.derive_message),
            Collection("customFields", blank=self.blank_custom_field,
                       format_id=lambda n: f"cfd{n:017d}"),
        ]

    # ----- hooks -----------------------------------------------------------

    def blank_record(self) -> dict:
        return {
            "id": None, "locationId": self.location_id,
            "firstName": None, "lastName": None,
            "firstNameLowerCase": None, "lastNameLowerCase": None,
            "email": None, "emailLowerCase": None, "phone": None, "companyName": None,
            "address1": None, "city": None, "state": None, "postalCode": None,
            "country": None, "website": None, "timezone": None, "source": None,
            "dateOfBirth": None, "assignedTo": None,
            "tags": [], "customFields": [], "dnd": False, "dndSettings": {},
            "type": "lead", "dateAdded": None, "dateUpdated": None,
        }

    def format_id(self, n: int) -> str:
        return f"ghl{n:017d}"  # 20 characters, sorts in creation order

    @staticmethod
    def blank_note() -> dict:
        return {"id": None, "body": None, "userId": None, "dateAdded": None,
                "contactId": None, "title": None, "color": None, "pinned": False}

    def blank_custom_field(self) -> dict:
        """A definition as GET /locations/{locationId}/customFields answers it."""
        return {"id": None, "name": None, "fieldKey": None, "placeholder": "",
                "dataType": "TEXT", "position": 0, "picklistOptions": [],
                "locationId": self.location_id, "model": "contact"}

    def blank_conversation(self) -> dict:
        return {"id": None, "locationId": self.location_id, "contactId": None,
                "dateAdded": None, "dateUpdated": None, "deleted": False,
                "lastMessageDate": None, "lastMessageBody": None, "lastMessageType": None,
                "type": "TYPE_PHONE", "unreadCount": 0, "assignedTo": None}

    def blank_message(self) -> dict:
        return {"id": None, "type": GHL_MESSAGE_TYPE_CODES["TYPE_SMS"], "messageType": "TYPE_SMS",
                "locationId": self.location_id, "contactId": None, "conversationId": None,
                "dateAdded": None, "body": None, "contentType": "text/plain",
                "direction": "inbound", "status": "delivered", "attachments": [],
                "meta": {}, "source": "api", "userId": None,
                "conversationProviderId": None}

    @staticmethod
    def derive_message(record: dict) -> None:
        """The numeric type always follows messageType (when that is a known value)."""
        code = GHL_MESSAGE_TYPE_CODES.get(record.get("messageType"))
        if code is not None:
            record["type"] = code

    def derive(self, record: dict) -> None:
        record["firstNameLowerCase"] = lower_or_none(record.get("firstName"))
        record["lastNameLowerCase"] = lower_or_none(record.get("lastName"))
        record["emailLowerCase"] = lower_or_none(record.get("email"))

    LEAN_INDEXES = {
        "contacts": {"email": lambda r: lower_or_none(r.get("email")),
                     "phone": lambda r: phone_key(r.get("phone"))},
        "conversations": {"contact": lambda r: r.get("contactId")},
    }

    def record_written(self, key: str) -> None:
        """Queue the new version for the search index.

        It becomes visible index_delay seconds (the setting at write time) after
        its dateUpdated; with no delay, at once.
        """
        delay_ms = self.config["index_delay"] * 1000
        if delay_ms > 0:
            self.delayed = True  # lean search no longer holds: versions may hide
        snapshot = json_copy(self.records[key])
        if delay_ms <= 0:
            # Visible at once: the versions before it can never show again
            # (_indexed would drop them at the next search; the lean search
            # never does), so they go now.
            self.versions[key] = [(-math.inf, snapshot)]
            return
        visible_at = ms_or_zero(snapshot.get(self.UPDATED)) + delay_ms
        self.versions.setdefault(key, []).append((visible_at, snapshot))

    def record_removed(self, key: str) -> None:
        self.versions.pop(key, None)

    def finish(self, response: Response) -> None:
        """GHL omits unset fields: no null anywhere in an API answer (a real
        GET /contacts/{id} has none; nextCursor is absent on the last page).
        Control answers keep them (System._handle_control does not finish)."""
        response.drop_nulls()

    def authenticate(self, req: Request) -> None:
        if req.segments == ["oauth", "token"]:
            return  # the client authenticates in the form
        if self.expire_after is not None:
            if self.expire_after <= 0:
                self._expire_tokens()
            else:
                self.expire_after -= 1
        if not self._token_valid(req):
            raise HttpError(401, GHL_401)
        version = GHL_CONVERSATIONS_VERSION if req.segments[:1] == ["conversations"] \
            else GHL_VERSION
        if self.config["strict_version"] and req.headers.get("Version") != version:
            raise self.unprocessable(
                [f"version header must be one of the following values: {version}"])

    def error_body(self, status: int, message, **extra) -> dict:
        return {"statusCode": status, "message": message, **extra}

    def not_found_body(self, req: Request) -> dict:
        return self.error_body(404, f"Cannot {req.method} {req.path}", error="Not Found")

    # ----- rate limits, daily quota and tokens ------------------------------

    def _serve(self, req: Request, route: Route | None, params: dict, fault: dict | None) -> Response:
        """Every answer but the OAuth endpoint's carries the limit headers."""
        if req.segments == ["oauth", "token"]:
            return super()._serve(req, route, params, fault)
        try:
            response = super()._serve(req, route, params, fault)
        except HttpError as exc:
            response = exc.response
        response.headers.update(self._limit_headers())
        return response

    def _quota_today(self) -> None:
        day = int(self.now() // 86400)
        if day != self.quota_day:
            self.quota_day, self.quota_used = day, 0

    def _check_rate_limit(self) -> None:
        """The daily quota first (a request refused by it takes no burst
        slot), then the burst window; an admitted request counts in both."""
        self._quota_today()
        daily = self.config["daily_limit"]
        if daily and self.quota_used >= daily:
            wait = (self.quota_day + 1) * 86400 - self.now()
            raise HttpError(429, RATE_LIMIT_BODY, {"Retry-After": str(max(1, math.ceil(wait)))}
                            if self.config["retry_after"] else None)
        super()._check_rate_limit()
        self.quota_used += 1

    def _limit_headers(self) -> dict:
        headers = {}
        limit, window = self.config["rate_limit"], self.config["rate_window"]
        if limit:
            now = self.now()
            used = sum(1 for t in self.admitted if t > now - window)
            headers.update({"X-RateLimit-Max": str(limit),
                            "X-RateLimit-Remaining": str(max(0, limit - used)),
                            "X-RateLimit-Interval-Milliseconds": str(int(window * 1000))})
        daily = self.config["daily_limit"]
        if daily:
            self._quota_today()
            headers.update({"X-RateLimit-Limit-Daily": str(daily),
                            "X-RateLimit-Daily-Remaining": str(max(0, daily - self.quota_used))})
        return headers

    def _token_valid(self, req: Request) -> bool:
        scheme, _, value = (req.headers.get("Authorization") or "").partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            return False
        if value == self.token:
            return self.static_valid
        expires = self.access_tokens.get(value)
        return expires is not None and expires > self.now()

    def _expire_tokens(self) -> None:
        self.static_valid = False
        self.access_tokens.clear()
        self.expire_after = None
        self.oauth_counts["expired"] += 1

    def _oauth_error(self, status: int, error: str, description: str) -> HttpError:
        self.oauth_counts["refused"] += 1
        return HttpError(status, {"error": error, "error_description": description})

    def oauth_token(self, req: Request) -> Response:
        """POST /oauth/token, form-encoded as GHL's OAuth docs give it."""
        ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise self._oauth_error(400, "invalid_request",
                                    "Content-Type must be application/x-www-form-urlencoded")
        try:
            form = {k: v[0] for k, v in parse_qs(req.body.decode("utf-8"), keep_blank_values=True,
                                                 strict_parsing=bool(req.body)).items()}
        except (UnicodeDecodeError, ValueError):
            raise self._oauth_error(400, "invalid_request", "malformed form body") from None
        grant = form.get("grant_type")
        if grant not in ("authorization_code", "refresh_token"):
            raise self._oauth_error(400, "unsupported_grant_type",
                                    "grant_type must be authorization_code or refresh_token")
        if not form.get("client_id") or self.oauth_clients.get(form["client_id"]) != \
                form.get("client_secret"):
            raise self._oauth_error(401, "invalid_client", "Invalid client credentials")
        if form.get("user_type", "Location") not in ("Location", "Company"):
            raise self._oauth_error(400, "invalid_request", "user_type must be Location or Company")
        if grant == "authorization_code":
            raise self._oauth_error(400, "invalid_grant", "Invalid authorization code")
        refresh = form.get("refresh_token")
        if not refresh or refresh not in self.refresh_tokens:
            raise self._oauth_error(400, "invalid_grant", "Invalid refresh token")
        self.refresh_tokens.discard(refresh)  # rotated: the used one is invalid from now on
        self.token_serial += 1
        access = f"ghl-access-{self.token_serial}-{uuid.uuid4().hex}"
        new_refresh = f"ghl-refresh-{self.token_serial}-{uuid.uuid4().hex}"
        ttl = self.config["access_token_ttl"]
        self.access_tokens[access] = self.now() + ttl
        self.refresh_tokens.add(new_refresh)
        self.oauth_counts["refreshed"] += 1
        return Response(200, {
            "access_token": access, "token_type": "Bearer", "expires_in": ttl,
            "refresh_token": new_refresh, "scope": GHL_OAUTH_SCOPE, "userType": "Location",
            "companyId": "company-demo", "locationId": self.location_id,
            "userId": "user-demo", "planId": "plan-demo", "isBulkInstallation": False,
        })

    def ctl_oauth(self, req: Request) -> Response:
        return Response(200, self._oauth_view())

    def _oauth_view(self) -> dict:
        return {"refreshed": self.oauth_counts["refreshed"],
                "refused": self.oauth_counts["refused"],
                "expired": self.oauth_counts["expired"],
                "valid_refresh_tokens": sorted(self.refresh_tokens),
                "valid_access_tokens": len(self.access_tokens),
                "static_valid": self.static_valid, "expire_after": self.expire_after}

    def ctl_set_oauth(self, req: Request) -> Response:
        """{"expire_after": n}: the next n API requests are served, then
        every access token (the static one too) expires; {"expire_now":
        true}; {"static_token": "..."}: a new Private Integration token;
        {"refresh_tokens": [...]}: more valid refresh tokens; {"clients":
        {"id": "secret"}}."""
        body = req.json()
        known = {"expire_after", "expire_now", "static_token", "refresh_tokens", "clients"}
        if set(body) - known:
            raise control_error(400, f"unknown oauth keys {sorted(set(body) - known)}")
        if "expire_after" in body:
            if not is_int(body["expire_after"]) or body["expire_after"] < 0:
                raise control_error(400, "expire_after must be an integer >= 0")
            self.expire_after = body["expire_after"]
        if body.get("expire_now"):
            self._expire_tokens()
        if "static_token" in body:
            if not is_nonempty_str(body["static_token"]):
                raise control_error(400, "static_token must be a non-empty string")
            self.token, self.static_valid = body["static_token"], True
        for token in body.get("refresh_tokens", []):
            if not is_nonempty_str(token):
                raise control_error(400, "refresh_tokens must be non-empty strings")
            self.refresh_tokens.add(token)
        for client, secret in (body.get("clients") or {}).items():
            self.oauth_clients[str(client)] = str(secret)
        return Response(200, self._oauth_view())

    def ctl_quota(self, req: Request) -> Response:
        self._quota_today()
        return Response(200, {"day": self.quota_day, "used": self.quota_used,
                              "limit": self.config["daily_limit"]})

    def ctl_set_quota(self, req: Request) -> Response:
        """{"used": n}: the requests already counted today."""
        used = req.json().get("used")
        if not is_int(used) or used < 0:
            raise control_error(400, "used must be an integer >= 0")
        self._quota_today()
        self.quota_used = used
        return self.ctl_quota(req)

    # ----- helpers ---------------------------------------------------------

    def unprocessable(self, messages: list[str]) -> HttpError:
        return self.fail(422, messages, error="Unprocessable Entity")

    def _existing(self, contact_id: str) -> str:
        key = self.find_key(contact_id)
        if key is None:
            raise self.fail(400, f"Contact with id {contact_id} not found")
        return key

    def _check_location(self, location_id) -> None:
        if location_id != self.location_id:
            raise self.fail(403, "The token does not have access to this location.")

    def _check_write(self, body: dict, allowed: frozenset, location_required: bool) -> None:
        errors = []
        for field, value in body.items():
            if field not in allowed:
                errors.append(f"property {field} should not exist")
                continue
            wanted = self.FIELD_TYPES.get(field, str)
            if value is None:
                continue
            if not isinstance(value, wanted):
                errors.append(f"{field} must be {self.TYPE_WORDS[wanted]}")
            elif field == "tags" and not all(isinstance(tag, str) for tag in value):
                errors.append("each value in tags must be a string")
            elif field == "customFields":
                errors += self._custom_field_errors(value)
            elif field == "dndSettings":
                errors += self._dnd_settings_errors(value)
        if location_required and not is_nonempty_str(body.get("locationId")):
            errors.append("locationId should not be empty")
        if errors:
            raise self.unprocessable(errors)
        if location_required:
            self._check_location(body["locationId"])

    @staticmethod
    def _dnd_settings_errors(value: dict) -> list[str]:
        errors = []
        for channel, setting in value.items():
            if channel not in GHL_DND_CHANNELS:
                errors.append(f"property dndSettings.{channel} should not exist")
            elif setting is not None and not (
                    isinstance(setting, dict)
                    and setting.get("status") in GHL_DND_STATUSES
                    and all(isinstance(setting.get(k), (str, type(None)))
                            for k in ("message", "code"))):
                errors.append(f"dndSettings.{channel}.status must be one of the following "
                              f"values: {', '.join(GHL_DND_STATUSES)}")
        return errors

    @staticmethod
    def _merge_dnd_settings(stored, written: dict) -> dict:
        """Per channel: the written setting replaces that channel's; null removes it."""
        merged = dict(stored) if isinstance(stored, dict) else {}
        for channel, setting in written.items():
            if setting is None:
                merged.pop(channel, None)
            else:
                merged[channel] = setting
        return merged

    def _definition(self, entry: dict):
        """The definition a written entry names by id or by fieldKey."""
        for definition in self.custom_fields.records.values():
            if (entry.get("id") and definition.get("id") == entry.get("id")) or \
                    (not entry.get("id") and entry.get("key")
                     and definition.get("fieldKey") == entry.get("key")):
                return definition
        return None

    def _custom_field_errors(self, value: list) -> list[str]:
        """Each entry names a defined field (id, or key in the string
        variant) and carries a value of the field's dataType (ours: see
        tests/sim/README.md, "Custom fields"). "" or null clears any type."""
        errors = []
        for entry in value:
            if not isinstance(entry, dict) or not (entry.get("id") or entry.get("key")):
                errors.append("each value in customFields must be an object with an id or key")
                continue
            definition = self._definition(entry)
            name = entry.get("id") or entry.get("key")
            if definition is None:
                errors.append(f"customFields: no custom field {name} in this location")
                continue
            problem = custom_value_problem(definition, entry.get("field_value"))
            if problem:
                errors.append(f"customFields: {definition['fieldKey']}: {problem}")
        return errors

    def _merge_custom_fields(self, stored, written: list) -> list:
        """Write shape [{id | key, field_value}] merged into read shape [{id, value}]."""
        merged = [dict(entry) for entry in (stored if isinstance(stored, list) else [])
                  if isinstance(entry, dict)]
        for entry in written:
            definition = self._definition(entry)
            field_id = definition["id"] if definition else entry.get("id") or entry.get("key")
            value = entry.get("field_value")
            merged = [old for old in merged if old.get("id") != field_id]
            if value is not None and value != "":
                merged.append({"id": field_id, "value": value})
        return merged

    def _apply_write(self, record: dict, body: dict) -> None:
        """Apply a create/update/upsert DTO to a stored contact."""
        for field, value in body.items():
            if field in self.NOT_STORED:
                continue
            if field == "tags":
                record["tags"] = merge_tags([], value or [])
            elif field == "customFields":
                record["customFields"] = self._merge_custom_fields(
                    record.get("customFields"), value or [])
            elif field == "dndSettings":  # merged per channel; null clears all
                record["dndSettings"] = {} if value is None else self._merge_dnd_settings(
                    record.get("dndSettings"), value)
            elif field == "dnd":
                record["dnd"] = bool(value)
            else:
                record[field] = value
        if "name" in body and not {"firstName", "lastName"} & body.keys():
            record["firstName"], record["lastName"] = split_name(body["name"])

    def _create_from_write(self, body: dict) -> dict:
        record = {"locationId": body["locationId"]}
        self._apply_write(record, body)
        return self.create(record)

    def _find_match(self, email, phone) -> tuple[str | None, str | None]:
        """(key, matching field) of the first contact with this email, else phone."""
        wanted_email, wanted_phone = lower_or_none(email), phone_key(phone)
        if self.lean:
            for wanted, field in ((wanted_email, "email"), (wanted_phone, "phone")):
                keys = self.default.lean_keys(field, wanted) if wanted else ()
                if keys:
                    return self.default.in_id_order(keys)[0], field
            return None, None
        items = self.sorted_items()
        if wanted_email:
            for key, record in items:
                if lower_or_none(record.get("email")) == wanted_email:
                    return key, "email"
        if wanted_phone:
            for key, record in items:
                if phone_key(record.get("phone")) == wanted_phone:
                    return key, "phone"
        return None, None

    def _tags_body(self, req: Request) -> list[str]:
        tags = req.json().get("tags")
        if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
            raise self.unprocessable(["tags must be an array of strings"])
        return tags

    # ----- search ------------------------------------------------------------

    def _indexed(self):
        """(key, snapshot) of every contact as the search index currently sees it."""
        now = self.now_ms()
        for key, versions in self.versions.items():
            visible = [index for index, (visible_at, _) in enumerate(versions) if visible_at <= now]
            if visible:
                del versions[:visible[-1]]  # older versions can never show again
                yield key, versions[0][1]

    def _date_filters(self, filters) -> list:
        if filters is None:
            return []
        if not isinstance(filters, list):
            raise self.unprocessable(["filters must be an array"])
        predicates = []
        for spec in filters:
            if not isinstance(spec, dict) or spec.get("field") not in GHL_DATE_FIELDS:
                continue  # other fields and filter groups are not simulated
            field, op = spec["field"], spec.get("operator")
            if op == "range":
                predicates.append(self._range_filter(field, spec.get("value")))
            elif op in ("exists", "not_exists"):
                predicates.append(lambda c, f=field, want=(op == "exists"):
                                  (to_ms(c.get(f)) is not None) == want)
            else:
                raise self.unprocessable([f"operator {op} is not supported for field {field}"])
        return predicates

    def _range_filter(self, field: str, value):
        if not isinstance(value, dict) or not value.keys() & GHL_RANGE_OPERATORS.keys():
            raise self.unprocessable(
                [f"range value for {field} must be an object with gt, gte, lt or lte"])
        bounds = []
        for name, compare in GHL_RANGE_OPERATORS.items():
            if name in value:
                bound = to_ms(value[name])
                if bound is None:
                    raise self.unprocessable(
                        [f"{field}.{name} must be an ISO-8601 date or epoch milliseconds"])
                bounds.append((compare, bound))
        return lambda contact: all(compare(ms_or_zero(contact.get(field)), bound)
                                   for compare, bound in bounds)

    def _sort_spec(self, sort) -> tuple[str, bool]:
        """(field, descending) from the first sort entry; default dateAdded desc."""
        if sort is None or sort == []:
            return "dateAdded", True
        if not isinstance(sort, list) or not isinstance(sort[0], dict):
            raise self.unprocessable(["sort must be an array of {field, direction}"])
        field, direction = sort[0].get("field"), sort[0].get("direction")
        if field not in GHL_DATE_FIELDS:
            raise self.unprocessable([f"sort field {field} is not supported by the simulator"])
        if direction not in ("asc", "desc"):
            raise self.unprocessable(["sort direction must be one of the following values: asc, desc"])
        return field, direction == "desc"

    def _search_view(self, key: str, snapshot: dict, sort_ms: int) -> dict:
        if key in self.raw_keys:
            view = json_copy(snapshot)
        else:  # the search index names address1 "address" and has no dndSettings
            view = {("address" if field == "address1" else field): value
                    for field, value in snapshot.items() if field != "dndSettings"}
        view["searchAfter"] = [sort_ms, snapshot.get("id")]
        return view

    def search(self, req: Request) -> Response:
        body = req.json()
        errors = []
        if not is_nonempty_str(body.get("locationId")):
            errors.append("locationId should not be empty")
        limit = body.get("pageLimit")
        if not is_int(limit):
            errors.append("pageLimit must be an integer number")
        elif limit > MAX_PAGE_SIZE:
            errors.append(f"pageLimit must not be greater than {MAX_PAGE_SIZE}")
        elif limit < 1:
            errors.append("pageLimit must not be less than 1")
        search_after, page = body.get("searchAfter"), body.get("page")
        if search_after is not None and page is not None:
            errors.append("page and searchAfter cannot be used together")
        if search_after is not None and not (
                isinstance(search_after, list) and len(search_after) == 2
                and to_ms(search_after[0]) is not None):
            errors.append("searchAfter must be [sortValue, id] as returned by a previous search")
        if page is not None and not (is_int(page) and page >= 1):
            errors.append("page must be an integer >= 1")
        elif page is not None and is_int(limit) and page * limit > GHL_PAGE_WINDOW:
            errors.append(f"page-number pagination is limited to {GHL_PAGE_WINDOW} records; "
                          "use searchAfter")
        if errors:
            raise self.unprocessable(errors)
        self._check_location(body["locationId"])
        predicates = self._date_filters(body.get("filters"))
        field, descending = self._sort_spec(body.get("sort"))
        if self.lean and not descending and page is None and not self.delayed:
            lowest = self._lean_lowest(body.get("filters"), field)
            if lowest is not None:
                return self._lean_search(field, lowest, search_after, limit)

        rows = [((ms_or_zero(snap.get(field)), id_sort_key(snap.get("id")), key), snap)
                for key, snap in self._indexed() if all(p(snap) for p in predicates)]
        rows.sort(key=lambda row: row[0], reverse=descending)
        total = len(rows)
        if search_after is not None:
            after = (to_ms(search_after[0]), id_sort_key(search_after[1]))
            beyond = operator.lt if descending else operator.gt
            rows = [row for row in rows if beyond(row[0][:2], after)]
        elif page is not None:
            rows = rows[(page - 1) * limit:]
        contacts = [self._search_view(sort_key[2], snap, sort_key[0])
                    for sort_key, snap in rows[:limit]]
        return Response(200, {"contacts": contacts, "total": total, "traceId": trace_id()})

    @staticmethod
    def _lean_lowest(filters, field: str) -> int | None:
        """The lowest sort value the filters let through when they are only
        gt/gte ranges on the sort field (a changed-since listing), else None."""
        lowest = -math.inf
        for spec in filters or []:
            if not isinstance(spec, dict) or spec.get("field") not in GHL_DATE_FIELDS:
                continue  # ignored by search too
            value = spec.get("value")
            if spec["field"] != field or spec.get("operator") != "range" or \
                    not isinstance(value, dict) or not value or not value.keys() <= {"gt", "gte"}:
                return None
            for name, bound in value.items():
                ms = to_ms(bound)
                lowest = max(lowest, ms + 1 if name == "gt" else ms)
        return lowest

    def _lean_search(self, field: str, lowest, search_after, limit: int) -> Response:
        """search() for a changed-since listing, from the cached order."""
        def snapshots():
            return {key: versions[-1][1] for key, versions in self.versions.items() if versions}
        rows, keys = self.lean_sorted(self.default, field, snapshots)
        start = bisect.bisect_left(keys, (lowest,)) if lowest != -math.inf else 0
        total = len(rows) - start
        if search_after is not None:
            after = (to_ms(search_after[0]), id_sort_key(search_after[1]))
            start = max(start, bisect.bisect_right(keys, after, key=lambda k: k[:2]))
        contacts = [self._search_view(sort_key[2], snap, sort_key[0])
                    for sort_key, snap in rows[start:start + limit]]
        return Response(200, {"contacts": contacts, "total": total, "traceId": trace_id()})

    # ----- contact endpoints -------------------------------------------------

    def find_duplicate(self, req: Request) -> Response:
        if not req.query.get("locationId"):
            raise self.unprocessable(["locationId should not be empty"])
        self._check_location(req.query["locationId"])
        key, _ = self._find_match(req.query.get("email"), req.query.get("number"))
        return Response(200, {"contact": self.records[key] if key else None})

    def get_contact(self, req: Request, id: str) -> Response:
        return Response(200, {"contact": self.records[self._existing(id)]})

    def list_custom_fields(self, req: Request, locationId: str) -> Response:
        """GET /locations/{locationId}/customFields (Version 2021-07-28):
        {customFields: [{id, name, fieldKey, dataType, ...}]}; ?model=
        contact|opportunity|all narrows it."""
        self._check_location(locationId)
        model = req.query.get("model")
        fields = [d for _, d in self.sorted_items(self.custom_fields)
                  if model in (None, "", "all") or d.get("model") in (model, "all")]
        return Response(200, {"customFields": fields})

    def create_contact(self, req: Request) -> Response:
        body = req.json()
        self._check_write(body, self.CREATE_FIELDS, location_required=True)
        if not self.config["allow_duplicates"]:
            key, field = self._find_match(body.get("email"), body.get("phone"))
            if key is not None:
                existing = self.records[key]
                raise self.fail(400, "This location does not allow duplicated contacts.", meta={
                    "contactId": existing.get("id"), "matchingField": field,
                    "contactName": display_name(existing.get("firstName"), existing.get("lastName"))})
        return Response(201, {"contact": self._create_from_write(body)})

    def upsert(self, req: Request) -> Response:
        body = req.json()
        self._check_write(body, self.UPSERT_FIELDS, location_required=True)
        key = None
        if not (self.config["allow_duplicates"] and body.get("createNewIfDuplicateAllowed")):
            email_key, _ = self._find_match(body.get("email"), None)
            phone_match, _ = self._find_match(None, body.get("phone"))
            key = email_key or phone_match
            if email_key and phone_match and phone_match != email_key:
                # The phone belongs to another contact: it is ignored (spec).
                body = {k: v for k, v in body.items() if k != "phone"}
        if key is None:
            return Response(200, {"new": True, "contact": self._create_from_write(body),
                                  "traceId": trace_id()})
        self._apply_write(self.records[key], body)
        self.touch(key)
        return Response(200, {"new": False, "contact": self.records[key], "traceId": trace_id()})

    def update_contact(self, req: Request, id: str) -> Response:
        body = req.json()
        self._check_write(body, self.UPDATE_FIELDS, location_required=False)
        key = self._existing(id)
        self._apply_write(self.records[key], body)
        self.touch(key)
        return Response(200, {"succeded": True, "contact": self.records[key]})

    def delete_contact(self, req: Request, id: str) -> Response:
        self.remove(self._existing(id))
        return Response(200, {"succeded": True})

    def _change_tags(self, req: Request, id: str, change, status: int) -> Response:
        tags = self._tags_body(req)
        key = self._existing(id)
        record = self.records[key]
        current = record.get("tags") if isinstance(record.get("tags"), list) else []
        record["tags"] = change(current, tags)
        self.touch(key)
        return Response(status, {"tags": record["tags"]})

    def add_tags(self, req: Request, id: str) -> Response:
        return self._change_tags(req, id, merge_tags, 201)

    def delete_tags(self, req: Request, id: str) -> Response:
        return self._change_tags(req, id, remove_tags, 200)

    # ----- notes (NotesDTO) --------------------------------------------------

    def add_note(self, req: Request, id: str) -> Response:
        body = req.json()
        errors = []
        for field, value in body.items():
            wanted = NOTE_FIELDS.get(field)
            if wanted is None:
                errors.append(f"property {field} should not exist")
            elif value is not None and not isinstance(value, wanted):
                errors.append(f"{field} must be {self.TYPE_WORDS[wanted]}")
        if not is_nonempty_str(body.get("body")):
            errors.append("body should not be empty")
        if errors:
            raise self.unprocessable(errors)
        key = self._existing(id)
        fields = {field: body[field] for field in NOTE_FIELDS if body.get(field) is not None}
        note = self.create({**fields, "contactId": self.records[key].get("id")}, self.notes)
        return Response(201, {"note": note})

    def list_notes(self, req: Request, id: str) -> Response:
        contact_id = self.records[self._existing(id)].get("id")
        notes = [note for _, note in self._sorted_by(self.notes, "dateAdded")
                 if note.get("contactId") == contact_id]
        return Response(200, {"notes": notes})

    @staticmethod
    def _sorted_by(coll: Collection, field: str, descending: bool = False) -> list:
        """(key, record) of a collection ordered by (field in ms, id)."""
        rows = [((ms_or_zero(record.get(field)), id_sort_key(record.get("id")), key), record)
                for key, record in coll.records.items()]
        rows.sort(key=lambda row: row[0], reverse=descending)
        return [(sort_key[2], record) for sort_key, record in rows]

    # ----- conversations -----------------------------------------------------

    def _conversation_of(self, contact_id) -> dict | None:
        """The (non-deleted) conversation of a contact, lowest id first."""
        if self.lean:
            for key in self.conversations.in_id_order(self.conversations.lean_keys("contact", contact_id)):
                if self.conversations.records[key].get("deleted") is not True:
                    return self.conversations.records[key]
            return None
        for _, conversation in self.sorted_items(self.conversations):
            if conversation.get("contactId") == contact_id and conversation.get("deleted") is not True:
                return conversation
        return None

    def _existing_conversation(self, conversation_id) -> str:
        key = self.find_key(conversation_id, self.conversations)
        if key is None:
            raise self.fail(400, f"Conversation with id {conversation_id} not found")
        return key

    def _conversation_view(self, conversation: dict) -> dict:
        """ConversationSchema: the stored conversation plus the contact's details."""
        contact_key = self.find_key(conversation.get("contactId"))
        contact = self.records[contact_key] if contact_key else {}
        full_name = display_name(contact.get("firstName"), contact.get("lastName")) or None
        return {
            "id": conversation.get("id"), "contactId": conversation.get("contactId"),
            "locationId": conversation.get("locationId"),
            "lastMessageBody": conversation.get("lastMessageBody"),
            "lastMessageType": conversation.get("lastMessageType"),
            "type": conversation.get("type"), "unreadCount": conversation.get("unreadCount"),
            "fullName": full_name, "contactName": full_name or contact.get("companyName"),
            "email": contact.get("email"), "phone": contact.get("phone"),
        }

    def search_conversations(self, req: Request) -> Response:
        query = req.query
        errors = []
        if not query.get("locationId"):
            errors.append("locationId should not be empty")
        limit_text = query.get("limit") or str(GHL_CONVERSATION_SEARCH_LIMIT)
        if not _INTEGER.fullmatch(limit_text) or int(limit_text) < 1:
            errors.append("limit must be a positive integer")
        if query.get("sort") not in (None, "", "asc", "desc"):
            errors.append("sort must be one of the following values: asc, desc")
        if errors:
            raise self.unprocessable(errors)
        self._check_location(query["locationId"])
        contact_id = query.get("contactId")
        now = self.now_ms()
        coll = self.conversations
        if self.lean and contact_id:  # the same order over the contact's only
            rows = sorted(((ms_or_zero(coll.records[key].get("dateUpdated")),
                            id_sort_key(coll.records[key].get("id")), key)
                           for key in coll.lean_keys("contact", contact_id)),
                          reverse=query.get("sort") != "asc")
            keyed = [(key, coll.records[key]) for _, _, key in rows]
        else:
            keyed = [(key, conversation) for key, conversation in self._sorted_by(
                         coll, "dateUpdated", descending=query.get("sort") != "asc")
                     if not contact_id or conversation.get("contactId") == contact_id]
        matches = [conversation for key, conversation in keyed
                   if self.conversation_visible.get(key, -math.inf) <= now]
        views = [self._conversation_view(c) for c in matches[:int(limit_text)]]
        return Response(200, {"conversations": views, "total": len(matches)})

    def create_conversation(self, req: Request) -> Response:
        body = req.json()
        errors = [f"property {field} should not exist" for field in body
                  if field not in ("locationId", "contactId")]
        for field in ("locationId", "contactId"):
            if not is_nonempty_str(body.get(field)):
                errors.append(f"{field} should not be empty")
        if errors:
            raise self.unprocessable(errors)
        self._check_location(body["locationId"])
        contact_id = self.records[self._existing(body["contactId"])].get("id")
        existing = self._conversation_of(contact_id)
        if existing is not None:
            # The spec documents no "already exists" answer; it names no
            # id here, so a client must search again (the index may lag).
            raise self.fail(400, "Conversation already exists")
        conversation = self.create({"locationId": body["locationId"], "contactId": contact_id},
                                   self.conversations)
        delay_ms = self.config["conversation_index_delay"] * 1000
        if delay_ms > 0:  # searchable only after the index caught up
            self.conversation_visible[self.find_key(conversation["id"], self.conversations)] = \
                self.now_ms() + delay_ms
        view = {field: conversation[field] for field in (
            "id", "dateAdded", "dateUpdated", "deleted", "contactId", "locationId",
            "lastMessageDate", "assignedTo")}
        return Response(201, {"success": True, "conversation": view})

    # ----- messages ----------------------------------------------------------

    def _call_errors(self, call) -> list[str]:
        if call is None:
            return []
        if not isinstance(call, dict):
            return ["call must be an object"]
        errors = [f"call.{field} must be a string" for field in ("to", "from")
                  if call.get(field) is not None and not isinstance(call.get(field), str)]
        if call.get("status") is not None and call.get("status") not in GHL_CALL_STATUSES:
            errors.append("call.status must be one of the following values: "
                          + ", ".join(GHL_CALL_STATUSES))
        return errors

    def _message_common_errors(self, body: dict) -> list[str]:
        errors = []
        if not is_nonempty_str(body.get("conversationId")):
            errors.append("conversationId should not be empty")
        for field in ("altId", "message", "conversationProviderId"):
            if body.get(field) is not None and not isinstance(body[field], str):
                errors.append(f"{field} must be a string")
        if body.get("date") is not None and (not isinstance(body["date"], str)
                                             or to_ms(body["date"]) is None):
            errors.append("date must be a valid ISO 8601 date string")
        attachments = body.get("attachments")
        if attachments is not None and not (isinstance(attachments, list) and all(
                isinstance(url, str) for url in attachments)):
            errors.append("attachments must be an array of strings")
        return errors + self._call_errors(body.get("call"))

    def _store_message(self, body: dict, conversation_key: str, message_type: str,
                       direction: str) -> Response:
        conversation = self.conversations.records[conversation_key]
        date_ms = to_ms(body["date"]) if body.get("date") is not None else None
        is_call = message_type in GHL_EXPORT_CHANNELS["Call"]
        call = body.get("call") or {}
        message = self.create({
            "messageType": message_type,
            "locationId": conversation.get("locationId") or self.location_id,
            "contactId": conversation.get("contactId"),
            "conversationId": conversation.get("id"),
            "dateAdded": iso_from_ms(date_ms) if date_ms is not None else None,
            "body": body.get("message"),
            "direction": direction,
            "attachments": [] if is_call else list(body.get("attachments") or []),
            "meta": {"callStatus": call.get("status")} if is_call else {},
            "conversationProviderId": body.get("conversationProviderId"),
        }, self.messages)
        last = conversation.get("lastMessageDate")
        if last is None or ms_or_zero(message["dateAdded"]) >= ms_or_zero(last):
            conversation["lastMessageDate"] = message["dateAdded"]
            conversation["lastMessageBody"] = message["body"]
            conversation["lastMessageType"] = message_type
        self.touch(conversation_key, self.conversations)
        return Response(200, {"success": True, "conversationId": message["conversationId"],
                              "messageId": message["id"], "message": "Message processed",
                              "contactId": message["contactId"],
                              "dateAdded": message["dateAdded"]})

    def add_inbound_message(self, req: Request) -> Response:
        body = req.json()
        kind = body.get("type")
        errors = []
        if kind not in GHL_INBOUND_TYPES:
            errors.append("type must be a valid enum value")
            if kind is None or kind == "":
                errors.append("type should not be empty")
        if not is_nonempty_str(body.get("contactId")):
            errors.append("contactId should not be empty")
        if body.get("direction") is not None and body["direction"] not in ("inbound", "outbound"):
            errors.append("direction must be one of the following values: inbound, outbound")
        errors += self._message_common_errors(body)
        if errors:
            raise self.unprocessable(errors)
        provider = body.get("conversationProviderId")
        if kind == "SMS" and self.config["sms_provider_replaced"]:
            pass  # a provider app replaced the default SMS provider
        elif not provider:
            raise self.fail(400, "No conversationProviderId passed in body")
        elif kind == "SMS" and self.config["sms_provider_id"] and \
                provider != self.config["sms_provider_id"]:
            raise self.fail(400, f"Conversation provider {provider} not found")
        key = self._existing_conversation(body["conversationId"])
        if self.conversations.records[key].get("contactId") != body["contactId"]:
            raise self.fail(400, f"Contact with id {body['contactId']} does not belong to "
                                 f"conversation {body['conversationId']}")
        return self._store_message(body, key, GHL_INBOUND_TYPES[kind],
                                   body.get("direction") or "inbound")

    def add_outbound_call(self, req: Request) -> Response:
        body = req.json()
        errors = [] if body.get("type") == "Call" else ["type must be a valid enum value"]
        errors += self._message_common_errors(body)
        if errors:
            raise self.unprocessable(errors)
        if not body.get("conversationProviderId"):
            raise self.fail(400, "No conversationProviderId passed in body")
        key = self._existing_conversation(body["conversationId"])
        return self._store_message(body, key, "TYPE_CALL", "outbound")

    def export_messages(self, req: Request) -> Response:
        query = req.query
        errors = []
        if not query.get("locationId"):
            errors.append("locationId should not be empty")
        limit_text = query.get("limit") or str(GHL_EXPORT_DEFAULT)
        if not _INTEGER.fullmatch(limit_text):
            errors.append("limit must be a number conforming to the specified constraints")
        elif int(limit_text) < GHL_EXPORT_MIN:
            errors.append(f"limit must not be less than {GHL_EXPORT_MIN}")
        elif int(limit_text) > GHL_EXPORT_MAX:
            errors.append(f"limit must not be greater than {GHL_EXPORT_MAX}")
        channel = query.get("channel") or None
        if channel is not None and channel not in GHL_EXPORT_CHANNELS:
            errors.append("channel must be one of the following values: "
                          + ", ".join(GHL_EXPORT_CHANNELS))
        if query.get("sortBy") not in (None, "", "createdAt", "updatedAt"):
            errors.append("sortBy must be one of the following values: createdAt, updatedAt")
        if query.get("sortOrder") not in (None, "", "asc", "desc"):
            errors.append("sortOrder must be one of the following values: asc, desc")
        after = None
        if query.get("cursor"):
            after = decode_cursor(query["cursor"])
            if after is None:
                errors.append("cursor is invalid")
        if errors:
            raise self.unprocessable(errors)
        self._check_location(query["locationId"])
        descending = query.get("sortOrder") != "asc"  # the spec's default is desc
        wanted = GHL_EXPORT_CHANNELS.get(channel)
        rows = []
        for key, message in self.messages.records.items():
            if query.get("conversationId") and message.get("conversationId") != query["conversationId"]:
                continue
            if query.get("contactId") and message.get("contactId") != query["contactId"]:
                continue
            message_type = message.get("messageType")
            if wanted is not None and message_type not in wanted:
                continue
            if wanted is None and message_type in GHL_EXPORT_CHANNELS["Email"]:
                continue  # without a channel, every non-email message
            rows.append(((ms_or_zero(message.get("dateAdded")), id_sort_key(message.get("id")),
                          key), message))
        rows.sort(key=lambda row: row[0], reverse=descending)
        total = len(rows)
        if after is not None:
            rows = [row for row in rows if (row[0] < after if descending else row[0] > after)]
        limit = int(limit_text)
        page = rows[:limit]
        next_cursor = encode_cursor(page[-1][0]) if len(rows) > limit else None
        return Response(200, {"messages": [message for _, message in page],
                              "nextCursor": next_cursor, "total": total})


# --------------------------------------------------------------------------
# Aloware (public webhook API; the /contacts listing is OURS)
# --------------------------------------------------------------------------

ALOWARE_BAD_PHONE = "Phone number is empty or invalid."
ALOWARE_NO_CONTACT = {"message": "The requested contact id does not exist."}
ALOWARE_NO_LIST = {"message": "The requested list id does not exist."}
# The user who owns the simulator's API token (sim choice: Aloware tokens
# belong to a user; add_to_powerdialer without user_id uses that user's list).
ALOWARE_TOKEN_USER = "1"


class AlowareSystem(System):
    name = "aloware"
    CREATED, UPDATED = "created_at", "updated_at"
    # Documented by Aloware (support.aloware.com articles 9020068, 9020058,
    # 9167815, 9020040); powerdialer-clear-list's path comes from the
    # original system (the article describes the removal, not its path).
    ROUTES = make_routes((
        ("GET", "/api/v1/webhook/contact/phone-number", "lookup_by_phone"),
        ("POST", "/api/v1/webhook/forms", "submit_form"),
        ("POST", "/api/v1/webhook/powerdialer-remove-contact-from-lists", "remove_from_lists"),
        ("POST", "/api/v1/webhook/powerdialer-clear-list", "clear_list"),
        ("POST", "/api/v1/webhook/sms-gateway/send", "send_sms"),
    ))
    # OURS: the changed-since listings a relay serves (config "relay").
    RELAY_ROUTES = make_routes((
        ("GET", "/api/v1/contacts", "list_contacts"),
        ("GET", "/api/v1/calls", "list_calls"),
    ))
    # Lead-form fields that are stored on the contact.
    FORM_FIELDS = ("first_name", "last_name", "email", "company_name", "website",
                   "lead_source", "timezone", "address", "city", "state", "zipcode",
                   "country", "csf1", "csf2")

    def blank_record(self) -> dict:
        return {
            "id": None, "phone_number": None, "email": None,
            "first_name": None, "last_name": None, "company_name": None, "website": None,
            "timezone": None, "address": None, "city": None, "state": None,
            "zipcode": None, "country": None, "csf1": None, "csf2": None,
            "lead_source": None, "is_dnc": False, "is_blocked": False,
            "text_authorized": True, "created_at": None, "updated_at": None,
        }

    def format_id(self, n: int) -> int:
        return 1000 + n

    def make_collections(self) -> list[Collection]:
        return super().make_collections() + [
            Collection("calls", blank=self.blank_call, format_id=lambda n: 5000 + n,
                       created="created_at", updated="updated_at"),
            Collection("lists", blank=self.blank_list, format_id=lambda n: n),
            Collection("sms", blank=self.blank_sms, format_id=lambda n: 9000 + n,
                       created="created_at", updated="updated_at"),
        ]

    def reset_state(self) -> None:
        super().reset_state()
        self.calls = self.collections["calls"]
        self.lists = self.collections["lists"]
        self.sms = self.collections["sms"]

    def active_routes(self) -> tuple[Route, ...]:
        return self.ROUTES + self.RELAY_ROUTES if self.config["relay"] else self.ROUTES

    @staticmethod
    def blank_call() -> dict:
        return {"id": None, "contact_id": None, "direction": "inbound", "type": None,
                "disposition": None, "status": None, "duration": 0, "talk_time": 0,
                "created_at": None, "ended_at": None, "updated_at": None,
                "recording_url": None, "has_recording": False}

    @staticmethod
    def blank_list() -> dict:
        return {"id": None, "name": None, "user_id": None, "contact_ids": []}

    @staticmethod
    def blank_sms() -> dict:
        return {"id": None, "from": None, "to": None, "message": None, "image_url": None,
                "created_at": None, "updated_at": None}

    def authenticate(self, req: Request) -> None:
        if req.method == "GET":
            token = req.query.get("api_token")
        else:
            try:
                token = req.json().get("api_token")
            except BadBody:
                token = None
        if token != self.token:
            raise HttpError(401, {"error": "Unauthenticated."})

    def error_body(self, status: int, message, **extra) -> dict:
        return {"error": message, **extra}

    LEAN_INDEXES = {
        "contacts": {"phone": lambda r: r.get("phone_number") if isinstance(r.get("phone_number"), str) else None,
                     "digits": lambda r: phone_key(r.get("phone_number"))},
    }

    def _find_by_phone(self, phone) -> str | None:
        """Exact phone_number match first, then digits-only equality."""
        if self.lean:
            for name, wanted in (("phone", phone if isinstance(phone, str) else None),
                                 ("digits", phone_key(phone))):
                keys = self.default.lean_keys(name, wanted) if wanted is not None else ()
                if keys:
                    return self.default.in_id_order(keys)[0]
            return None
        items = self.sorted_items()
        for key, record in items:
            if isinstance(phone, str) and record.get("phone_number") == phone:
                return key
        wanted = phone_key(phone)
        for key, record in items:
            if phone_key(record.get("phone_number")) == wanted:
                return key
        return None

    def lookup_by_phone(self, req: Request) -> Response:
        phone = req.query.get("phone_number")
        if phone_key(phone) is None:
            raise self.fail(400, ALOWARE_BAD_PHONE)
        key = self._find_by_phone(phone)
        if key is None:
            raise self.fail(404, "Contact not found.")
        return Response(200, self.records[key])

    def submit_form(self, req: Request) -> Response:
        body = req.json()
        phone = body.get("phone_number")
        if phone_key(phone) is None:
            raise self.fail(400, ALOWARE_BAD_PHONE)
        fields = {field: body[field] for field in self.FORM_FIELDS if field in body}
        actions = self._form_actions(body)
        key = self._find_by_phone(phone)
        if key is None:
            if "first_name" not in body and "last_name" not in body and "name" in body:
                fields["first_name"], fields["last_name"] = split_name(body["name"])
            created = self.create({"phone_number": str(phone), **fields})
            self._apply_actions(self.find_key(created["id"]), actions)
            return Response(200, {"message": "Contact has been created."})
        if not truthy(body.get("force_update")):
            # sim choice: without force_update the existing contact is left
            # alone, its actions included (the docs say nothing either way).
            return Response(200, {"message": "Contact already exists."})
        self.records[key].update(fields)
        self.touch(key)
        self._apply_actions(key, actions)
        return Response(200, {"message": "Contact has been updated."})

    def list_contacts(self, req: Request) -> Response:
        contacts, next_cursor = self.list_page(req.query)
        return Response(200, {"data": contacts, "next_cursor": next_cursor})

    def list_calls(self, req: Request) -> Response:
        calls, next_cursor = self.list_page(req.query, self.calls)
        return Response(200, {"data": calls, "next_cursor": next_cursor})

    # ----- Power Dialer lists (no contact's updated_at is bumped) -------------

    def _contact_id(self, given) -> object:
        """The stored id of the contact `given` names (1001 or "1001"); else 404."""
        key = self.find_key(given) if not isinstance(given, bool) else None
        if key is None:
            raise HttpError(404, ALOWARE_NO_CONTACT)
        return self.records[key].get("id")

    @staticmethod
    def _members(power_list: dict) -> list:
        members = power_list.get("contact_ids")
        return members if isinstance(members, list) else []

    def _user_list(self, user_id) -> dict:
        """The Power Dialer list of user_id (the token's owner when None)."""
        wanted = ALOWARE_TOKEN_USER if user_id in (None, "") else str(user_id)
        for _, power_list in self.sorted_items(self.lists):
            if str(power_list.get("user_id")) == wanted:
                return power_list
        raise self.fail(422, "The selected user id is invalid.")

    def _form_actions(self, body: dict) -> list:
        """Validates the Lead API's action fields before anything is stored;
        returns the actions to apply as (kind, value) pairs."""
        actions = []
        if truthy(body.get("add_to_powerdialer")):
            position = body.get("powerdialer_position", "bottom")
            if position not in ("top", "bottom"):
                raise self.fail(422, "The selected powerdialer position is invalid.")
            actions.append(("powerdialer", (self._user_list(body.get("user_id")), position)))
        if body.get("tag_id") not in (None, ""):
            tag = body["tag_id"]
            if not (is_int(tag) or (isinstance(tag, str) and tag.isdigit())):
                raise self.fail(422, "The tag id must be an integer.")
            actions.append(("tag", int(tag)))
        if body.get("sequence_id") not in (None, ""):
            actions.append(("sequence", str(body["sequence_id"])))
        return actions

    def _apply_actions(self, key: str, actions: list) -> None:
        contact = self.records[key]
        for kind, value in actions:
            if kind == "powerdialer":
                power_list, position = value
                members = [m for m in self._members(power_list) if m != contact["id"]]
                if contact["id"] in self._members(power_list):
                    members = list(self._members(power_list))  # already listed: stays put
                elif position == "top":
                    members.insert(0, contact["id"])
                else:
                    members.append(contact["id"])
                power_list["contact_ids"] = members
            elif kind == "tag":
                tags = contact.get("tag_ids") if isinstance(contact.get("tag_ids"), list) else []
                if value not in tags:
                    contact["tag_ids"] = tags + [value]
            else:
                seqs = contact.get("sequence_ids") if isinstance(contact.get("sequence_ids"), list) else []
                if value not in seqs:
                    contact["sequence_ids"] = seqs + [value]

    def remove_from_lists(self, req: Request) -> Response:
        contact_id = self._contact_id(req.json().get("contact_id"))
        for power_list in self.lists.records.values():
            if contact_id in self._members(power_list):
                power_list["contact_ids"] = [member for member in power_list["contact_ids"]
                                             if member != contact_id]
        return Response(200, {"message": "The contact has been removed from the Power Dialer lists."})

    def clear_list(self, req: Request) -> Response:
        list_id = req.json().get("list_id")
        key = self.find_key(list_id, self.lists) if not isinstance(list_id, bool) else None
        if key is None:
            raise HttpError(404, ALOWARE_NO_LIST)
        self.lists.records[key]["contact_ids"] = []
        return Response(200, {"message": "The contacts have been removed from the Power Dialer list."})

    # ----- SMS gateway (documented; dfreconcile does not send texts) ----------

    def send_sms(self, req: Request) -> Response:
        body = req.json()
        sender = body.get("from", body.get("line_id"))
        if sender in (None, ""):
            raise self.fail(422, "The from or line_id field is required.")
        if phone_key(body.get("to")) is None:
            raise self.fail(422, "The to field must be a valid phone number.")
        if not is_nonempty_str(body.get("message")):
            raise self.fail(422, "The message field is required.")
        self.create({"from": sender, "to": body["to"], "message": body["message"],
                     "image_url": body.get("image_url")}, self.sms)
        return Response(200, {"message": "SMS has been sent."})


# --------------------------------------------------------------------------
# Verity (no public contact API exists: this whole contract is OURS)
# --------------------------------------------------------------------------


class VeritySystem(System):
    name = "verity"
    CREATED, UPDATED = "createdAt", "updatedAt"
    ROUTES = make_routes((
        ("GET", "/api/v1/contacts", "list_contacts"),
        ("GET", "/api/v1/contacts/lookup", "lookup"),
        ("GET", "/api/v1/contacts/{id}", "get_contact"),
        ("POST", "/api/v1/contacts", "create_contact"),
        ("PATCH", "/api/v1/contacts/{id}", "patch_contact"),
        ("DELETE", "/api/v1/contacts/{id}", "delete_contact"),
    ))
    STRING_FIELDS = frozenset({"firstName", "lastName", "phoneE164", "email", "address1",
                               "city", "state", "postalCode", "country", "timezone"})
    WRITABLE = STRING_FIELDS | {"tags", "customFields", "optedOut", "optOuts"}
    OPT_OUT_CHANNELS = ("sms", "call", "email")

    def blank_record(self) -> dict:
        return {
            "id": None, "firstName": None, "lastName": None, "phoneE164": None,
            "email": None, "address1": None, "city": None, "state": None,
            "postalCode": None, "country": None, "timezone": None,
            "tags": [], "customFields": {}, "optedOut": False,
            "optOuts": {channel: False for channel in self.OPT_OUT_CHANNELS},
            "createdAt": None, "updatedAt": None,
        }

    def derive(self, record: dict) -> None:
        """A partial optOuts object (seed, control edit) gets the missing channels as false."""
        if isinstance(record.get("optOuts"), dict):
            record["optOuts"] = {**{channel: False for channel in self.OPT_OUT_CHANNELS},
                                 **record["optOuts"]}

    def format_id(self, n: int) -> str:
        return f"ver_{n:06d}"  # zero-padded so ids sort in creation order

    def authenticate(self, req: Request) -> None:
        if not bearer_matches(req, self.token):
            raise HttpError(401, {"error": "unauthorized"})

    def error_body(self, status: int, message, **extra) -> dict:
        return {"error": message, **extra}

    def _existing(self, contact_id: str) -> str:
        key = self.find_key(contact_id)
        if key is None:
            raise self.fail(404, "not found")
        return key

    def _validate(self, body: dict) -> None:
        for field, value in body.items():
            if field not in self.WRITABLE:
                raise self.fail(400, f"unknown field {field}")
            if field in self.STRING_FIELDS:
                ok = value is None or isinstance(value, str)
            elif field == "tags":
                ok = value is None or (isinstance(value, list)
                                       and all(isinstance(tag, str) for tag in value))
            elif field == "customFields":
                ok = value is None or (isinstance(value, dict) and all(
                    v is None or isinstance(v, str) for v in value.values()))
            elif field == "optOuts":
                ok = isinstance(value, dict)
                unknown = [channel for channel in (value if ok else {})
                           if channel not in self.OPT_OUT_CHANNELS]
                if unknown:
                    raise self.fail(400, f"unknown optOuts channel {unknown[0]}")
                ok = ok and all(isinstance(v, bool) for v in value.values())
            else:  # optedOut
                ok = isinstance(value, bool)
            if not ok:
                raise self.fail(400, f"invalid value for field {field}")

    LEAN_INDEXES = {
        "contacts": {"phone": lambda r: r.get("phoneE164"),
                     "email": lambda r: lower_or_none(r.get("email"))},
    }

    def _lean_matches(self, phone, email) -> list[str]:
        """Keys with this phoneE164 or lower-case email, in id order."""
        keys = set()
        if phone:
            keys |= {key for key in self.default.lean_keys("phone", phone)
                     if self.records[key].get("phoneE164") == phone}
        if email:
            keys |= self.default.lean_keys("email", email)
        return self.default.in_id_order(keys)

    def _check_unique(self, body: dict, own_key: str | None = None) -> None:
        phone, email = body.get("phoneE164"), lower_or_none(body.get("email"))
        if self.lean:
            for key in self._lean_matches(phone, email):
                if key != own_key:
                    raise self.fail(409, "duplicate", existingId=self.records[key].get("id"))
            return
        for key, record in self.sorted_items():
            if key == own_key:
                continue
            if (phone and record.get("phoneE164") == phone) or (
                    email and lower_or_none(record.get("email")) == email):
                raise self.fail(409, "duplicate", existingId=record.get("id"))

    @staticmethod
    def _merge_custom_fields(stored, changes: dict) -> dict:
        merged = dict(stored) if isinstance(stored, dict) else {}
        for name, value in changes.items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = value
        return merged

    def _apply(self, record: dict, body: dict) -> None:
        for field, value in body.items():
            if field == "customFields":
                record[field] = {} if value is None else self._merge_custom_fields(
                    record.get(field), value)
            elif field == "tags":
                record[field] = value or []
            elif field == "optOuts":  # merged per channel
                stored = record.get(field)
                record[field] = {**(stored if isinstance(stored, dict) else {}), **value}
            else:
                record[field] = value

    def list_contacts(self, req: Request) -> Response:
        contacts, next_cursor = self.list_page(req.query)
        return Response(200, {"contacts": contacts, "nextCursor": next_cursor})

    def lookup(self, req: Request) -> Response:
        phone, email = req.query.get("phone"), lower_or_none(req.query.get("email"))
        if not phone and not email:
            raise self.fail(400, "phone or email required")
        if self.lean:
            matches = [self.records[key] for key in self._lean_matches(phone, email)]
        else:
            matches = [record for _, record in self.sorted_items()
                       if (phone and record.get("phoneE164") == phone)
                       or (email and lower_or_none(record.get("email")) == email)]
        return Response(200, {"contacts": matches})

    def delete_contact(self, req: Request, id: str) -> Response:
        self.remove(self._existing(id))
        return Response(200, {"deleted": True})

    def get_contact(self, req: Request, id: str) -> Response:
        return Response(200, {"contact": self.records[self._existing(id)]})

    def create_contact(self, req: Request) -> Response:
        body = req.json()
        self._validate(body)
        self._check_unique(body)
        record = {}
        self._apply(record, body)
        return Response(201, {"contact": self.create(record)})

    def patch_contact(self, req: Request, id: str) -> Response:
        key = self._existing(id)
        body = req.json()
        self._validate(body)
        self._check_unique(body, own_key=key)
        self._apply(self.records[key], body)
        self.touch(key)
        return Response(200, {"contact": self.records[key]})


# --------------------------------------------------------------------------
# Texting (message and opt-out store of the texting provider: contract OURS)
# --------------------------------------------------------------------------

OPT_OUT_CHANNELS = ("sms", "call", "email")
OPT_OUT_SOURCES = ("keyword", "api", "admin")


class TextingSystem(System):
    name = "texting"
    DEFAULT_COLLECTION = "messages"
    CREATED, UPDATED = "createdAt", "updatedAt"
    ROUTES = make_routes((
        ("GET", "/api/v1/messages", "list_messages"),
        ("GET", "/api/v1/optouts/events", "list_optout_events"),
        ("GET", "/api/v1/optouts", "optout_state"),
        ("POST", "/api/v1/optouts", "add_optout"),
    ))

    def blank_record(self) -> dict:
        return {"id": None, "conversationId": None, "direction": "inbound", "from": None,
                "to": None, "body": None, "status": None, "createdAt": None, "updatedAt": None}

    def format_id(self, n: int) -> str:
        return f"msg_{n:06d}"

    def derive(self, record: dict) -> None:
        """A message without a status gets "received" (inbound) or "queued" (outbound)."""
        if record.get("status") is None:
            record["status"] = "queued" if record.get("direction") == "outbound" else "received"

    def make_collections(self) -> list[Collection]:
        return super().make_collections() + [
            Collection("events", blank=self.blank_event, format_id=lambda n: f"opt_{n:06d}",
                       created="createdAt", updated="updatedAt"),
        ]

    def reset_state(self) -> None:
        super().reset_state()
        self.events = self.collections["events"]

    @staticmethod
    def blank_event() -> dict:
        return {"id": None, "phone": None, "channel": "sms", "type": "optout", "source": "api",
                "reason": None, "createdAt": None, "updatedAt": None}

    def authenticate(self, req: Request) -> None:
        if not bearer_matches(req, self.token):
            raise HttpError(401, {"error": "unauthorized"})

    def error_body(self, status: int, message, **extra) -> dict:
        return {"error": message, **extra}

    def _opted_out(self, phone: str) -> dict:
        """{channel: bool} for a phone: the last event per channel (createdAt, id) wins."""
        state = {channel: False for channel in OPT_OUT_CHANNELS}
        rows = [((ms_or_zero(event.get("createdAt")), id_sort_key(event.get("id")), key), event)
                for key, event in self.events.records.items() if event.get("phone") == phone]
        for _, event in sorted(rows, key=lambda row: row[0]):
            if event.get("channel") in state and event.get("type") in ("optout", "optin"):
                state[event["channel"]] = event["type"] == "optout"
        return state

    def _valid_phone(self, phone) -> str:
        if not (isinstance(phone, str) and E164.fullmatch(phone)):
            raise self.fail(400, "phone must be an E.164 number such as +15550001111")
        return phone

    def list_messages(self, req: Request) -> Response:
        messages, next_cursor = self.list_page(req.query)
        return Response(200, {"messages": messages, "nextCursor": next_cursor})

    def list_optout_events(self, req: Request) -> Response:
        events, next_cursor = self.list_page(req.query, self.events)
        return Response(200, {"events": events, "nextCursor": next_cursor})

    def optout_state(self, req: Request) -> Response:
        phone = self._valid_phone(req.query.get("phone"))
        return Response(200, {"phone": phone, "channels": self._opted_out(phone)})

    def add_optout(self, req: Request) -> Response:
        body = req.json()
        for field in body:
            if field not in ("phone", "channel", "source", "reason"):
                raise self.fail(400, f"unknown field {field}")
        phone = self._valid_phone(body.get("phone"))
        channel = body.get("channel")
        if channel not in OPT_OUT_CHANNELS:
            raise self.fail(400, f"channel must be one of {', '.join(OPT_OUT_CHANNELS)}")
        source = body.get("source")
        if source is not None and source not in OPT_OUT_SOURCES:
            raise self.fail(400, f"source must be one of {', '.join(OPT_OUT_SOURCES)}")
        reason = body.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise self.fail(400, "reason must be a string")
        if not self._opted_out(phone)[channel]:  # idempotent: no event when already out
            self.create({"phone": phone, "channel": channel, "type": "optout",
                         "source": source or "api", "reason": reason}, self.events)
        return Response(200, {"phone": phone, "channel": channel, "optedOut": True})


SYSTEM_CLASSES = {"ghl": GhlSystem, "aloware": AlowareSystem, "verity": VeritySystem,
                  "texting": TextingSystem}


# --------------------------------------------------------------------------
# HTTP plumbing and process entry point
# --------------------------------------------------------------------------


# The head of a request (request line and headers) and its header count are
# bounded as http.server bounded them; a body is bounded too (a seed of
# millions of records goes through --seed, not through the control API).
MAX_HEAD = 65536
MAX_HEADERS = 100
MAX_BODY = 1 << 30
METHODS = frozenset(("GET", "POST", "PUT", "PATCH", "DELETE"))
BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))
_TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# method SP origin-form target (printable ASCII) SP version; methods are upper case.
_REQUEST_LINE = re.compile(r"([!#$%&'*+\-.^_`|~0-9A-Z]+) (/[!-~]*) HTTP/(\d)\.(\d)")
_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(rb"[0-9A-Fa-f]+")
PHRASES = {status.value: status.phrase for status in HTTPStatus}


class Headers(dict):
    """Request headers by lower-case name; .get() takes any case. A repeated
    header keeps its first value (as email.message's get did)."""

    def get(self, name, default=None):
        return dict.get(self, name.lower(), default)


class Refused(Exception):
    """A request the transport refuses before any system sees it: answered
    with `status` in the system's error shape, then the connection closes
    (its framing can no longer be trusted)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class Closed(Exception):
    """The client closed the connection (or sent a partial request and left)."""


class Connection:
    """One keep-alive client connection: a strict HTTP/1.1 reader over a
    plain socket, and the writer of the answers the system gives.

    Why not http.server: its email-parser header parsing, per-line reads and
    per-header writes cost more CPU per request than most handlers, which
    made the simulators the bottleneck of a large bench (issue 9). One
    thread per connection, as before: a `delay` or `slow` fault sleeps in
    its own connection's thread only."""

    def __init__(self, sock: socket.socket, server: "SimServer"):
        self.sock = sock
        self.server = server
        self.buf = b""

    def _recv(self) -> bytes:
        try:
            chunk = self.sock.recv(262144)
        except OSError:
            raise Closed() from None
        if not chunk:
            raise Closed()
        return chunk

    def _take(self, size: int) -> bytes:
        while len(self.buf) < size:
            self.buf += self._recv()
        data, self.buf = self.buf[:size], self.buf[size:]
        return data

    def _line(self) -> bytes:
        """One CRLF-ended line of a chunked body (without the CRLF)."""
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line, self.buf = self.buf[:end], self.buf[end + 2:]
                return line
            if len(self.buf) > MAX_HEAD:
                raise Refused(400, "chunk line too long")
            self.buf += self._recv()

    def _head(self) -> bytes:
        """The request line and headers, without the blank line after them."""
        searched = 0
        while True:
            end = self.buf.find(b"\r\n\r\n", searched)
            if end >= 0:
                if end > MAX_HEAD:
                    raise Refused(431, "request header fields too large")
                head, self.buf = self.buf[:end], self.buf[end + 4:]
                return head
            if len(self.buf) > MAX_HEAD:
                raise Refused(431, "request header fields too large")
            if b"\n\n" in self.buf or b"\n\r\n" in self.buf:
                raise Refused(400, "bad line ending")  # a bare LF: not HTTP/1.1 framing
            searched = max(0, len(self.buf) - 3)
            self.buf += self._recv()

    def read_request(self) -> tuple[str, str, Headers, bytes, bool]:
        """(method, target, headers, body, keep_alive) of the next request;
        raises Refused or Closed."""
        head = self._head().decode("latin-1")
        line, _, fields = head.partition("\r\n")
        matched = _REQUEST_LINE.fullmatch(line)
        if matched is None:
            raise Refused(400, "bad request line")
        method, target, major, minor = matched.groups()
        if major != "1":
            raise Refused(505, "http version not supported")
        if method not in METHODS:
            raise Refused(501, "method not implemented")
        headers = Headers()
        lengths = ()
        if fields:
            lines = fields.split("\r\n")
            if len(lines) > MAX_HEADERS:
                raise Refused(431, "too many headers")
            breaks = len(lines) - 1
            if fields.count("\n") != breaks or fields.count("\r") != breaks:
                raise Refused(400, "invalid header line")  # a bare CR or LF
            for field in reversed(lines):  # reversed: a repeated header keeps its first value
                name, colon, value = field.partition(":")
                # A name is a token: no space before the colon, no obsolete
                # folding (a line starting with a space), never empty.
                if not colon or not (name.isascii() and name.replace("-", "").isalnum()
                                     or name and not name.strip(_TOKEN_CHARS)):
                    raise Refused(400, "invalid header line")
                name = name.lower()
                value = value.strip(" \t")
                if name == "content-length":
                    lengths = (*lengths, value)
                headers[name] = value
        http10 = minor == "0"
        connection = dict.get(headers, "connection", "").lower()
        keep_alive = "keep-alive" in connection if http10 else "close" not in connection
        body = self._body(method, headers, lengths, http10)
        return method, target, headers, body, keep_alive

    def _body(self, method: str, headers: Headers, lengths: set, http10: bool) -> bytes:
        coding = dict.get(headers, "transfer-encoding")
        if coding is not None and lengths:
            raise Refused(400, "both content-length and transfer-encoding")
        if coding is not None and coding.lower() != "chunked":
            raise Refused(501, "transfer-encoding not supported")
        if lengths:
            (length,) = set(lengths) if len(set(lengths)) == 1 else (None,)
            if length is None or not _DIGITS.fullmatch(length):
                raise Refused(400, "invalid content-length")
            if int(length) > MAX_BODY:
                raise Refused(413, "payload too large")
        elif coding is None:
            if method in BODY_METHODS:
                raise Refused(411, "length required")
            return b""
        expect = dict.get(headers, "expect")
        if expect is not None:
            if expect.lower() != "100-continue":
                raise Refused(417, "expectation failed")
            if not http10 and not self.buf:
                self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if coding is None:
            return self._take(int(length))
        chunks, size = [], 0
        while True:
            line = self._line().split(b";", 1)[0].strip(b" \t")
            if not _HEX.fullmatch(line):
                raise Refused(400, "invalid chunk size")
            n = int(line, 16)
            if n == 0:
                while self._line():
                    pass  # trailers
                return b"".join(chunks)
            size += n
            if size > MAX_BODY:
                raise Refused(413, "payload too large")
            chunks.append(self._take(n))
            if self._take(2) != b"\r\n":
                raise Refused(400, "invalid chunk")

    def write(self, status: int, body: bytes, headers: dict, keep_alive: bool) -> None:
        head = (f"HTTP/1.1 {status} {PHRASES.get(status, 'Unknown')}\r\nServer: dfreconcile-sim/1\r\n"
                f"Date: {self.server.date()}\r\nContent-Type: application/json; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\n")
        if headers:
            head += "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
        if not keep_alive:
            head += "Connection: close\r\n"
        # One write per answer: headers and body in separate writes made a
        # client that reuses its connection wait for a delayed ACK.
        self.sock.sendall(head.encode("latin-1") + b"\r\n" + body)

    def serve(self) -> None:
        system, verbose = self.server.system, self.server.verbose
        while True:
            try:
                method, target, headers, body, keep_alive = self.read_request()
            except Closed:
                return
            except Refused as exc:
                if verbose:
                    sys.stderr.write(f"[{system.name}] refused: {exc.status} {exc.message}\n")
                self.write(exc.status, encode_json(system.error_body(exc.status, exc.message)), {}, False)
                return
            response = system.handle(Request(method, target, headers, body))
            if verbose:
                sys.stderr.write(f"[{system.name}] \"{method} {target}\" {response.status} "
                                 f"{len(response.body)}\n")
            self.write(response.status, response.body, response.headers, keep_alive)
            if not keep_alive:
                return


class SimServer:
    """One system's listening socket; a daemon thread per connection."""

    def __init__(self, port: int, system: System, verbose: bool):
        self.system = system
        self.verbose = verbose
        self.sock = socket.create_server(("127.0.0.1", port), backlog=128)
        self.server_address = self.sock.getsockname()
        self._date = (0, "")
        self._stopping = False

    def date(self) -> str:
        """The Date header, formatted once a second."""
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, email.utils.formatdate(now, usegmt=True))
        return self._date[1]

    def serve_forever(self) -> None:
        while not self._stopping:
            try:
                sock, _ = self.sock.accept()
            except OSError:
                return  # closed by shutdown()
            threading.Thread(target=self._serve_connection, args=(sock,), daemon=True).start()

    def _serve_connection(self, sock: socket.socket) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            Connection(sock, self).serve()
        except OSError:
            pass  # the client went away mid-answer (a killed run)
        finally:
            sock.close()

    def shutdown(self) -> None:
        self._stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def load_seed_file(path: str, systems: dict[str, System]) -> None:
    """{"ghl": [records] | {"records": [...], "raw": bool, "collection": name}, ...}

    A key may also name a collection: {"aloware.calls": [...], "texting.events": ...}.
    """
    with open(path, encoding="utf-8") as handle:
        seed = json.load(handle)
    while seed:  # popped: each list is freed once stored
        name, entry = seed.popitem()
        system_name, _, collection = name.partition(".")
        if system_name not in systems:
            raise SystemExit(f"seed file: unknown system {name!r}")
        system = systems[system_name]
        records, raw = (entry.get("records", []), bool(entry.get("raw"))) \
            if isinstance(entry, dict) else (entry, False)
        if isinstance(entry, dict) and entry.get("collection"):
            collection = entry["collection"]
        if collection and collection not in system.collections:
            raise SystemExit(f"seed file: {system_name} has no collection {collection!r}")
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise SystemExit(f"seed file: {name} must be a list of JSON objects")
        system.seed(records, raw, system.collections[collection] if collection else None, owned=True,
                    shared=True)


def write_port_file(path: str, ports: dict) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(ports, handle)
    os.replace(tmp, path)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-file", required=True,
                        help="where to write {ghl, aloware, verity, texting, pid} once listening")
    for name in SYSTEM_NAMES:
        parser.add_argument(f"--{name}-port", type=int, default=0, help="0 = any free port")
        parser.add_argument(f"--{name}-token", default=DEFAULT_TOKENS[name])
    parser.add_argument("--location-id", default=DEFAULT_LOCATION)
    parser.add_argument("--seed", help="JSON file of records to load at start")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    parser.add_argument("--lean", action="store_true",
                        help="answer from indexes and cached listings (benchmarks: same answers, "
                             "no pass over every record per request)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    systems = {name: SYSTEM_CLASSES[name](getattr(args, f"{name}_token"), args.location_id)
               for name in SYSTEM_NAMES}
    if args.lean:
        for system in systems.values():
            system.enable_lean()
    if args.seed:
        # No cyclic garbage comes from a seed: the collector's passes over
        # millions of new objects while loading are wasted, and frozen
        # afterwards the seeded records are left out of every later pass.
        gc.disable()
        load_seed_file(args.seed, systems)
        gc.freeze()
        gc.enable()
    servers = {}
    try:
        for name in SYSTEM_NAMES:
            servers[name] = SimServer(getattr(args, f"{name}_port"), systems[name], args.verbose)
    except OSError as exc:
        print(f"simulators: cannot listen: {exc}", file=sys.stderr)
        return 2
    for server in servers.values():
        threading.Thread(target=server.serve_forever, daemon=True).start()

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    ports = {name: server.server_address[1] for name, server in servers.items()}
    write_port_file(args.port_file, {**ports, "pid": os.getpid()})
    if args.verbose:
        print(f"simulators: listening on {ports}", file=sys.stderr)

    while not stop.wait(0.5):
        pass
    for server in servers.values():
        server.shutdown()
    try:  # remove the port file unless someone else has replaced it
        with open(args.port_file, encoding="utf-8") as handle:
            if json.load(handle).get("pid") == os.getpid():
                os.remove(args.port_file)
    except (OSError, ValueError):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
