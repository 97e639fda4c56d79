"""Fired messages and batches: encodings of the old feed without its defects, exact sizes, limits."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from consumer import batching
from consumer.batching import Batcher
from feed.options import BatchLimits
from feed.records import Options
from messaging_lib import envelope

RAW = bytes(range(256))


def msg(value: bytes | None, key: bytes | None = b"k", headers=(), **options: object) -> dict:
    return batching.message("t", 1, 42, key, value, 1700000000000, list(headers), Options(**options))


def test_a_plain_message_has_the_seven_fields_and_text_values() -> None:
    assert msg(b"hello", headers=[("trace", b"abc"), ("trace", b"def")]) == {
        "topic": "t", "partition": 1, "offset": 42, "key": "k", "value": "hello", "timestamp": 1700000000000,
        "headers": [["trace", "abc"], ["trace", "def"]]}
    assert msg(None, key=None)["key"] is None and msg(None)["value"] is None
    assert msg(b"caf\xc3\xa9 \xff")["value"] == "café \ufffd"  # invalid bytes replaced, as before


def test_binary_flags_give_base64_without_line_breaks_for_any_bytes() -> None:
    big = RAW * 10
    m = msg(big, key=RAW, headers=[("h", b"\x00\xff")], is_binary_key=True, is_binary_value=True)
    assert base64.b64decode(m["value"]) == big and "\n" not in m["value"]
    assert base64.b64decode(m["key"]) == RAW
    assert m["headers"] == [["h", base64.b64encode(b"\x00\xff").decode()]]


def test_json_data_is_parsed_and_invalid_json_arrives_as_the_plain_text() -> None:
    assert msg(b'{"a": [1, 2.5]}', is_json_data=True)["value"] == {"a": [1, 2.5]}
    assert msg(b"42", is_json_data=True)["value"] == 42
    for text in (b"abc", b"{broken", b"NaN", b'{"x": Infinity}', b'"\\ud800"'):
        assert msg(text, is_json_data=True)["value"] == text.decode()


@given(st.binary(max_size=300), st.binary(max_size=50), st.booleans(), st.booleans(), st.booleans())
def test_every_record_encodes_as_json_the_firer_accepts(value: bytes, key: bytes, as_json: bool, bin_key: bool,
                                                         bin_value: bool) -> None:
    options = {"is_json_data": as_json and not bin_value, "is_binary_key": bin_key, "is_binary_value": bin_value}
    encoded = batching.encode(msg(value, key=key, headers=[("h", value)], **options))
    payload = batching.payload([encoded, encoded])
    parsed = json.loads(payload)
    assert envelope.encode_data(parsed) == payload  # the firer re-encodes to the same bytes and size
    assert batching.payload_size([len(encoded)] * 2) == len(payload)


@given(st.lists(st.binary(max_size=40), max_size=5))
def test_a_payload_is_the_messages_joined_inside_the_envelope_of_messages(messages: list[bytes]) -> None:
    assert batching.payload(messages) == b'{"messages":[' + b",".join(messages) + b"]}"
    assert batching.payload_size(map(len, messages)) == len(batching.payload(messages))


def limits(max_bytes: int = 1000, max_messages: int = 100, window_s: float = 1.0) -> BatchLimits:
    return BatchLimits(max_bytes, max_messages, window_s)


def test_a_batch_closes_before_it_would_exceed_its_byte_limit_and_never_exceeds_it() -> None:
    batcher = Batcher()
    message = b"x" * 300
    sizes = []
    closed = []
    for i in range(7):
        closed += batcher.add("/ns/T", 1, "c", limits(max_bytes=1000), message, i, now_s=0.0)
    closed += batcher.close_all()
    for batch in closed:
        sizes.append(len(batching.payload(batch.messages)))
        assert sizes[-1] == batch.size <= 1000
    assert [b.refs for b in closed] == [[0, 1, 2], [3, 4, 5], [6]]


def test_a_batch_closes_at_its_count_and_when_its_window_passes() -> None:
    batcher = Batcher()
    assert batcher.add("/ns/T", 1, "c", limits(max_messages=2), b"1", "a", now_s=0.0) == []
    [full] = batcher.add("/ns/T", 1, "c", limits(max_messages=2), b"2", "b", now_s=0.1)
    assert full.refs == ["a", "b"]
    batcher.add("/ns/T", 1, "c", limits(window_s=0.5), b"3", "c", now_s=1.0)
    assert batcher.next_due_s() == 1.5
    assert batcher.due(1.4) == []
    [late] = batcher.due(1.5)
    assert late.refs == ["c"] and len(batcher) == 0
    [now] = batcher.add("/ns/T", 1, "c", limits(window_s=0), b"4", "d", now_s=2.0)
    assert now.refs == ["d"]


def test_a_new_configuration_version_starts_a_new_batch_and_triggers_batch_apart() -> None:
    batcher = Batcher()
    batcher.add("/ns/A", 1, "c", limits(), b"1", 1, now_s=0.0)
    batcher.add("/ns/B", 1, "c", limits(), b"2", 2, now_s=0.0)
    [old] = batcher.add("/ns/A", 2, "c", limits(), b"3", 3, now_s=0.0)
    assert (old.version, old.refs) == (1, [1])
    assert {b.trigger: b.refs for b in batcher.close_all()} == {"/ns/A": [3], "/ns/B": [2]}


def test_a_message_bigger_than_the_batch_limit_but_within_the_payload_limit_fires_alone() -> None:
    batcher = Batcher()
    batcher.add("/ns/T", 1, "c", limits(max_bytes=100), b"small", 1, now_s=0.0)
    [first] = batcher.add("/ns/T", 1, "c", limits(max_bytes=100), b"y" * 500, 2, now_s=0.0)
    assert first.refs == [1]
    [alone] = batcher.close_all()
    assert alone.refs == [2]
    assert batching.fits_alone(b"y" * 500, 900_000) and not batching.fits_alone(b"y" * 900_000, 900_000)


# --- the bulk path: the same bytes and the same batches as a message at a time -------------------


@dataclass(frozen=True)
class Raw:
    """A record as kafka-python hands it over (the attributes the router reads)."""

    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    timestamp: int


_BYTES = st.one_of(st.none(), st.binary(max_size=60), st.text(max_size=30).map(str.encode),
                   st.sampled_from([b'{"a": [1, 2.5e-7, "\\u00e9\\n"]}', b"1e400", b"-0.0", b"12345678901234567890123",
                                    b'"\\ud800"', b"NaN", b"[true, null]", b'"caf\xc3\xa9 \\u2028"']))
_RAWS = st.lists(st.builds(Raw, st.integers(0, 2**40), _BYTES, _BYTES,
                           st.lists(st.tuples(st.text(max_size=8), _BYTES), max_size=3),
                           st.integers(-1, 2**45)), max_size=6)


@given(_RAWS, st.booleans(), st.booleans(), st.booleans())
def test_encode_records_writes_exactly_the_bytes_of_encode_message(raws: list[Raw], as_json: bool, bin_key: bool,
                                                                   bin_value: bool) -> None:
    options = Options(is_json_data=as_json and not bin_value, is_binary_key=bin_key, is_binary_value=bin_value)
    expected = [batching.encode(batching.message("tö\"pic", 3, r.offset, r.key, r.value, r.timestamp, r.headers,
                                                 options)) for r in raws]
    assert batching.encode_records("tö\"pic", 3, raws, options) == expected


def test_an_out_of_range_number_in_json_data_arrives_as_the_plain_text() -> None:
    assert msg(b"1e400", is_json_data=True)["value"] == "1e400"  # json.dumps cannot write it back


_ADDS = st.lists(st.tuples(st.integers(1, 120), st.sampled_from([1, 1, 1, 2]), st.floats(0, 0.3)), max_size=40)


@given(_ADDS, st.integers(20, 400), st.integers(1, 6), st.sampled_from([0.0, 0.1, 1.0]), st.integers(1, 5))
def test_add_many_builds_the_same_batches_as_add_one_at_a_time(adds: list[tuple[int, int, float]], max_bytes: int,
                                                               max_messages: int, window_s: float, run: int) -> None:
    one, bulk = Batcher(), Batcher()
    got_one: list[batching.Batch] = []
    got_bulk: list[batching.Batch] = []
    now = 0.0
    lim = limits(max_bytes=max_bytes, max_messages=max_messages, window_s=window_s)
    for start in range(0, len(adds), run):
        group = adds[start:start + run]
        version = group[0][1]
        now += group[0][2]
        encoded = [bytes([65 + (start + j) % 26]) * size for j, (size, _, _) in enumerate(group)]
        for j, message_ in enumerate(encoded):
            got_one += one.add("/ns/T", version, "c", lim, message_, start + j, now)
        sizes = batching.Sizes(encoded)
        got_bulk += bulk.add_many("/ns/T", version, "c", lim, encoded, sizes, 0, len(encoded),
                                  lambda i, k, s=start: list(range(s + i, s + k)), now)
        got_one += one.due(now)
        got_bulk += bulk.due(now)
    got_one += one.close_all()
    got_bulk += bulk.close_all()
    assert [(b.version, b.messages, b.size, b.opened_s) for b in got_bulk] == [
        (b.version, b.messages, b.size, b.opened_s) for b in got_one]
    assert [[r for piece in b.refs for r in piece] for b in got_bulk] == [b.refs for b in got_one]
    assert all(b.size == len(batching.payload(b.messages)) for b in got_bulk)
