"""Subscription records: round trips, versions, segments for PAUSE/UNPAUSE, refusals of bad records."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feed import records
from feed.records import Options, Segment, Status, Subscription
from messaging_lib.envelope import parse_trigger_fqn
from messaging_lib.errors import BadMessage, RecordError


def sub(**changes: object) -> Subscription:
    values: dict = {"trigger": "/guest/T", "topic": "orders", "credential": "sealed-token", "options": Options(),
                    "start_from": "latest", "segments": (Segment(None, {0: 5, 1: 7}),), "created_ms": 1,
                    "updated_ms": 2}
    values.update(changes)
    return Subscription(**values)


def test_a_subscription_round_trips_and_hides_its_credential_from_repr() -> None:
    original = sub(options=Options(is_json_data=True, max_batch_bytes=1000, max_batch_messages=3,
                                   batch_window_ms=0))
    assert records.decode_subscription(records.encode_subscription(original)) == original
    assert "sealed-token" not in repr(original)


def test_a_status_round_trips_and_applies_only_to_its_configuration_version() -> None:
    status = Status(404, records.disabled_message(404), config=12, updated_ms=3)
    assert records.decode_status(records.encode_status(status)) == status
    assert status.applies_to(12) and not status.applies_to(13)
    assert status.message == "Automatically disabled after receiving a 404 status code when firing the trigger."


def test_keys_are_named_prefixes() -> None:
    assert records.subscription_key("/ns/T") == b"subscription:/ns/T"
    assert records.parse_key(b"status:/ns/T") == ("status:", "/ns/T")
    assert records.parse_key(b"offsets:/ns/T") is None
    assert records.parse_key(b"\xff") is None
    assert records.parse_key(None) is None


def test_the_envelope_source_carries_the_configuration_version() -> None:
    assert records.config_version_of(records.feed_source(42)) == 42
    assert records.config_version_of("/guest/messaging/produce") is None
    assert records.config_version_of(records.FEED_SOURCE + "?config=x") is None


def test_resolving_gives_segments_opened_by_the_record_its_offset() -> None:
    resolved = sub().resolved(9)
    assert resolved.segments[0].origin == 9
    assert resolved.resolved(10) is resolved  # already resolved: kept


def test_pause_stops_the_open_segment_and_unpause_opens_one_where_it_stopped() -> None:
    active = sub().resolved(9)
    paused = active.paused_at({0: 50, 1: 60}, now_ms=100)
    assert paused.paused and paused.state == records.PAUSED and paused.updated_ms == 100
    assert paused.paused_at({0: 99}, now_ms=200) is paused  # idempotent: the first stop holds
    resumed = paused.unpaused(now_ms=300)
    assert not resumed.paused
    assert resumed.segments == (Segment(9, {0: 5, 1: 7}, {0: 50, 1: 60}), Segment(None, {0: 50, 1: 60}))
    assert resumed.unpaused(now_ms=400) is resumed
    cycled = resumed
    for offset in range(20):
        cycled = cycled.resolved(offset + 10).paused_at({0: offset}, now_ms=1).unpaused(now_ms=2)
    assert len(cycled.segments) == records.MAX_SEGMENTS


def test_missing_partitions_count_as_offset_zero() -> None:
    segment = Segment(1, {0: 5}, {0: 9})
    assert segment.start_at(3) == 0 and segment.stop_at(3) == 0
    assert Segment(1, {0: 5}).stop_at(3) is None


@pytest.mark.parametrize("mutate", [
    lambda v: v.update(v=2),
    lambda v: v.pop("topic"),
    lambda v: v.update(trigger="not-qualified"),
    lambda v: v.update(segments=[]),
    lambda v: v["segments"][0].update(start={"zero": 1}),
    lambda v: v["segments"][0].update(start={"0": -1}),
    lambda v: v["options"].update(isJSONData="yes"),
    lambda v: v["options"].update(maxBatchBytes=0),
    lambda v: v.update(created_ms=True),
])
def test_bad_subscription_records_are_refused(mutate) -> None:
    value = json.loads(records.encode_subscription(sub()))
    mutate(value)
    with pytest.raises(RecordError):
        records.decode_subscription(json.dumps(value).encode())


@pytest.mark.parametrize("raw", [b"\xff", b"[]", b"{}", b'{"v":1,"state":"enabled"}', b'{"v":1,"state":"disabled"}'])
def test_bad_status_records_are_refused(raw: bytes) -> None:
    with pytest.raises(RecordError):
        records.decode_status(raw)


@settings(max_examples=300, deadline=None)
@given(trigger=st.one_of(
    st.text(alphabet="/_a-zA-Z0-9@ .&\u00e9\n", max_size=12),
    st.builds(lambda ns, name: f"/{ns}/{name}", st.text(alphabet="_a@ .&-\u00e9/", max_size=5),
              st.text(alphabet="_b@ .&-\u00e9/", max_size=5))))
def test_the_one_match_trigger_check_refuses_exactly_what_parse_trigger_fqn_refuses(trigger: str) -> None:
    try:
        parse_trigger_fqn(trigger)
        valid = True
    except BadMessage:
        valid = False
    if valid:
        records._check_trigger(trigger)
    else:
        with pytest.raises(RecordError):
            records._check_trigger(trigger)


@pytest.mark.parametrize("edit", [(b'"v":1', b'"v":1.0'), (b'"created_ms":1', b'"created_ms":' + str(2**70).encode()),
                                  (b'"credential":"sealed"', b'"credential":"\\ud800"'),
                                  (b'"created_ms":1', b'"created_ms":NaN'), (b'"created_ms":1', b'"created_ms":1.0'),
                                  (b'"topic":"orders"', b'"topic":"orders","topic":"last"')])
def test_a_record_reads_as_the_stdlib_json_reads_it_whether_orjson_refuses_it_or_not(
        edit: tuple[bytes, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    value = records.encode_subscription(Subscription(
        trigger="/guest/T", topic="orders", credential="sealed", options=Options(), start_from="latest",
        segments=(Segment(None, {0: 3}),), created_ms=1, updated_ms=1)).replace(*edit)

    def read() -> object:
        try:
            return records.decode_subscription(value, 7)
        except RecordError as e:
            return str(e)
    fast = read()
    monkeypatch.setattr(records, "_fast_loads", None)
    assert fast == read()
