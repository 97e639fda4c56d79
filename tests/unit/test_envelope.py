"""The envelope v1: parsing in both CloudEvents modes, validation reasons, round trips, names."""

import json
import pickle
import string
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from messaging_lib import envelope as envelope_module
from messaging_lib.envelope import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    ENTITY_NAME_RE,
    TRIGGER_FIRE_TYPE,
    Envelope,
    TriggerName,
    check_payload_size,
    format_time,
    is_rfc3339,
    new_envelope,
    parse_record,
    parse_structured,
    parse_trigger_fqn,
    parse_trigger_name,
    record_key,
    structured_headers,
    to_binary,
    to_structured,
    trigger_fqn,
)
from messaging_lib.errors import BadMessage, Reason
from messaging_lib.topics import (
    DEAD_LETTER_HEADERS,
    DL_ATTEMPTS,
    DL_DETAIL,
    DL_FIRST_ATTEMPT_MS,
    DL_LAST_ATTEMPT_MS,
    DL_REASON,
    DL_SOURCE_OFFSET,
    DL_SOURCE_PARTITION,
    DL_SOURCE_TOPIC,
    DL_STATUS,
    DL_TRIGGER,
    dead_letter_headers,
)

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- strategies --------------------------------------------------------------------------------

unicode_text = st.characters(exclude_categories=("Cs",))  # any character that UTF-8 can encode
texts = st.text(unicode_text, min_size=1, max_size=30)
names = st.from_regex(ENTITY_NAME_RE, fullmatch=True)
namespaces = names.filter(lambda name: name != "_")
fqns = st.builds(trigger_fqn, namespaces, names)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(unicode_text, max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(unicode_text, max_size=8), inner, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(unicode_text, max_size=8), json_values, max_size=5)


@st.composite
def rfc3339_times(draw: st.DrawFn) -> str:
    moment = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)))
    separator = draw(st.sampled_from("Tt"))
    fraction = draw(st.sampled_from(["", ".5", ".123", ".123456789"]))
    offset = draw(
        st.sampled_from(["Z", "z"])
        | st.builds("{}{:02d}:{:02d}".format, st.sampled_from("+-"), st.integers(0, 23), st.integers(0, 59))
    )
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}{separator}"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}{fraction}{offset}"
    )


envelopes = st.builds(
    Envelope,
    id=texts,
    source=texts,
    trigger=fqns,
    credential=texts,
    apihost=st.none() | texts,
    time=st.none() | rfc3339_times(),
    data=json_objects,
)

REQUIRED = ["specversion", "id", "source", "type", "owtrigger", "owcredential"]
STRING_ATTRIBUTES = ["id", "source", "type", "owtrigger", "owcredential", "owapihost", "time"]
NOT_STRINGS = (
    st.integers()
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.lists(st.integers(), max_size=2)
)
NOT_OBJECTS = st.integers() | st.booleans() | st.text(max_size=5) | st.lists(st.integers(), max_size=3)


def example_envelope(**changes: Any) -> Envelope:
    fields: dict[str, Any] = {
        "id": "id-1",
        "source": "/guest/messaging/produce",
        "trigger": "/guest/T",
        "credential": "sealed-token",
        "time": "2026-01-02T03:04:05.678Z",
        "data": {"x": 1},
    }
    return Envelope(**(fields | changes))


def event_of(envelope: Envelope) -> dict[str, Any]:
    return json.loads(to_structured(envelope))


def encode(event: object) -> bytes:
    return json.dumps(event).encode()


def reason(call: Callable[[], object]) -> Reason:
    with pytest.raises(BadMessage) as info:
        call()
    return info.value.reason


def parses_or_rejects(call: Callable[[], Envelope]) -> Envelope | None:
    """Run a parser; ``BadMessage`` is a fine outcome, any other exception fails the test."""
    try:
        envelope = call()
    except BadMessage as exc:
        assert isinstance(exc.reason, Reason)
        return None
    assert isinstance(envelope, Envelope)
    return envelope


# --- examples ----------------------------------------------------------------------------------


def test_a_minimal_structured_event_parses_with_defaults() -> None:
    value = encode(
        {
            "specversion": "1.0",
            "id": "1",
            "source": "s",
            "type": TRIGGER_FIRE_TYPE,
            "owtrigger": "/guest/T",
            "owcredential": "c",
        }
    )
    envelope = parse_structured(value)
    assert envelope == Envelope(id="1", source="s", trigger="/guest/T", credential="c")
    assert envelope.data == {} and envelope.apihost is None and envelope.time is None
    assert envelope.payload == b"{}"
    assert envelope.trigger_name == TriggerName("guest", "T")


def test_unknown_extension_attributes_are_ignored() -> None:
    event = event_of(example_envelope()) | {"subject": "x", "myextension": 5, "dataschema": "u"}
    assert parse_structured(encode(event)) == example_envelope()


def test_null_optional_attributes_and_null_data_mean_absent() -> None:
    event = event_of(example_envelope()) | {"owapihost": None, "time": None, "data": None}
    assert parse_structured(encode(event)) == example_envelope(time=None, data={})


def test_the_credential_is_not_in_the_repr() -> None:
    assert "sealed-token" not in repr(example_envelope())


def test_envelopes_are_hashable_values() -> None:
    assert hash(example_envelope()) == hash(example_envelope())
    assert {example_envelope(), example_envelope()} == {example_envelope()}


def test_new_envelope_has_a_fresh_id_and_the_given_time() -> None:
    now = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2)))
    first = new_envelope(source="s", trigger="/guest/T", credential="c", data={"a": 1}, now=now)
    second = new_envelope(source="s", trigger="/guest/T", credential="c")
    assert first.id != second.id
    assert first.time == "2026-05-06T05:08:09.123Z"
    assert is_rfc3339(second.time or "")
    assert second.data == {}
    assert record_key(first) == b"/guest/T"


def test_new_envelope_checks_the_payload_size() -> None:
    assert (
        reason(
            lambda: new_envelope(source="s", trigger="/g/T", credential="c", data={"a": "x" * 20}, max_payload_bytes=10)
        )
        == Reason.PAYLOAD_TOO_LARGE
    )


def test_format_time_needs_an_aware_datetime() -> None:
    assert format_time(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000Z"
    with pytest.raises(ValueError):
        format_time(datetime(2026, 1, 1))


def test_structured_encoding_is_compact_utf8_with_the_data_last() -> None:
    value = to_structured(example_envelope(data={"é": "ü"}))
    assert value.endswith(b',"data":{"\xc3\xa9":"\xc3\xbc"}}')
    assert json.loads(value)["datacontenttype"] == "application/json"


def test_binary_encoding_headers() -> None:
    headers, value = to_binary(example_envelope(apihost="https://ow.example"))
    assert dict(headers) == {
        "ce_specversion": b"1.0",
        "ce_id": b"id-1",
        "ce_source": b"/guest/messaging/produce",
        "ce_type": TRIGGER_FIRE_TYPE.encode(),
        "ce_owtrigger": b"/guest/T",
        "ce_owcredential": b"sealed-token",
        "ce_owapihost": b"https://ow.example",
        "ce_time": b"2026-01-02T03:04:05.678Z",
        "content-type": b"application/json",
    }
    assert value == b'{"x":1}'


# --- JSON edge cases ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"", Reason.NOT_JSON),
        (b"   ", Reason.NOT_JSON),
        (b"{", Reason.NOT_JSON),
        (b"\xff\xfe{}", Reason.NOT_JSON),
        (b"\xef\xbb\xbf{}", Reason.NOT_JSON),  # a UTF-8 byte order mark
        ('{"a": 1}'.encode("utf-16"), Reason.NOT_JSON),
        (b'{"specversion": NaN}', Reason.NOT_JSON),
        (b'{"specversion": "1.0", "specversion": "1.0"}', Reason.NOT_JSON),  # duplicate keys
        (b"[" * 100_000 + b"]" * 100_000, Reason.NOT_JSON),  # nested too deep
        (b"1" * 5000, Reason.NOT_JSON),  # an integer too long to convert
        (b"[]", Reason.NOT_AN_OBJECT),
        (b'"text"', Reason.NOT_AN_OBJECT),
        (b"null", Reason.NOT_AN_OBJECT),
        (b"{}", Reason.MISSING_FIELD),
    ],
)
def test_values_that_are_not_an_event_object(value: bytes, expected: Reason) -> None:
    assert reason(lambda: parse_structured(value)) == expected


def test_a_record_value_that_is_not_bytes_is_refused() -> None:
    assert reason(lambda: parse_structured("{}")) == Reason.NOT_JSON  # type: ignore[arg-type]
    assert reason(lambda: parse_structured(None)) == Reason.NOT_JSON
    assert parse_structured(bytearray(to_structured(example_envelope()))) == example_envelope()


def test_duplicate_keys_inside_data_are_refused() -> None:
    value = to_structured(example_envelope())[:-2] + b',"x":2}}'
    assert reason(lambda: parse_structured(value)) == Reason.NOT_JSON


def test_lone_surrogates_are_refused() -> None:
    event = event_of(example_envelope())
    assert reason(lambda: parse_structured(encode(event | {"id": "\ud800"}))) == Reason.WRONG_TYPE
    assert reason(lambda: parse_structured(encode(event | {"data": {"k": "\udfff"}}))) == Reason.BAD_DATA


def test_data_base64_and_non_json_content_types_are_refused() -> None:
    event = event_of(example_envelope())
    assert reason(lambda: parse_structured(encode(event | {"data_base64": "AAAA"}))) == Reason.BAD_DATA
    for content_type in ("text/plain", "application/octet-stream", 5):
        changed = event | {"datacontenttype": content_type}
        assert reason(lambda changed=changed: parse_structured(encode(changed))) == Reason.BAD_CONTENT_TYPE
    for content_type in ("application/json; charset=utf-8", "text/json", "application/vnd.x+json"):
        assert parse_structured(encode(event | {"datacontenttype": content_type})) == example_envelope()


# --- time --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-02T03:04:05Z",
        "2026-01-02t03:04:05.5z",
        "2026-01-02T03:04:05.123456789+05:30",
        "2026-12-31T23:59:60Z",  # leap second
        "2024-02-29T00:00:00-23:59",
    ],
)
def test_rfc3339_times_are_accepted(text: str) -> None:
    assert is_rfc3339(text)
    assert example_envelope(time=text).time == text


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-02",
        "2026-01-02T03:04:05",  # no offset
        "2026-01-02 03:04:05Z",
        "2026-01-02T03:04Z",
        "2026-13-02T03:04:05Z",
        "2026-02-29T03:04:05Z",
        "2026-01-02T24:00:00Z",
        "2026-01-02T03:60:00Z",
        "2026-01-02T03:04:61Z",
        "2026-01-02T03:04:05+24:00",
        "2026-01-02T03:04:05+05:60",
        "2026-01-02T03:04:05.Z",
        "0000-01-01T00:00:00Z",
        "2026-01-02T03:04:05Z\n",
        "\uff12\uff10\uff12\uff16-01-02T03:04:05Z",  # fullwidth (non-ASCII) digits
        "yesterday",
    ],
)
def test_bad_times_are_refused(text: str) -> None:
    assert not is_rfc3339(text)
    event = event_of(example_envelope()) | {"time": text}
    assert reason(lambda: parse_structured(encode(event))) == Reason.BAD_TIME


# --- trigger names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "default", "expected"),
    [
        ("T", "guest", ("guest", "T")),
        ("/_/T", "guest", ("guest", "T")),
        ("_/T", "guest", ("guest", "T")),
        ("/other/T", "guest", ("other", "T")),
        ("other/T", None, ("other", "T")),
        ("/guest/my trigger.v2@x&y-", None, ("guest", "my trigger.v2@x&y-")),
        ("/user@example.com/T", None, ("user@example.com", "T")),
    ],
)
def test_trigger_names_resolve(name: str, default: str | None, expected: tuple[str, str]) -> None:
    resolved = parse_trigger_name(name, default)
    assert resolved == expected
    assert resolved.fqn == f"/{expected[0]}/{expected[1]}"


@pytest.mark.parametrize(
    ("name", "default"),
    [
        ("T", None),
        ("/_/T", None),
        ("T", "_"),
        ("", "guest"),
        ("/", "guest"),
        ("/T", "guest"),
        ("/guest/", "guest"),
        ("//T", "guest"),
        ("/guest/pkg/T", "guest"),
        ("a/b/c", "guest"),
        ("/guest/T ", "guest"),  # a trailing space
        ("/guest/-T", "guest"),
        ("/guest/T*", "guest"),
        ("/guest/tr\u00efgger", "guest"),
        ("/guest/" + "t" * 257, "guest"),
        ("T", "bad namespace!"),
    ],
)
def test_bad_trigger_names_are_refused(name: str, default: str | None) -> None:
    assert reason(lambda: parse_trigger_name(name, default)) == Reason.BAD_TRIGGER_NAME


def test_names_of_256_characters_are_the_longest() -> None:
    assert parse_trigger_fqn("/guest/" + "t" * 256).name == "t" * 256


@pytest.mark.parametrize("fqn", ["guest/T", "/_/T", "T", "/guest/T/x", 5, None])
def test_the_envelope_needs_a_fully_qualified_trigger(fqn: Any) -> None:
    assert reason(lambda: parse_trigger_fqn(fqn)) == Reason.BAD_TRIGGER_NAME


def test_trigger_fqn_validates_both_parts() -> None:
    assert trigger_fqn("guest", "T") == "/guest/T"
    assert reason(lambda: trigger_fqn("_", "T")) == Reason.BAD_TRIGGER_NAME
    assert reason(lambda: trigger_fqn("guest", "a/b")) == Reason.BAD_TRIGGER_NAME


WORD = string.ascii_letters + string.digits + "_"


def oracle(name: str) -> bool:
    """OpenWhisk's entity name rule, written out by hand (an oracle independent of the regex)."""
    return (
        1 <= len(name) <= 256
        and name[0] in WORD
        and all(char in WORD + "@ .&-" for char in name)
        and (len(name) == 1 or name[-1] in WORD + "@.&-")
    )


@FUZZ
@given(st.text(st.sampled_from(WORD + "@ .&-!*#é\n/") | unicode_text, max_size=12))
@example("t" * 256)
@example("t" * 257)
def test_trigger_names_follow_the_openwhisk_rule(name: str) -> None:
    valid = "/" not in name and oracle(name)
    try:
        parsed = parse_trigger_fqn(f"/guest/{name}")
    except BadMessage as exc:
        assert exc.reason == Reason.BAD_TRIGGER_NAME
        assert not valid
    else:
        assert valid and parsed == ("guest", name)


# --- properties: round trips -------------------------------------------------------------------


@FAST
@given(envelopes)
def test_structured_round_trip(envelope: Envelope) -> None:
    value = to_structured(envelope)
    assert parse_structured(value) == envelope
    assert parse_record(structured_headers(), value) == envelope
    assert parse_record([], value) == envelope


@FAST
@given(envelopes)
def test_binary_round_trip(envelope: Envelope) -> None:
    headers, value = to_binary(envelope)
    assert parse_record(headers, value) == envelope
    assert parse_record(headers, value) == envelope
    assert all(isinstance(name, str) and isinstance(raw, bytes) for name, raw in headers)


@FAST
@given(envelopes)
def test_the_payload_is_the_compact_json_of_data(envelope: Envelope) -> None:
    assert json.loads(envelope.payload) == envelope.data
    assert check_payload_size(envelope, len(envelope.payload)) is envelope
    assert reason(lambda: check_payload_size(envelope, len(envelope.payload) - 1)) == Reason.PAYLOAD_TOO_LARGE


# --- properties: one mutation, one reason ------------------------------------------------------


@FAST
@given(envelopes, st.sampled_from(REQUIRED), st.booleans())
def test_a_missing_required_attribute_is_missing_field(envelope: Envelope, name: str, as_null: bool) -> None:
    event = event_of(envelope)
    if as_null:
        event[name] = None
    else:
        del event[name]
    assert reason(lambda: parse_structured(encode(event))) == Reason.MISSING_FIELD
    headers, value = to_binary(envelope)
    headers = [(key, raw) for key, raw in headers if key != f"ce_{name}"]
    assert reason(lambda: parse_record(headers, value)) == Reason.MISSING_FIELD


@FAST
@given(envelopes, st.sampled_from(STRING_ATTRIBUTES), NOT_STRINGS | st.just(""))
def test_a_non_string_or_empty_attribute_is_wrong_type(envelope: Envelope, name: str, bad: object) -> None:
    event = event_of(envelope) | {name: bad}
    assert reason(lambda: parse_structured(encode(event))) == Reason.WRONG_TYPE


@FAST
@given(envelopes, NOT_STRINGS)
def test_a_non_string_specversion_is_wrong_type(envelope: Envelope, bad: object) -> None:
    event = event_of(envelope) | {"specversion": bad}
    assert reason(lambda: parse_structured(encode(event))) == Reason.WRONG_TYPE


@FAST
@given(envelopes, st.text(max_size=8).filter(lambda text: text != "1.0"))
def test_another_specversion_is_bad_specversion(envelope: Envelope, version: str) -> None:
    event = event_of(envelope) | {"specversion": version}
    assert reason(lambda: parse_structured(encode(event))) == Reason.BAD_SPECVERSION
    headers, value = to_binary(envelope)
    headers = [(key, version.encode() if key == "ce_specversion" else raw) for key, raw in headers]
    assert reason(lambda: parse_record(headers, value)) == Reason.BAD_SPECVERSION


@FAST
@given(envelopes, texts.filter(lambda text: text != TRIGGER_FIRE_TYPE))
def test_another_type_is_bad_type(envelope: Envelope, event_type: str) -> None:
    event = event_of(envelope) | {"type": event_type}
    assert reason(lambda: parse_structured(encode(event))) == Reason.BAD_TYPE


bad_fqns = (
    names.map(lambda name: f"guest/{name}")  # not fully qualified
    | names.map(lambda name: f"/_/{name}")  # unresolved namespace
    | st.tuples(namespaces, names, names).map(lambda parts: "/" + "/".join(parts))  # three segments
    | names.map(lambda name: f"/guest/{name}!")  # an illegal character
    | names.map(lambda name: f"/guest/{name} ")  # ends with a space
    | st.just("/guest/" + "t" * 257)
)


@FAST
@given(envelopes, bad_fqns)
def test_a_bad_trigger_name_is_bad_trigger_name(envelope: Envelope, fqn: str) -> None:
    event = event_of(envelope) | {"owtrigger": fqn}
    assert reason(lambda: parse_structured(encode(event))) == Reason.BAD_TRIGGER_NAME


@FAST
@given(envelopes, NOT_OBJECTS)
def test_data_that_is_not_an_object_is_bad_data(envelope: Envelope, data: object) -> None:
    event = event_of(envelope) | {"data": data}
    assert reason(lambda: parse_structured(encode(event))) == Reason.BAD_DATA
    headers, _ = to_binary(envelope)
    assert reason(lambda: parse_record(headers, encode(data))) == Reason.BAD_DATA


@FAST
@given(envelopes, st.integers(1, 2000))
def test_data_over_the_limit_is_payload_too_large(envelope: Envelope, extra: int) -> None:
    event = event_of(envelope)
    limit = len(envelope.payload) + extra
    fits = dict(envelope.data, padding="")
    padding = limit - len(json.dumps(fits, ensure_ascii=False, separators=(",", ":")).encode())
    fits["padding"] = "p" * max(padding, 0)
    if padding >= 0:
        assert parse_structured(encode(event | {"data": fits}), max_payload_bytes=limit).data == fits
    over = dict(fits, padding=fits["padding"] + "p")
    value = encode(event | {"data": over})
    assert reason(lambda: parse_structured(value, max_payload_bytes=limit)) == Reason.PAYLOAD_TOO_LARGE
    headers, _ = to_binary(envelope)
    assert reason(lambda: parse_record(headers, encode(over), max_payload_bytes=limit)) == Reason.PAYLOAD_TOO_LARGE


def test_the_default_payload_limit() -> None:
    big = {"a": "x" * DEFAULT_MAX_PAYLOAD_BYTES}
    event = event_of(example_envelope()) | {"data": big}
    assert reason(lambda: parse_structured(encode(event))) == Reason.PAYLOAD_TOO_LARGE


# --- binary mode and mode selection ------------------------------------------------------------


def binary_example() -> tuple[list[tuple[str, bytes]], bytes]:
    return to_binary(example_envelope())


def test_binary_mode_with_no_value_has_empty_data() -> None:
    headers, _ = binary_example()
    for value in (b"", None):
        assert parse_record(headers, value).data == {}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda h: [*h, ("ce_id", b"again")], Reason.BAD_HEADER),
        (lambda h: [*h, ("content-type", b"application/json")], Reason.BAD_HEADER),
        (lambda h: [(k, b"\xff" if k == "ce_source" else v) for k, v in h], Reason.BAD_HEADER),
        (lambda h: [(k, None if k == "ce_owtrigger" else v) for k, v in h], Reason.BAD_HEADER),
        (lambda h: [(k, b"" if k == "ce_id" else v) for k, v in h], Reason.WRONG_TYPE),
        (lambda h: [*h, ("x",)], Reason.BAD_HEADER),
        (lambda h: [*h, (b"ce_id", b"x")], Reason.BAD_HEADER),
        (lambda h: "ce_id", Reason.BAD_HEADER),
        (lambda h: [(k, b"text/plain" if k == "content-type" else v) for k, v in h], Reason.BAD_CONTENT_TYPE),
    ],
)
def test_binary_header_problems(change: Callable[[list[Any]], Any], expected: Reason) -> None:
    headers, value = binary_example()
    assert reason(lambda: parse_record(change(headers), value)) == expected


def test_binary_mode_value_problems() -> None:
    headers, _ = binary_example()
    assert reason(lambda: parse_record(headers, b"{not json")) == Reason.NOT_JSON
    assert reason(lambda: parse_record(headers, b"[1]")) == Reason.BAD_DATA
    assert reason(lambda: parse_record(headers, 17)) == Reason.NOT_JSON  # type: ignore[arg-type]


def test_unrelated_headers_are_ignored() -> None:
    headers, value = binary_example()
    noisy = [("traceparent", b"00-abc"), ("x-odd", None), ("x-bin", b"\xff"), *headers]
    assert parse_record(noisy, value) == example_envelope()


def test_mode_selection() -> None:
    envelope = example_envelope()
    headers, value = to_binary(envelope)
    structured = to_structured(envelope)
    # a cloudevents content type means structured mode, even when ce_ headers are present too
    assert (
        parse_record([*headers[:-1], ("Content-Type", b"application/cloudevents+json; charset=utf-8")], structured)
        == envelope
    )
    assert (
        reason(lambda: parse_record([("content-type", b"application/cloudevents-batch+json")], structured))
        == Reason.BAD_CONTENT_TYPE
    )
    assert (
        reason(lambda: parse_record([("content-type", b"application/cloudevents+avro")], structured))
        == Reason.BAD_CONTENT_TYPE
    )
    # no ce_specversion header: the value is read as a structured event
    assert parse_record(None, structured) == envelope
    assert parse_record([("content-type", b"application/json")], structured) == envelope
    assert reason(lambda: parse_record(headers[1:], value)) == Reason.MISSING_FIELD
    # binary mode without a content-type is fine
    assert parse_record(headers[:-1], value) == envelope
    # a tombstone is not an event
    assert reason(lambda: parse_record([], None)) == Reason.NOT_JSON


def test_programmatic_construction_is_validated_too() -> None:
    assert reason(lambda: example_envelope(data=[1])) == Reason.BAD_DATA
    assert reason(lambda: example_envelope(data={1: "x"})) == Reason.BAD_DATA
    assert reason(lambda: example_envelope(data={"x": float("nan")})) == Reason.BAD_DATA
    assert reason(lambda: example_envelope(data={"x": object()})) == Reason.BAD_DATA
    assert reason(lambda: example_envelope(type="other")) == Reason.BAD_TYPE
    assert reason(lambda: example_envelope(credential="")) == Reason.WRONG_TYPE
    assert reason(lambda: example_envelope(apihost="")) == Reason.WRONG_TYPE
    assert reason(lambda: example_envelope(trigger="T")) == Reason.BAD_TRIGGER_NAME


# --- properties: nothing but BadMessage escapes ------------------------------------------------


@FUZZ
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_parsers(value: bytes) -> None:
    parses_or_rejects(lambda: parse_structured(value))
    parses_or_rejects(lambda: parse_record([], value))
    headers, _ = binary_example()
    parses_or_rejects(lambda: parse_record(headers, value))


@FUZZ
@given(json_values)
def test_arbitrary_json_never_crashes_the_parsers(value: object) -> None:
    assert parses_or_rejects(lambda: parse_structured(encode(value))) is None


attribute_values = json_values | texts | st.sampled_from(["1.0", TRIGGER_FIRE_TYPE, "/guest/T", "2026-01-01T00:00:00Z"])


@FUZZ
@given(
    envelopes,
    st.dictionaries(
        st.sampled_from([*REQUIRED, "owapihost", "time", "data", "datacontenttype", "data_base64"]),
        attribute_values,
        max_size=4,
    ),
)
def test_arbitrary_attribute_values_never_crash_the_parser(envelope: Envelope, changes: dict[str, Any]) -> None:
    parsed = parses_or_rejects(lambda: parse_structured(encode(event_of(envelope) | changes)))
    if parsed is not None:
        assert parse_structured(to_structured(parsed)) == parsed


header_names = (
    st.sampled_from(
        [f"ce_{name}" for name in REQUIRED]
        + ["ce_owapihost", "ce_time", "content-type", "Content-Type", "ce_", "other"]
    )
    | st.text()
)
header_values = (
    st.none()
    | st.binary(max_size=30)
    | st.sampled_from(
        [b"1.0", TRIGGER_FIRE_TYPE.encode(), b"/guest/T", b"application/json", b"application/cloudevents+json"]
    )
)
header_entries = st.tuples(header_names, header_values) | st.one_of(
    st.tuples(header_names), st.integers(), st.tuples(st.integers(), header_values), st.lists(header_values)
)


@FUZZ
@given(
    st.lists(header_entries, max_size=10) | st.none() | st.integers() | st.text(max_size=3),
    st.none() | st.binary(max_size=50) | json_values.map(encode),
)
def test_arbitrary_headers_never_crash_the_parsers(headers: Any, value: bytes | None) -> None:
    parses_or_rejects(lambda: parse_record(headers, value))
    parses_or_rejects(lambda: parse_record(headers, value))


@FUZZ
@given(envelopes, st.lists(st.tuples(header_names, header_values), max_size=3), st.integers(0, 8))
def test_valid_binary_records_with_noise_never_crash(envelope: Envelope, noise: list[Any], at: int) -> None:
    headers, value = to_binary(envelope)
    parsed = parses_or_rejects(lambda: parse_record(headers[:at] + noise + headers[at:], value))
    if parsed is not None:
        assert parse_record(*to_binary(parsed)) == parsed


# --- the dead-letter contract ------------------------------------------------------------------


def test_reason_codes_are_stable() -> None:
    assert [reason.value for reason in Reason] == [
        "not-json",
        "not-an-object",
        "missing-field",
        "wrong-type",
        "bad-specversion",
        "bad-type",
        "bad-trigger-name",
        "bad-data",
        "bad-time",
        "bad-header",
        "bad-content-type",
        "payload-too-large",
        "bad-credential",
        "credential-expired",
        "credential-out-of-scope",
        "apihost-not-allowed",
        "fire-rejected",
        "retries-exhausted",
        "subscription-disabled",
    ]


def test_bad_message_carries_its_reason() -> None:
    error = BadMessage(Reason.NOT_JSON, "value is not JSON")
    assert str(error) == "not-json: value is not JSON"
    assert pickle.loads(pickle.dumps(error)).reason == Reason.NOT_JSON
    assert BadMessage("bad-data", "x").reason is Reason.BAD_DATA  # type: ignore[arg-type]


def test_dead_letter_headers() -> None:
    headers = dead_letter_headers(
        reason=Reason.FIRE_REJECTED,
        detail="HTTP 404 \ud800",
        status=404,
        attempts=1,
        first_attempt_ms=10,
        last_attempt_ms=20,
        source_topic="openwhisk-trigger-messages",
        source_partition=3,
        source_offset=42,
    )
    assert dict(headers) == {
        DL_REASON: b"fire-rejected",
        DL_DETAIL: b"HTTP 404 ?",
        DL_STATUS: b"404",
        DL_ATTEMPTS: b"1",
        DL_FIRST_ATTEMPT_MS: b"10",
        DL_LAST_ATTEMPT_MS: b"20",
        DL_SOURCE_TOPIC: b"openwhisk-trigger-messages",
        DL_SOURCE_PARTITION: b"3",
        DL_SOURCE_OFFSET: b"42",
    }
    assert [name for name, _ in headers] == [h for h in DEAD_LETTER_HEADERS if h != DL_TRIGGER]
    routed = dead_letter_headers(reason=Reason.PAYLOAD_TOO_LARGE, detail="x", first_attempt_ms=1, last_attempt_ms=1,
                                 source_topic="orders", source_partition=0, source_offset=0, trigger="/ns/T")
    assert [name for name, _ in routed] == [h for h in DEAD_LETTER_HEADERS if h != DL_STATUS]
    assert dict(routed)[DL_TRIGGER] == b"/ns/T"
    bad = dead_letter_headers(
        reason=Reason.NOT_JSON,
        detail="x",
        first_attempt_ms=1,
        last_attempt_ms=1,
        source_topic="t",
        source_partition=0,
        source_offset=0,
    )
    assert DL_STATUS not in dict(bad) and dict(bad)[DL_ATTEMPTS] == b"0"


# --- the fast path parses exactly as the checked path -------------------------------------------


ascii_texts = st.text(string.printable, min_size=1, max_size=30)
# The fast path takes ASCII attributes (what producers write): these reach it, `envelopes` rarely do.
plain_envelopes = st.builds(
    Envelope,
    id=ascii_texts,
    source=ascii_texts,
    trigger=fqns.filter(str.isascii),
    credential=ascii_texts,
    apihost=st.none() | ascii_texts,
    time=st.none() | rfc3339_times(),
    data=json_objects,
)
some_envelopes = plain_envelopes | envelopes


def outcome(call: Callable[[], Envelope]) -> tuple[str, object]:
    """What a parser gives: the envelope with its payload, or the refusal's reason and detail."""
    try:
        parsed = call()
    except BadMessage as exc:
        return "refused", (exc.reason, exc.detail)
    return "parsed", (parsed, parsed.payload)


def both_paths(call: Callable[[], Envelope]) -> None:
    """The parser gives the same outcome with its fast path as with the checked path alone."""
    fast = outcome(call)
    with patch.object(envelope_module, "_fast_envelope", lambda *args: None):
        checked = outcome(call)
    assert fast == checked


def _is_rfc3339_before(text: str) -> bool:
    """is_rfc3339 as it was before the fast path (the reference for the equivalence test)."""
    match = envelope_module._RFC3339_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    offset_hour, offset_minute = match.group(7), match.group(8)
    if second > 60 or (offset_hour is not None and (int(offset_hour) > 23 or int(offset_minute) > 59)):
        return False
    try:
        datetime(year, month, day, hour, minute, min(second, 59))
    except ValueError:
        return False
    return True


time_like = st.from_regex(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,3})?([Zz]|[+-][0-9]{2}:[0-9]{2})",
    fullmatch=True)


@FUZZ
@given(time_like | rfc3339_times() | st.text(max_size=30))
@example("0000-01-01T00:00:00Z")
@example("2024-02-29T23:59:60Z")
@example("2023-02-29T00:00:00Z")
@example("2026-01-01T24:00:00Z")
@example("2026-01-01T00:60:00Z")
@example("2026-01-01T00:00:61Z")
@example("2026-01-01T00:00:00+24:00")
def test_is_rfc3339_accepts_what_it_accepted_before(text: str) -> None:
    assert is_rfc3339(text) == _is_rfc3339_before(text)


@FUZZ
@given(
    some_envelopes,
    st.dictionaries(
        st.sampled_from([*REQUIRED, "owapihost", "time", "data", "datacontenttype", "data_base64"]),
        attribute_values | time_like | st.sampled_from(["application/json", "text/json; charset=utf-8", "Z"]),
        max_size=2,
    ),
    st.sampled_from([DEFAULT_MAX_PAYLOAD_BYTES, 10, 40]),
)
def test_structured_records_parse_the_same_on_both_paths(envelope: Envelope, changes: dict[str, Any],
                                                          limit: int) -> None:
    value = encode(event_of(envelope) | changes)
    both_paths(lambda: parse_record(structured_headers(), value, max_payload_bytes=limit))
    both_paths(lambda: parse_structured(value, max_payload_bytes=limit))
    both_paths(lambda: parse_record(None, value, max_payload_bytes=limit))
    both_paths(lambda: parse_record(structured_headers(), to_structured(envelope), max_payload_bytes=limit))


@FUZZ
@given(some_envelopes, st.lists(st.tuples(header_names, header_values), max_size=3), st.integers(0, 8),
       st.none() | st.binary(max_size=20) | json_values.map(encode), st.sampled_from([DEFAULT_MAX_PAYLOAD_BYTES, 10]))
def test_binary_records_parse_the_same_on_both_paths(envelope: Envelope, noise: list[Any], at: int,
                                                      value: bytes | None, limit: int) -> None:
    headers, data = to_binary(envelope)
    both_paths(lambda: parse_record(headers, data, max_payload_bytes=limit))
    both_paths(lambda: parse_record(headers[:at] + noise + headers[at:], data, max_payload_bytes=limit))
    both_paths(lambda: parse_record(headers, value, max_payload_bytes=limit))


@FUZZ
@given(st.binary(max_size=200) | json_values.map(encode))
def test_arbitrary_values_parse_the_same_on_both_paths(value: bytes) -> None:
    both_paths(lambda: parse_record(structured_headers(), value))
    headers, _ = binary_example()
    both_paths(lambda: parse_record(headers, value))


def test_the_fast_path_takes_what_produce_and_the_router_write() -> None:
    """Valid records of both modes are built by the fast path (else it would cost, not save)."""
    built = example_envelope(apihost="https://ow.example")
    calls: list[object] = []
    real = envelope_module._fast_envelope

    def spy(*args: Any) -> Envelope | None:
        result = real(*args)
        calls.append(result)
        return result
    with patch.object(envelope_module, "_fast_envelope", spy):
        assert parse_record(structured_headers(), to_structured(built)) == built
        assert parse_record(*to_binary(built)) == built
    assert calls == [built, built]


@FAST
@given(some_envelopes, st.integers(-1, 1))
def test_the_size_limit_is_the_same_on_both_paths(envelope: Envelope, off_by: int) -> None:
    limit = len(envelope.payload) + off_by
    both_paths(lambda: parse_record(structured_headers(), to_structured(envelope), max_payload_bytes=limit))
    both_paths(lambda: parse_record(*to_binary(envelope), max_payload_bytes=limit))


@FUZZ
@given(some_envelopes, st.sampled_from([*STRING_ATTRIBUTES, "specversion", "datacontenttype", "data_base64", "data"]),
       attribute_values | time_like | st.sampled_from(["application/json", "text/json", "/guest/*", "/a/b/c"]))
def test_one_changed_attribute_parses_the_same_on_both_paths(envelope: Envelope, name: str, value: object) -> None:
    structured = encode(event_of(envelope) | {name: value})
    both_paths(lambda: parse_record(structured_headers(), structured))
    if isinstance(value, str) and name != "data":
        headers, data = to_binary(envelope)
        header = "content-type" if name == "datacontenttype" else f"ce_{name}"
        changed = [(key, raw) for key, raw in headers if key != header] + [(header, value.encode("utf-8", "replace"))]
        both_paths(lambda: parse_record(changed, data))


# --- the orjson read (canonical texts) parses exactly as the hooked read did ----------------------


def compact(value: object) -> bytes:
    """The canonical form the orjson read takes (what to_structured and to_binary write)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")


def with_member(text: bytes, key: str, value: bytes) -> bytes:
    """``text`` (a compact object) with one more member written at its end, a duplicate or not."""
    member = compact(key) + b":" + value
    return text[:-1] + (b"," if text != b"{}" else b"") + member + b"}"


def plain_and_hooked(call: Callable[[], Envelope]) -> None:
    """Same outcome with the orjson read as with the hooked read alone, and as the checked path."""
    new = outcome(call)
    with patch.object(envelope_module, "_plain_read", lambda raw: None):
        hooked = outcome(call)
    assert new == hooked
    both_paths(call)


def nested(depth: int) -> bytes:
    """A compact data text nesting ``depth`` arrays (written out: json.dumps would recurse)."""
    return b'{"deep":' + b"[" * depth + b"1" + b"]" * depth + b"}"


bad_times = st.sampled_from(["2026-01-01T24:00:00Z", "2026-02-30T00:00:00Z", "2026-01-01 00:00:00Z",
                             "0000-01-01T00:00:00Z", "2026-01-01T00:00:60+24:00", "yesterday"])
odd_data_texts = st.sampled_from([b'{"x":1.0e1}', b'{"x":1E5}', b'{"x":-0}', b'{"x":18446744073709551616}',
                                  b'{"x":NaN}', b'{"x":"\\ud800"}', b'{"x": 1}', b'{"x":1,"x":1}',
                                  b'{"a":{"b":1,"b":2}}', b'{"x":0.00001}', b'{"x":1e-05}', b'[1]', b'null',
                                  b'{"x":"\\u00e9"}', b'\xef\xbb\xbf{"x":1}'])


@FUZZ
@given(plain_envelopes, st.sampled_from([*REQUIRED, "owapihost", "time", "datacontenttype", "data", "ext"]),
       attribute_values | bad_times | rfc3339_times() | json_values,
       st.sampled_from([DEFAULT_MAX_PAYLOAD_BYTES, 10, 40]))
@example(example_envelope(), "owtrigger", "/guest/T", DEFAULT_MAX_PAYLOAD_BYTES)
@example(example_envelope(), "id", "id-1", DEFAULT_MAX_PAYLOAD_BYTES)
@example(example_envelope(), "data", {"x": 1}, DEFAULT_MAX_PAYLOAD_BYTES)
@example(example_envelope(), "time", "2026-01-01T24:00:00Z", DEFAULT_MAX_PAYLOAD_BYTES)
def test_a_duplicate_or_extra_attribute_reads_the_same_both_ways(envelope: Envelope, name: str, value: object,
                                                                 limit: int) -> None:
    """Duplicate keys (the same value or another), bad times and sizes, in the canonical form."""
    canonical = to_structured(envelope)
    duplicated = with_member(canonical, name, compact(value))
    for text in (canonical, duplicated, compact(event_of(envelope) | {name: value})):
        plain_and_hooked(lambda: parse_record(structured_headers(), text, max_payload_bytes=limit))  # noqa: B023


@FUZZ
@given(plain_envelopes, json_objects, st.text(unicode_text, max_size=4), json_values, st.integers(-1, 1))
def test_a_duplicate_key_in_data_reads_the_same_both_ways(envelope: Envelope, data: dict[str, Any], key: str,
                                                          value: object, off_by: int) -> None:
    data_text = with_member(compact(data), key, compact(value))
    event = event_of(envelope)
    del event["data"]
    structured = compact(event)[:-1] + b',"data":' + data_text + b"}"
    headers, _ = to_binary(envelope)
    limit = len(compact(data)) + off_by
    plain_and_hooked(lambda: parse_record(structured_headers(), structured, max_payload_bytes=limit))
    plain_and_hooked(lambda: parse_record(headers, data_text, max_payload_bytes=limit))
    plain_and_hooked(lambda: parse_record(headers, compact(data), max_payload_bytes=limit))


@FAST
@given(plain_envelopes, odd_data_texts)
def test_data_texts_in_another_form_read_the_same_both_ways(envelope: Envelope, data_text: bytes) -> None:
    event = event_of(envelope)
    del event["data"]
    headers, _ = to_binary(envelope)
    plain_and_hooked(lambda: parse_record(structured_headers(), compact(event)[:-1] + b',"data":' + data_text + b"}"))
    plain_and_hooked(lambda: parse_record(headers, data_text))


@pytest.mark.parametrize("depth", [1, 254, 255, 256, 900, 1100, 3000])
def test_deep_data_reads_the_same_both_ways(depth: int) -> None:
    built = example_envelope()
    event = event_of(built)
    del event["data"]
    headers, _ = to_binary(built)
    structured = compact(event)[:-1] + b',"data":' + nested(depth) + b"}"
    plain_and_hooked(lambda: parse_record(structured_headers(), structured))
    plain_and_hooked(lambda: parse_record(headers, nested(depth)))


def test_canonical_records_take_the_orjson_read() -> None:
    """What produce and the router write is read by orjson (else it would cost, not save)."""
    built = example_envelope(apihost="https://ow.example", data={"i": 7, "sent_ms": 1795992044746.1702, "s": "é"})
    with patch.object(envelope_module, "_decode_json", side_effect=AssertionError("the hooked read")):
        assert parse_record(structured_headers(), to_structured(built)) == built
        assert parse_record(*to_binary(built)) == built


@FUZZ
@given(st.dictionaries(st.text(max_size=4), json_values | st.text(st.characters(), max_size=4), max_size=4))
def test_the_read_data_encoder_is_encode_data(data: dict[str, Any]) -> None:
    """The fast path's prebuilt encoder gives encode_data's bytes or refusal (lone surrogates too)."""
    def encoded(encoder: Callable[[dict[str, Any]], bytes]) -> tuple[str, object]:
        try:
            return "encoded", encoder(data)
        except BadMessage as exc:
            return "refused", (exc.reason, exc.detail)
    assert encoded(envelope_module._encode_read_data) == encoded(envelope_module.encode_data)
