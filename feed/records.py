"""Subscription records: the contract between the feed lifecycle and the router (DESIGN.md 6).

The subscriptions topic is **compacted and has exactly one partition**, so its offsets totally
order every record ever written; both sides rely on that order. Keys are named prefixes::

    subscription:/ns/T   the configuration, written by the feed lifecycle (feed.lifecycle)
    status:/ns/T         the runtime status, written by the consumer: disabled (after 401/403/404,
                         or refused by the router), or active with a notice (a fire ran no rule)

A null value (tombstone) deletes the key. Values are compact UTF-8 JSON carrying a format
version ``v``; a reader refuses a version it does not know (``RecordError``) instead of guessing.

**Versions.** A configuration's version is the offset of its record in the subscriptions topic.
A status record names the configuration version it applies to (``config``); a newer CREATE or
UPDATE has a higher offset, so it re-enables the subscription without anyone deleting the status.
Envelopes the router writes carry that version in their ``source`` (``feed_source``), which is
how the firer's status record knows which configuration it disables.

**Segments.** Where a subscription reads is a list of segments, each with per-partition
``start`` offsets (resolved by the lifecycle at CREATE from ``startFrom``), an optional
``stop`` (set by PAUSE: the topic's end offsets at that moment), and an ``origin``: the offset
of the record that opened the segment (``None`` in that very record, since a record cannot know
its own offset; readers resolve it with ``resolved``). CREATE opens the first segment, UNPAUSE
appends one that starts where the paused one stopped, UPDATE and PAUSE keep the origins, so the
router can tell a segment it already serves from a new one (see consumer/positions.py). A
partition missing from ``start`` or ``stop`` (created later) counts as offset 0.

**In memory** (the router holds every subscription): the value classes have slots, and decoding
shares equal topics, options and start/stop positions between records (``_shared``), so a
million subscriptions cost their credentials and little else. Shared mappings are never
mutated: every change makes a new one.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, cast

from feed import options as feed_options
from feed.options import Options, record_int  # Options: the table of feed.options, named here too
from messaging_lib.envelope import DEFAULT_NAMESPACE_PLACEHOLDER, ENTITY_NAME_RE, parse_trigger_fqn
from messaging_lib.errors import BadMessage, RecordError

SUBSCRIPTION_PREFIX = "subscription:"
STATUS_PREFIX = "status:"
FORMAT_VERSION = 1
FEED_SOURCE = "/messaging/kafkaFeed"
_SOURCE_VERSION = "?config="
ACTIVE, PAUSED, DISABLED = "active", "paused", "disabled"
# UNPAUSE appends a segment; beyond this many the oldest is dropped (see DESIGN.md 6, limitations).
MAX_SEGMENTS = 8

Positions = Mapping[int, int]  # partition -> offset


# --- keys ---------------------------------------------------------------------------------------


def subscription_key(trigger_fqn: str) -> bytes:
    return (SUBSCRIPTION_PREFIX + trigger_fqn).encode("utf-8")


def status_key(trigger_fqn: str) -> bytes:
    return (STATUS_PREFIX + trigger_fqn).encode("utf-8")


def parse_key(key: bytes | None) -> tuple[str, str] | None:
    """``(prefix, trigger)`` of a record key, or None for a key that is not ours."""
    try:
        text = (key or b"").decode("utf-8")
    except UnicodeDecodeError:
        return None
    for prefix in (SUBSCRIPTION_PREFIX, STATUS_PREFIX):
        if text.startswith(prefix):
            return prefix, text[len(prefix):]
    return None


def feed_source(config_version: int) -> str:
    """The ``source`` of an envelope built from subscription configuration ``config_version``."""
    return f"{FEED_SOURCE}{_SOURCE_VERSION}{config_version}"


def config_version_of(source: str) -> int | None:
    """The configuration version an envelope's ``source`` names; None if it is not the router's."""
    prefix = FEED_SOURCE + _SOURCE_VERSION
    if not isinstance(source, str) or not source.startswith(prefix) or not source[len(prefix):].isdigit():
        return None
    return int(source[len(prefix):])


NO_RULE_MESSAGE = ("The last fire ran no rule: the trigger has no active rule, so nothing was run. "
                   "Enable its rule (wsk rule enable RULE) or create one (wsk rule create RULE TRIGGER ACTION); "
                   "a trigger deleted and created again leaves its rules disabled.")


def disabled_message(status_code: int) -> str:
    """The old feed's exact wording for an automatic disable."""
    return f"Automatically disabled after receiving a {status_code} status code when firing the trigger."


# --- values -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of the topic the subscription reads: ``start`` <= offset < ``stop`` per partition."""

    origin: int | None
    start: Mapping[int, int]
    stop: Mapping[int, int] | None = None

    def start_at(self, partition: int) -> int:
        return self.start.get(partition, 0)

    def stop_at(self, partition: int) -> int | None:
        return None if self.stop is None else self.stop.get(partition, 0)


@dataclass(frozen=True, slots=True)
class Subscription:
    """One trigger's subscription to one topic. ``credential`` is sealed (never a plain key)."""

    trigger: str
    topic: str
    credential: str = field(repr=False)
    options: Options
    start_from: str
    segments: tuple[Segment, ...]
    created_ms: int
    updated_ms: int

    @property
    def paused(self) -> bool:
        return self.segments[-1].stop is not None

    @property
    def state(self) -> str:
        return PAUSED if self.paused else ACTIVE

    def resolved(self, offset: int) -> Subscription:
        """This record as read at ``offset``: segments it opened get that offset as their origin."""
        if all(s.origin is not None for s in self.segments):
            return self
        segments = tuple(s if s.origin is not None else Segment(offset, s.start, s.stop) for s in self.segments)
        return Subscription(self.trigger, self.topic, self.credential, self.options, self.start_from, segments,
                            self.created_ms, self.updated_ms)  # not replace(): the router does this a million times

    def paused_at(self, ends: Positions, now_ms: int) -> Subscription:
        """PAUSE: the open segment stops at ``ends`` (the topic's end offsets now). Idempotent."""
        if self.paused:
            return self
        last = replace(self.segments[-1], stop=dict(ends))
        return replace(self, segments=(*self.segments[:-1], last), updated_ms=now_ms)

    def unpaused(self, now_ms: int) -> Subscription:
        """UNPAUSE: a new segment (origin: the record that carries it) from where the last stopped."""
        if not self.paused:
            return self
        stop = self.segments[-1].stop
        assert stop is not None
        segments = (*self.segments, Segment(None, dict(stop)))[-MAX_SEGMENTS:]
        return replace(self, segments=segments, updated_ms=now_ms)


@dataclass(frozen=True, slots=True)
class Status:
    """The consumer's verdict on a configuration version: ``state`` DISABLED because a fire was
    refused (the only kind before notices; records without another state read as that), or
    ACTIVE with a notice (``no_rule_notice``: a fire ran no rule) that disables nothing. Readers
    ask ``disables`` rather than comparing states."""

    status_code: int
    message: str
    config: int
    updated_ms: int
    state: str = DISABLED

    def applies_to(self, config_version: int) -> bool:
        return self.config == config_version

    @property
    def disables(self) -> bool:
        return self.state == DISABLED

    def disables_version(self, config_version: int) -> bool:
        """Whether this status disables configuration ``config_version`` (a notice never does)."""
        return self.disables and self.applies_to(config_version)


def no_rule_notice(config_version: int, now_ms: int) -> Status:
    """The notice of a fire answered 204 (no active rule): the subscription stays active."""
    return Status(204, NO_RULE_MESSAGE, config_version, now_ms, state=ACTIVE)


# --- encoding -----------------------------------------------------------------------------------


def _positions_json(positions: Positions | None) -> dict[str, int] | None:
    return None if positions is None else {str(p): int(o) for p, o in sorted(positions.items())}


def encode_subscription(sub: Subscription) -> bytes:
    value = {
        "v": FORMAT_VERSION,
        "trigger": sub.trigger,
        "topic": sub.topic,
        "credential": sub.credential,
        "options": feed_options.to_record(sub.options),
        "startFrom": sub.start_from,
        "segments": [{"origin": s.origin, "start": _positions_json(s.start), "stop": _positions_json(s.stop)}
                     for s in sub.segments],
        "created_ms": sub.created_ms,
        "updated_ms": sub.updated_ms,
    }
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def encode_status(status: Status) -> bytes:
    value = {"v": FORMAT_VERSION, "state": status.state, "statusCode": status.status_code,
             "message": status.message, "config": status.config, "updated_ms": status.updated_ms}
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


# --- decoding -----------------------------------------------------------------------------------

_T = TypeVar("_T")
_SHARED: dict[Hashable, Any] = {}
_SHARED_MAX = 65_536  # distinct values kept; past it the cache starts over (only sharing is lost)
_fast_loads: Callable[[bytes], Any] | None
try:  # the consumer image has orjson (about 2.5x faster on a subscription record); the actions' runtime has not
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - the actions' runtime
    _fast_loads = None


def _shared(key: Hashable, value: _T) -> _T:
    """The value decoded earlier under an equal ``key``, else ``value`` (kept for the next)."""
    found = _SHARED.get(key)
    if found is None:
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()
        _SHARED[key] = found = value
    return cast(_T, found)


def _std_loads(value: bytes) -> Any:
    return json.loads(value.decode("utf-8"))


def _load(value: bytes, loads: Callable[[bytes], Any]) -> dict[str, Any]:
    try:
        content = loads(value)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise RecordError("the record value is not UTF-8 JSON") from None
    if not isinstance(content, dict):
        raise RecordError("the record value is not a JSON object")
    if content.get("v") != FORMAT_VERSION:
        raise RecordError(f"unknown record format version {content.get('v')!r}")
    return content


def _decoded(value: bytes, read: Callable[[dict[str, Any]], _T]) -> _T:
    """``read`` of the record's JSON object, exactly as the stdlib's json reads it. orjson reads
    first where installed; where it refuses the text (NaN, a lone surrogate) or reads a value that
    ``read`` refuses (a number beyond 64 bits comes back as a float), the stdlib reads it again,
    so the fast parser never changes which records are readable nor what they say."""
    if _fast_loads is not None:
        try:
            return read(_load(value, _fast_loads))
        except RecordError:
            pass
    return read(_load(value, _std_loads))


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise RecordError(f"{what} must be a non-empty string")
    return value


def _positions(value: object, what: str) -> dict[int, int]:
    """Positions repeat across records (every CREATE from earliest starts at 0): one seen before,
    with the same keys, values and value types, is not validated and built again."""
    if not isinstance(value, dict):
        raise RecordError(f"{what} must be an object of partition: offset")
    try:  # types in the key: true must not pass for 1
        seen: Hashable = ("positions", *value.items(), *map(type, value.values()))
        found = _SHARED.get(seen)
    except TypeError:  # a nested value: refused below
        seen, found = None, None
    if found is not None:
        return cast(dict[int, int], found)
    out = {}
    for partition, offset in value.items():
        if not isinstance(partition, str) or not partition.isdigit():
            raise RecordError(f"{what} has a partition that is not a number")
        out[int(partition)] = record_int(offset, what)
    out = _shared(("positions", *out.items()), out)
    if seen is not None:
        _shared(seen, out)
    return out


def _segment(value: object, offset: int | None) -> Segment:
    if not isinstance(value, dict):
        raise RecordError("a segment must be an object")
    origin = value.get("origin")
    stop = value.get("stop")
    return Segment(offset if origin is None else record_int(origin, "segment origin"),
                   _positions(value.get("start"), "segment start"),
                   None if stop is None else _positions(stop, "segment stop"))


def decode_subscription(value: bytes, offset: int | None = None) -> Subscription:
    """A ``subscription:`` record value; given the record's ``offset``, as read there
    (``Subscription.resolved``, without building it twice). Raises only ``RecordError``."""
    return _decoded(value, lambda content: _subscription(content, offset))


# ``parse_trigger_fqn``'s rule in one match: entity names have no "/", so "/name/name" whole is
# exactly "two slashes, a name each side" (a million distinct triggers miss its cache each time)
_TRIGGER_FQN_RE = re.compile(f"/(?:{ENTITY_NAME_RE.pattern})/(?:{ENTITY_NAME_RE.pattern})", ENTITY_NAME_RE.flags)
_PLACEHOLDER_FQN = f"/{DEFAULT_NAMESPACE_PLACEHOLDER}/"


def _check_trigger(trigger: str) -> None:
    if _TRIGGER_FQN_RE.fullmatch(trigger) and not trigger.startswith(_PLACEHOLDER_FQN):
        return
    try:
        parse_trigger_fqn(trigger)  # raises the reason
    except BadMessage as e:
        raise RecordError(f"trigger: {e.detail}") from None


def _subscription(content: dict[str, Any], offset: int | None) -> Subscription:
    trigger = _text(content.get("trigger"), "trigger")
    _check_trigger(trigger)
    segments = content.get("segments")
    if not isinstance(segments, list) or not segments:
        raise RecordError("segments must be a non-empty list")
    topic = sys.intern(_text(content.get("topic"), "topic"))
    credential = _text(content.get("credential"), "credential")
    options = _shared_options(content.get("options"))
    start_from = sys.intern(_text(content.get("startFrom"), "startFrom"))
    read = tuple(_segment(s, offset) for s in segments)
    created_ms = record_int(content.get("created_ms"), "created_ms")
    updated_ms = record_int(content.get("updated_ms"), "updated_ms")
    return Subscription(trigger, topic, credential, options, start_from, read, created_ms,
                        created_ms if updated_ms == created_ms else updated_ms)  # one int object: 32 bytes less


def _shared_options(value: object) -> Options:
    """Records mostly repeat a few option sets: one seen before (the same keys and values, in the
    same order) is not validated and built again."""
    try:  # types in the key: true must not pass for 1, nor 1.0 for 1
        key: Hashable = ("options", *value.items(), *map(type, value.values())) if isinstance(value, dict) else None
        found = None if key is None else _SHARED.get(key)
    except TypeError:  # a nested value: validation refuses it below
        key, found = None, None
    if found is None:
        options = feed_options.from_record(value)
        found = _shared(options, options)
        if key is not None:
            _shared(key, found)
    return cast(Options, found)


def decode_status(value: bytes) -> Status:
    """A ``status:`` record value. Raises only ``RecordError``."""
    return _decoded(value, _status)


def _status(content: dict[str, Any]) -> Status:
    state = content.get("state")
    if state not in (DISABLED, ACTIVE):
        raise RecordError(f"unknown status state {state!r}")
    return Status(status_code=record_int(content.get("statusCode"), "statusCode"),
                  message=_text(content.get("message"), "message"),
                  config=record_int(content.get("config"), "config"),
                  updated_ms=record_int(content.get("updated_ms"), "updated_ms"),
                  state=DISABLED if state == DISABLED else ACTIVE)
