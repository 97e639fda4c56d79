"""The envelope, version 1: the self-describing trigger message (DESIGN.md section 3).

This module owns the wire format of the trigger-messages topic and nothing else: the ``Envelope``
value type, its two CloudEvents 1.0 encodings on Kafka, and OpenWhisk trigger names.

* **Structured mode** (``content-type: application/cloudevents+json``): the record value is one
  JSON object holding every attribute and ``data``.
* **Binary mode**: attributes travel in ``ce_<name>`` headers (UTF-8 text), the record value is
  the JSON ``data`` object, and the ``content-type`` header is the data's media type.
* ``parse_record`` picks the mode the way the CloudEvents Kafka binding says: a ``content-type``
  starting with ``application/cloudevents`` means structured, else a ``ce_specversion`` header
  means binary, else the value is read as a structured event (producers that write plain JSON).

Every parser turns any input whatsoever into either a valid ``Envelope`` or a ``BadMessage``
whose ``reason`` says why; nothing else escapes. An ``Envelope`` validates itself when built, so
one that exists is always encodable. The size limit is not part of the type: parsers take
``max_payload_bytes`` and measure ``Envelope.payload``, the exact bytes the firer posts.

Unknown extension attributes are accepted and dropped. The credential is opaque here (see
``credentials``); it is left out of ``repr`` because it is a bearer capability.
"""

import json
import re
import uuid
from _json import encode_basestring, make_encoder  # what json.encoder uses: CPython's C encoder
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cached_property, lru_cache
from typing import Any, NamedTuple

from .errors import BadMessage, Reason

_orjson_loads: Callable[[bytes], Any] | None
_orjson_dumps: Callable[[Any], bytes] | None
try:  # the consumer image has orjson (the firer's parse, below); the actions' runtime has not
    from orjson import dumps as _orjson_dumps
    from orjson import loads as _orjson_loads
except ImportError:  # pragma: no cover - the actions' runtime
    _orjson_loads = _orjson_dumps = None

SPECVERSION = "1.0"
TRIGGER_FIRE_TYPE = "org.apache.openwhisk.trigger.fire"
DEFAULT_MAX_PAYLOAD_BYTES = 900_000
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
DATA_CONTENT_TYPE = "application/json"
CE_HEADER_PREFIX = "ce_"
CONTENT_TYPE_HEADER = "content-type"

# A Kafka record's headers as kafka-python gives and takes them.
Headers = list[tuple[str, bytes]]

# OpenWhisk's EntityName regex (docs/openwhisk-api.md 1.4). Java's \w is ASCII, hence re.ASCII.
ENTITY_NAME_RE = re.compile(r"[\w]|[\w][\w@ .&-]{0,254}[\w@.&-]", re.ASCII)
# The namespace placeholder meaning "the namespace of the caller's key".
DEFAULT_NAMESPACE_PLACEHOLDER = "_"

# The RFC 3339 shape with its fields captured (tests/unit/test_envelope.py checks is_rfc3339 against
# the check built on it before).
_RFC3339_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-]([0-9]{2}):([0-9]{2}))"
)
# The same shape with the clock's ranges in the pattern (hour 00-23, minute 00-59, second 00-60,
# offset hour 00-23): what is_rfc3339 checked in Python after _RFC3339_RE, in one match.
_RFC3339_RANGED_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_DETAIL_LIMIT = 80
# Bounded caches of what repeats from message to message (trigger names, dates); only valid
# results are cached, so a refusal is always computed afresh with its exact reason.
_CACHE_SIZE = 4096


# --- trigger names ---------------------------------------------------------------------------


class TriggerName(NamedTuple):
    """A resolved trigger name; ``fqn`` is its ``/namespace/name`` form."""

    namespace: str
    name: str

    @property
    def fqn(self) -> str:
        return f"/{self.namespace}/{self.name}"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _DETAIL_LIMIT else text[: _DETAIL_LIMIT - 3] + "..."


def _bad_name(detail: str) -> BadMessage:
    return BadMessage(Reason.BAD_TRIGGER_NAME, detail)


def check_namespace(namespace: object) -> str:
    """Return ``namespace`` if it is a valid, resolved OpenWhisk namespace name (not ``_``)."""
    if not isinstance(namespace, str) or not ENTITY_NAME_RE.fullmatch(namespace):
        raise _bad_name(f"namespace {_shown(namespace)} is not a valid OpenWhisk name")
    if namespace == DEFAULT_NAMESPACE_PLACEHOLDER:
        raise _bad_name("namespace '_' is not resolved")
    return namespace


def _checked_name(name: object) -> str:
    if not isinstance(name, str) or not ENTITY_NAME_RE.fullmatch(name):
        raise _bad_name(f"trigger name {_shown(name)} is not a valid OpenWhisk name")
    return name


def parse_trigger_name(name: str, default_namespace: str | None = None) -> TriggerName:
    """Resolve a user-given trigger name: ``T``, ``/ns/T``, ``ns/T``, ``/_/T`` or ``_/T``.

    A missing or ``_`` namespace becomes ``default_namespace``. Triggers live directly in a
    namespace (never in a package), so there are at most two segments. Raises ``BadMessage``
    (``bad-trigger-name``).
    """
    if not isinstance(name, str):
        raise _bad_name(f"trigger name {_shown(name)} is not a string")
    parts = name[1:].split("/") if name.startswith("/") else name.split("/")
    if len(parts) == 1 and not name.startswith("/"):
        namespace, short = DEFAULT_NAMESPACE_PLACEHOLDER, parts[0]
    elif len(parts) == 2:
        namespace, short = parts
    else:
        raise _bad_name(f"trigger name {_shown(name)} is not T, /namespace/T or namespace/T")
    if namespace == DEFAULT_NAMESPACE_PLACEHOLDER:
        if default_namespace is None:
            raise _bad_name(f"trigger name {_shown(name)} has no namespace and there is no default")
        namespace = default_namespace
    return TriggerName(check_namespace(namespace), _checked_name(short))


def parse_trigger_fqn(fqn: str) -> TriggerName:
    """Split a fully qualified ``/namespace/name`` (the envelope's and the scope's form).

    A trigger's messages repeat its name, and every credential check parses it again, so valid
    names are remembered (an invalid one raises each time, never cached)."""
    if type(fqn) is str:
        return _cached_trigger_fqn(fqn)
    return _parse_trigger_fqn(fqn)


def _parse_trigger_fqn(fqn: object) -> TriggerName:
    if not isinstance(fqn, str) or not fqn.startswith("/") or fqn.count("/") != 2:
        raise _bad_name(f"trigger {_shown(fqn)} is not a fully qualified /namespace/name")
    namespace, name = fqn[1:].split("/")
    return TriggerName(check_namespace(namespace), _checked_name(name))


_cached_trigger_fqn = lru_cache(maxsize=_CACHE_SIZE)(_parse_trigger_fqn)


def trigger_fqn(namespace: str, name: str) -> str:
    """The ``/namespace/name`` form of a trigger, after validating both parts."""
    return TriggerName(check_namespace(namespace), _checked_name(name)).fqn


# --- small validators ------------------------------------------------------------------------


def is_rfc3339(text: str) -> bool:
    """Whether ``text`` is an RFC 3339 ``date-time`` (leap second allowed, year 0001 or later).

    The firer checks every message's time: the pattern holds the clock's ranges, and the date
    (fixed width at the start) is checked once per day seen."""
    if not isinstance(text, str) or _RFC3339_RANGED_RE.fullmatch(text) is None:
        return False
    return _is_date(text[:10])


@lru_cache(maxsize=_CACHE_SIZE)
def _is_date(digits: str) -> bool:
    """Whether ``YYYY-MM-DD`` (checked digits) names a real day (year 0001 or later); messages of
    a day share it."""
    try:
        date(int(digits[0:4]), int(digits[5:7]), int(digits[8:10]))
    except ValueError:
        return False
    return True


def format_time(moment: datetime) -> str:
    """An aware datetime as RFC 3339 in UTC with milliseconds, e.g. ``2026-01-02T03:04:05.678Z``."""
    if moment.tzinfo is None:
        raise ValueError("format_time needs an aware datetime")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _is_json_media_type(content_type: str) -> bool:
    media_type = _media_type(content_type)
    return media_type in ("application/json", "text/json") or media_type.endswith("+json")


def _require_text(attribute: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise BadMessage(Reason.WRONG_TYPE, f"attribute '{attribute}' must be a non-empty string")
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadMessage(Reason.WRONG_TYPE, f"attribute '{attribute}' is not valid Unicode") from None
    return value


# Built once: json.dumps and json.loads with options build a new encoder or decoder per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode_data(data: Mapping[str, Any]) -> bytes:
    """The fire request body: ``data`` as compact UTF-8 JSON. Raises ``BadMessage`` (``bad-data``)."""
    try:
        return _ENCODER.encode(data).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise BadMessage(Reason.BAD_DATA, f"data cannot be encoded as JSON: {exc}") from None


# --- the envelope ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Envelope:
    """One trigger fire request. ``trigger`` is ``/namespace/name``; ``credential`` is sealed.

    Built only valid (``BadMessage`` otherwise). ``data`` must be treated as read-only: its
    encoding is computed once, at construction.
    """

    id: str
    source: str
    type: str = TRIGGER_FIRE_TYPE
    trigger: str
    credential: str = field(repr=False)
    apihost: str | None = None
    time: str | None = None
    data: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        _require_text("id", self.id)
        _require_text("source", self.source)
        if _require_text("type", self.type) != TRIGGER_FIRE_TYPE:
            raise BadMessage(Reason.BAD_TYPE, f"type {_shown(self.type)} is not {TRIGGER_FIRE_TYPE}")
        parse_trigger_fqn(_require_text("owtrigger", self.trigger))
        _require_text("owcredential", self.credential)
        if self.apihost is not None:
            _require_text("owapihost", self.apihost)
        if self.time is not None and not is_rfc3339(_require_text("time", self.time)):
            raise BadMessage(Reason.BAD_TIME, f"time {_shown(self.time)} is not an RFC 3339 timestamp")
        if not isinstance(self.data, dict):
            raise BadMessage(Reason.BAD_DATA, f"data must be a JSON object, not {type(self.data).__name__}")
        if not all(isinstance(key, str) for key in self.data):
            raise BadMessage(Reason.BAD_DATA, "data keys must be strings")
        object.__setattr__(self, "payload", encode_data(self.data))  # encodable, and cached from here on

    @classmethod
    def _trusted(cls, attributes: Mapping[str, Any], data: dict[str, Any], payload: bytes) -> "Envelope":
        """An envelope whose every field the caller has already checked (``_fast_envelope``):
        the same value ``Envelope(...)`` would build, without checking it twice."""
        built = object.__new__(cls)
        built.__dict__.update(
            id=attributes["id"], source=attributes["source"], type=attributes["type"],
            trigger=attributes["owtrigger"], credential=attributes["owcredential"],
            apihost=attributes.get("owapihost"), time=attributes.get("time"), data=data, payload=payload)
        return built

    @cached_property
    def payload(self) -> bytes:
        """``data`` as the firer posts it (compact UTF-8 JSON); the size limit applies to it."""
        return encode_data(self.data)

    @property
    def trigger_name(self) -> TriggerName:
        return parse_trigger_fqn(self.trigger)


def check_payload_size(envelope: Envelope, max_payload_bytes: int) -> Envelope:
    """Return ``envelope`` if its payload fits, else raise ``BadMessage`` (``payload-too-large``)."""
    size = len(envelope.payload)
    if size > max_payload_bytes:
        raise BadMessage(Reason.PAYLOAD_TOO_LARGE, f"data is {size} bytes, over the limit of {max_payload_bytes}")
    return envelope


def new_envelope(
    *,
    source: str,
    trigger: str,
    credential: str,
    data: dict[str, Any] | None = None,
    apihost: str | None = None,
    now: datetime | None = None,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
) -> Envelope:
    """A new envelope with a fresh uuid4 id and the current (or given, aware) time."""
    envelope = Envelope(
        id=str(uuid.uuid4()),
        source=source,
        trigger=trigger,
        credential=credential,
        apihost=apihost,
        time=format_time(now if now is not None else datetime.now(UTC)),
        data={} if data is None else data,
    )
    return check_payload_size(envelope, max_payload_bytes)


def record_key(envelope: Envelope) -> bytes:
    """The Kafka record key: the trigger FQN, so one trigger's messages share a partition."""
    return envelope.trigger.encode("utf-8")


# --- encoding --------------------------------------------------------------------------------


def _attributes(envelope: Envelope) -> dict[str, str]:
    attributes = {
        "specversion": SPECVERSION,
        "id": envelope.id,
        "source": envelope.source,
        "type": envelope.type,
        "owtrigger": envelope.trigger,
        "owcredential": envelope.credential,
    }
    if envelope.apihost is not None:
        attributes["owapihost"] = envelope.apihost
    if envelope.time is not None:
        attributes["time"] = envelope.time
    return attributes


def to_structured(envelope: Envelope) -> bytes:
    """The structured-mode record value; send it with ``structured_headers()``."""
    attributes = _attributes(envelope)
    attributes["datacontenttype"] = DATA_CONTENT_TYPE
    head = json.dumps(attributes, ensure_ascii=False, separators=(",", ":"))
    return head[:-1].encode("utf-8") + b',"data":' + envelope.payload + b"}"


def structured_headers() -> Headers:
    """The record headers that mark a structured-mode value."""
    return [(CONTENT_TYPE_HEADER, STRUCTURED_CONTENT_TYPE.encode("ascii"))]


def to_binary(envelope: Envelope) -> tuple[Headers, bytes]:
    """The binary-mode record: ``ce_*`` headers plus ``content-type``, and the data as value."""
    headers = [(CE_HEADER_PREFIX + name, value.encode("utf-8")) for name, value in _attributes(envelope).items()]
    headers.append((CONTENT_TYPE_HEADER, DATA_CONTENT_TYPE.encode("ascii")))
    return headers, envelope.payload


# --- parsing ---------------------------------------------------------------------------------

_REQUIRED = ("id", "source", "type", "owtrigger", "owcredential")
_STRUCTURED_HEADERS = structured_headers()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("an object has a duplicate key")
    return result


def _as_bytes(value: object) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise BadMessage(Reason.NOT_JSON, f"record value is {type(value).__name__}, not bytes")


_DECODER = json.JSONDecoder(object_pairs_hook=_object_without_duplicates, parse_constant=_reject_constant)


def _decode_json(text: str) -> Any:
    """``json.loads(text, ...)`` with the module's decoder, built once."""
    if text.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    return _DECODER.decode(text)


def _load_json(raw: bytes, what: str) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadMessage(Reason.NOT_JSON, f"{what} is not UTF-8") from None
    try:
        return _decode_json(text)
    except (ValueError, RecursionError) as exc:
        raise BadMessage(Reason.NOT_JSON, f"{what} is not JSON: {exc}") from None


def _check_specversion(value: object) -> None:
    if value is None:
        raise BadMessage(Reason.MISSING_FIELD, "attribute 'specversion' is missing")
    if not isinstance(value, str):
        raise BadMessage(Reason.WRONG_TYPE, "attribute 'specversion' must be a non-empty string")
    if value != SPECVERSION:
        raise BadMessage(Reason.BAD_SPECVERSION, f"specversion {_shown(value)} is not {SPECVERSION}")


def _check_required(attributes: Mapping[str, object]) -> None:
    _check_specversion(attributes.get("specversion"))
    for name in _REQUIRED:
        if attributes.get(name) is None:
            raise BadMessage(Reason.MISSING_FIELD, f"attribute '{name}' is missing")


def _check_data_content_type(content_type: object) -> None:
    if content_type is None:
        return
    if not isinstance(content_type, str) or not _is_json_media_type(content_type):
        raise BadMessage(Reason.BAD_CONTENT_TYPE, f"data content type {_shown(content_type)} is not JSON")


def _build(attributes: Mapping[str, Any], data: object, max_payload_bytes: int) -> Envelope:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadMessage(Reason.BAD_DATA, f"data must be a JSON object, not {type(data).__name__}")
    envelope = Envelope(
        id=attributes["id"],
        source=attributes["source"],
        type=attributes["type"],
        trigger=attributes["owtrigger"],
        credential=attributes["owcredential"],
        apihost=attributes.get("owapihost"),
        time=attributes.get("time"),
        data=data,
    )
    return check_payload_size(envelope, max_payload_bytes)


# The encoder of data read from JSON (the fast path's): the same C encoder ``_ENCODER.encode`` builds
# on every call, built once; without the cycle check, as a value read from JSON has no cycle.
_ACYCLIC_ENCODER = make_encoder(
    None, _ENCODER.default, encode_basestring, None, ":", ",", False, False, False)


def _encode_read_data(data: dict[str, Any]) -> bytes:
    """``encode_data`` of a value read from JSON (acyclic): the same bytes and the same refusals."""
    try:
        return "".join(_ACYCLIC_ENCODER(data, 0)).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise BadMessage(Reason.BAD_DATA, f"data cannot be encoded as JSON: {exc}") from None


# --- the fast path: the firer parses every record, and nearly all of them are valid. It accepts
# only what it has checked to be valid and builds exactly what the checked path would build;
# at the first doubt it answers None and the checked path below parses the record again, so a
# refusal keeps its exact reason (tests/unit/test_envelope.py compares the two paths).

_FAST_TEXT_ATTRIBUTES = ("id", "source", "owtrigger", "owcredential")


def _is_plain_text(value: object) -> bool:
    return type(value) is str and value != "" and value.isascii()


def _fast_envelope(attributes: Mapping[str, Any], data: object, max_payload_bytes: int) -> Envelope | None:
    """The envelope of checked-valid ``attributes`` and ``data``, or None when in any doubt."""
    if attributes.get("specversion") != SPECVERSION or attributes.get("type") != TRIGGER_FIRE_TYPE:
        return None
    for name in _FAST_TEXT_ATTRIBUTES:
        if not _is_plain_text(attributes.get(name)):
            return None
    apihost, moment = attributes.get("owapihost"), attributes.get("time")
    if (apihost is not None and not _is_plain_text(apihost)) or (moment is not None and not (
            _is_plain_text(moment) and is_rfc3339(moment))):
        return None
    if data is None:
        data = {}
    elif type(data) is not dict:
        return None
    try:
        parse_trigger_fqn(attributes["owtrigger"])
        payload = _encode_read_data(data)
    except BadMessage:
        return None
    if len(payload) > max_payload_bytes:
        return None
    return Envelope._trusted(attributes, data, payload)


# The quickest read, where orjson is installed: the stdlib's decoder with the duplicate-key hook is
# a Python call per object. orjson reads without that check, and the text is then required to be
# exactly orjson's encoding of what it read. A JSON text has one parse and the encoding of a dict
# has unique keys, so such a text has no duplicate key, and the checked decoder reads the very same
# value from it (orjson writes shortest round-trip floats and integers exactly); any other text
# (spaces, another float spelling, a duplicate) is read again the hooked way. Nesting is bounded
# first: the decoders' depth limits differ (orjson 1,024 levels, the stdlib's about the
# interpreter's recursion limit), and fewer brackets than _PLAIN_MAX_BRACKETS keep a text far
# below both, so neither refuses it for its depth.
_PLAIN_MAX_BRACKETS = 256


def _plain_read(raw: bytes) -> Any:
    """The JSON value of ``raw`` if it is in orjson's canonical form (see above), else None."""
    if _orjson_loads is None or _orjson_dumps is None:
        return None
    if raw.count(b"{") + raw.count(b"[") >= _PLAIN_MAX_BRACKETS:
        return None
    try:
        read = _orjson_loads(raw)
        return read if _orjson_dumps(read) == raw else None
    except (TypeError, ValueError, RecursionError):
        return None


def _fast_event(event: object, max_payload_bytes: int) -> Envelope | None:
    if type(event) is not dict or event.get("data_base64") is not None:
        return None
    if event.get("datacontenttype", DATA_CONTENT_TYPE) != DATA_CONTENT_TYPE:
        return None
    return _fast_envelope(event, event.get("data"), max_payload_bytes)


def _fast_structured(value: object, max_payload_bytes: int) -> Envelope | None:
    if type(value) is not bytes or not value:
        return None
    event = _plain_read(value)
    if event is None:
        try:
            event = _decode_json(value.decode("utf-8"))
        except (ValueError, RecursionError):
            return None
    return _fast_event(event, max_payload_bytes)


def _fast_binary(attributes: dict[str, str], content_type: str | None, value: object,
                 max_payload_bytes: int) -> Envelope | None:
    if content_type not in (None, DATA_CONTENT_TYPE) or not (value is None or type(value) is bytes):
        return None
    data = _plain_read(value) if value else None
    if data is None:
        try:
            data = _decode_json(value.decode("utf-8")) if value else None
        except (ValueError, RecursionError):
            return None
    return _fast_envelope(attributes, data, max_payload_bytes)


# --- the checked path ---


def parse_structured(value: bytes | None, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> Envelope:
    """Parse a structured-mode record value. Raises only ``BadMessage``."""
    fast = _fast_structured(value, max_payload_bytes)
    return fast if fast is not None else _parse_structured(value, max_payload_bytes)


def _parse_structured(value: object, max_payload_bytes: int) -> Envelope:
    raw = _as_bytes(value)
    if not raw:
        raise BadMessage(Reason.NOT_JSON, "record value is empty")
    event = _load_json(raw, "record value")
    if not isinstance(event, dict):
        raise BadMessage(Reason.NOT_AN_OBJECT, f"the event is a JSON {type(event).__name__}, not an object")
    _check_required(event)
    if event.get("data_base64") is not None:
        raise BadMessage(Reason.BAD_DATA, "data_base64 is not supported: data must be a JSON object")
    _check_data_content_type(event.get("datacontenttype"))
    return _build(event, event.get("data"), max_payload_bytes)


def _read_headers(headers: object) -> tuple[dict[str, str], str | None]:
    """The ``ce_*`` attributes (prefix removed) and the ``content-type`` of a header list."""
    if headers is None:
        return {}, None
    if not isinstance(headers, list | tuple):
        raise BadMessage(Reason.BAD_HEADER, "headers are not a list of (name, value) pairs")
    attributes: dict[str, str] = {}
    content_type: str | None = None
    for entry in headers:
        if not (isinstance(entry, tuple | list) and len(entry) == 2 and isinstance(entry[0], str)):
            raise BadMessage(Reason.BAD_HEADER, "a header is not a (name, value) pair")
        name, raw = entry
        is_content_type = name.lower() == CONTENT_TYPE_HEADER
        if not (is_content_type or name.startswith(CE_HEADER_PREFIX)):
            continue
        if not isinstance(raw, bytes | bytearray | memoryview):
            raise BadMessage(Reason.BAD_HEADER, f"header {_shown(name)} has no bytes value")
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise BadMessage(Reason.BAD_HEADER, f"header {_shown(name)} is not UTF-8") from None
        if is_content_type:
            if content_type is not None:
                raise BadMessage(Reason.BAD_HEADER, "header 'content-type' appears twice")
            content_type = text
        else:
            attribute = name[len(CE_HEADER_PREFIX) :]
            if attribute in attributes:
                raise BadMessage(Reason.BAD_HEADER, f"header {_shown(name)} appears twice")
            attributes[attribute] = text
    return attributes, content_type


def _parse_binary(
    attributes: dict[str, str], content_type: str | None, value: object, max_payload_bytes: int
) -> Envelope:
    fast = _fast_binary(attributes, content_type, value, max_payload_bytes)
    if fast is not None:
        return fast
    _check_required(attributes)
    _check_data_content_type(content_type)
    raw = _as_bytes(value)
    data = _load_json(raw, "data") if raw else None
    return _build(attributes, data, max_payload_bytes)


def parse_record(
    headers: Headers | None, value: bytes | None, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> Envelope:
    """Parse a Kafka record in whichever CloudEvents mode it uses. Raises only ``BadMessage``."""
    if headers == _STRUCTURED_HEADERS:  # what produce writes: no need to read the headers one by one
        return parse_structured(value, max_payload_bytes=max_payload_bytes)
    attributes, content_type = _read_headers(headers)
    if content_type is not None and _media_type(content_type).startswith("application/cloudevents"):
        if _media_type(content_type) != STRUCTURED_CONTENT_TYPE:
            raise BadMessage(Reason.BAD_CONTENT_TYPE, f"event format {_shown(content_type)} is not supported")
        return parse_structured(value, max_payload_bytes=max_payload_bytes)
    if "specversion" in attributes:
        return _parse_binary(attributes, content_type, value, max_payload_bytes)
    return parse_structured(value, max_payload_bytes=max_payload_bytes)
