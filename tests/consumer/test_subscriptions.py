"""The router's subscription table: built from changes only, statuses bound to versions, bad records skipped;
and the firer's hook that records a refusal."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.subscriptions import Refusal, SubscriptionIndex, status_writer
from consumer.table import Change
from feed import grants, records
from feed.records import Options, Segment, Status, Subscription
from messaging_lib.errors import RecordError


def sub(trigger: str = "/guest/T", topic: str = "orders") -> Subscription:
    return Subscription(trigger=trigger, topic=topic, credential="sealed", options=Options(), start_from="latest",
                        segments=(Segment(None, {0: 3}),), created_ms=1, updated_ms=1)


def put(index: SubscriptionIndex, offset: int, value: Subscription | None, trigger: str = "/guest/T") -> object:
    return index.apply(Change(offset, records.subscription_key(trigger),
                              None if value is None else records.encode_subscription(value)))


def status(index: SubscriptionIndex, offset: int, version: int, trigger: str = "/guest/T") -> None:
    index.apply(Change(offset, records.status_key(trigger),
                       records.encode_status(Status(404, records.disabled_message(404), version, 5))))


def test_subscriptions_are_indexed_by_trigger_and_topic_with_resolved_origins() -> None:
    index = SubscriptionIndex()
    assert put(index, 0, sub()) == ("/guest/T", None)
    assert put(index, 1, sub("/guest/U"), trigger="/guest/U") == ("/guest/U", None)
    live = index.get("/guest/T")
    assert live is not None and live.version == 0 and live.sub.segments[0].origin == 0
    assert index.topics() == {"orders"} and len(index.on_topic("orders")) == 2
    assert put(index, 2, sub(topic="invoices")) == ("/guest/T", "orders")  # moved: the old topic is reported
    assert index.topics() == {"orders", "invoices"}
    assert put(index, 3, None) == ("/guest/T", "invoices")
    assert index.get("/guest/T") is None and index.topics() == {"orders"} and index.applied == 3


def test_a_status_disables_only_the_version_it_names_and_a_newer_version_re_enables() -> None:
    index = SubscriptionIndex()
    put(index, 0, sub())
    status(index, 1, version=0)
    assert index.get("/guest/T").disabled  # type: ignore[union-attr]
    put(index, 2, sub())  # an UPDATE or CREATE
    assert not index.get("/guest/T").disabled  # type: ignore[union-attr]
    status(index, 3, version=0)  # a late refusal of the old version
    assert not index.get("/guest/T").disabled  # type: ignore[union-attr]


def test_a_status_read_before_its_subscription_still_applies() -> None:
    index = SubscriptionIndex()
    status(index, 5, version=4)
    put(index, 4, sub())  # compaction can leave them in either order relative to reading
    assert index.get("/guest/T").disabled  # type: ignore[union-attr]


def test_unreadable_or_foreign_records_are_skipped_without_stopping() -> None:
    index = SubscriptionIndex()
    assert index.apply(Change(0, b"subscription:/guest/T", b"not json")) is None
    assert index.apply(Change(1, b"something-else", b"x")) is None
    assert index.apply(Change(2, records.subscription_key("/guest/Other"), records.encode_subscription(sub()))) is None
    assert index.skipped == 2 and len(index) == 0 and index.applied == 2


def test_the_refusal_hook_writes_one_status_per_trigger_and_version_for_router_envelopes_only() -> None:
    written: list[tuple[bytes, bytes]] = []

    async def send(key: bytes, value: bytes) -> None:
        written.append((key, value))

    hook = status_writer(send, clock_ms=lambda: 77)

    async def scenario() -> None:
        await hook("/guest/T", records.feed_source(9), 404)
        await hook("/guest/T", records.feed_source(9), 404)
        await hook("/guest/T", "/guest/messaging/produce", 404)  # not a subscription's envelope
        await hook("/guest/T", records.feed_source(9), 400)  # not a disabling status
        await hook("/guest/T", records.feed_source(10), 403)
    asyncio.run(scenario())
    assert [k for k, _ in written] == [b"status:/guest/T"] * 2
    assert records.decode_status(written[0][1]) == Status(404, records.disabled_message(404), 9, 77)
    assert records.decode_status(written[1][1]).config == 10


def test_decoded_records_share_equal_options_and_positions_and_still_validate_each() -> None:
    def value(options: dict[str, object], start: dict[str, int]) -> bytes:
        content = json.loads(records.encode_subscription(sub()))
        content["options"].update(options)
        content["segments"][0]["start"] = start
        return json.dumps(content).encode()

    first = records.decode_subscription(value({"maxBatchMessages": 1}, {"0": 5}))
    second = records.decode_subscription(value({"maxBatchMessages": 1}, {"0": 5}))
    assert first.options is second.options and first.segments[0].start is second.segments[0].start
    assert first.options.max_batch_messages == 1
    for invalid in ({"maxBatchMessages": True}, {"maxBatchMessages": 1.0}, {"isJSONData": 1}):
        with pytest.raises(RecordError):
            records.decode_subscription(value(invalid, {"0": 5}))


def grant(index: SubscriptionIndex, offset: int, namespace: str, topic: str, revoke: bool = False) -> None:
    given = grants.Grant(namespace, topic)
    index.apply(Change(offset, given.key, None if revoke else grants.encode_grant(given, 1)))


def test_the_policy_refuses_what_no_grant_covers_and_a_grant_change_is_decided_at_the_recheck() -> None:
    index = SubscriptionIndex(grants.TopicPolicy(frozenset({"envelopes"})))
    put(index, 0, sub("/alice/T", "orders"), trigger="/alice/T")
    put(index, 1, sub("/alice/S", "envelopes"), trigger="/alice/S")
    put(index, 2, sub("/bob/T", "orders"), trigger="/bob/T")
    assert index.topics() == frozenset() and index.on_topic("orders") == []
    refused = {live.sub.trigger: live.refused for live in index.unreported()}
    assert set(refused) == {"/alice/T", "/alice/S", "/bob/T"}
    assert refused["/alice/T"] == Refusal(403, grants.still_allowed(grants.TopicPolicy(), "/alice/T", "orders", []))
    assert index.unreported() == []  # each handed out once
    grant(index, 3, "alice", "orders")
    grant(index, 4, "alice", "envelopes")  # a service topic stays refused whatever the grants
    assert index.topics() == frozenset()  # decided at the recheck
    assert index.recheck() == [("/alice/T", "orders")]
    assert [live.sub.trigger for live in index.on_topic("orders")] == ["/alice/T"] and index.recheck() == []
    grant(index, 5, "alice", "orders", revoke=True)
    assert index.recheck() == [("/alice/T", "orders")] and index.topics() == frozenset()
    assert [live.sub.trigger for live in index.unreported()] == ["/alice/T"]
    index.apply(Change(6, records.status_key("/alice/T"), records.encode_status(
        Status(403, index.get("/alice/T").refused.message, 0, 7))))  # type: ignore[union-attr]
    assert index.get("/alice/T").reported  # type: ignore[union-attr]


def test_a_fault_refuses_one_version_until_a_newer_one() -> None:
    index = SubscriptionIndex()
    put(index, 0, sub())
    assert index.fault("/guest/T", 0, Refusal(404, "gone")) and not index.fault("/guest/T", 0, Refusal(404, "gone"))
    assert index.topics() == frozenset() and index.get("/guest/T").refused == Refusal(404, "gone")  # type: ignore[union-attr]
    assert not index.fault("/guest/T", 9, Refusal(404, "other version"))
    put(index, 1, sub())
    assert index.topics() == {"orders"} and index.get("/guest/T").refused is None  # type: ignore[union-attr]


def test_a_bad_grant_record_grants_nothing_and_is_skipped() -> None:
    index = SubscriptionIndex(grants.TopicPolicy())
    index.apply(Change(0, b"grant:alice:orders", b"not json"))
    put(index, 1, sub("/alice/T"), trigger="/alice/T")
    assert index.skipped == 1 and index.recheck() == [] and index.topics() == frozenset()


def test_a_policy_decision_is_shared_by_a_namespace_and_topic_until_a_grant_changes() -> None:
    index = SubscriptionIndex(grants.TopicPolicy())
    grant(index, 0, "alice", "orders")
    put(index, 1, sub("/alice/T", "orders"), trigger="/alice/T")
    put(index, 2, sub("/alice/U", "orders"), trigger="/alice/U")
    assert {live.sub.trigger for live in index.on_topic("orders")} == {"/alice/T", "/alice/U"}
    assert index.fault("/alice/U", 2, Refusal(404, "gone"))
    grant(index, 3, "alice", "orders", revoke=True)
    put(index, 4, sub("/alice/V", "orders"), trigger="/alice/V")  # decided under the grants as they are now
    assert index.get("/alice/V").refused is not None  # type: ignore[union-attr]
    grant(index, 5, "alice", "orders")
    index.recheck()
    assert {live.sub.trigger for live in index.on_topic("orders")} == {"/alice/T", "/alice/V"}
    assert index.get("/alice/U").refused == Refusal(404, "gone")  # type: ignore[union-attr]  # a fault holds


# --- loading in bulk: the same table as record by record ------------------------------------------

_TRIGGERS = ("/alice/T", "/alice/U", "/bob/T")
_TOPICS = ("orders", "invoices", "envelopes", "not a topic!")


def _record_value(trigger: str, draw: st.DrawFn) -> bytes:
    """A subscription record as the feed writes it, or one it never would (readers skip those)."""
    kind = draw(st.sampled_from(("valid", "valid", "valid", "paused", "garbage", "version", "mismatch",
                                 "nan", "huge", "surrogate", "float")))
    options = Options(is_json_data=draw(st.booleans()), max_batch_messages=draw(st.sampled_from((1, 10_000))))
    start = {p: draw(st.sampled_from((0, 5))) for p in range(draw(st.integers(1, 2)))}
    value = Subscription(trigger=trigger if kind != "mismatch" else "/alice/Other",
                         topic=draw(st.sampled_from(_TOPICS)), credential="sealed", options=options,
                         start_from="earliest", segments=(Segment(None, start),), created_ms=1,
                         updated_ms=draw(st.sampled_from((1, 2))))
    if kind == "paused":
        value = value.paused_at({0: 7}, 3).unpaused(4).paused_at({0: 9}, 5)
    encoded = records.encode_subscription(value)
    if kind == "garbage":
        return b"\xff not json"
    edits = {"version": (b'"v":1', b'"v":2'), "nan": (b'"created_ms":1', b'"created_ms":NaN'),
             "huge": (b'"created_ms":1', b'"created_ms":' + str(2**70).encode()),  # readable, but only exactly
             "surrogate": (b'"credential":"sealed"', b'"credential":"\\ud800"'),
             "float": (b'"created_ms":1', b'"created_ms":1.0')}
    return encoded.replace(*edits[kind]) if kind in edits else encoded


@st.composite
def _logs(draw: st.DrawFn) -> list[Change]:
    """A subscriptions topic not compacted yet: several versions of few keys, tombstones, statuses,
    grants and revocations, unreadable records, foreign keys."""
    out: list[Change] = []
    for offset in range(draw(st.integers(0, 40))):
        trigger = draw(st.sampled_from(_TRIGGERS))
        what = draw(st.sampled_from(("sub", "sub", "sub", "delete", "status", "status-delete", "grant",
                                     "revoke", "bad-grant", "foreign")))
        if what == "sub":
            key, value = records.subscription_key(trigger), _record_value(trigger, draw)
        elif what == "delete":
            key, value = records.subscription_key(trigger), None
        elif what == "status":
            key = records.status_key(trigger)
            value = draw(st.sampled_from((
                records.encode_status(Status(404, records.disabled_message(404), draw(st.integers(0, 40)), 5)),
                records.encode_status(records.no_rule_notice(draw(st.integers(0, 40)), 6)), b"[]")))
        elif what == "status-delete":
            key, value = records.status_key(trigger), None
        elif what in ("grant", "revoke"):
            given = grants.Grant(draw(st.sampled_from(("alice", "bob"))), draw(st.sampled_from(_TOPICS[:2])))
            key, value = given.key, None if what == "revoke" else grants.encode_grant(given, 1)
        elif what == "bad-grant":
            key, value = grants.Grant("alice", "orders").key, b"not json"
        else:
            key, value = draw(st.sampled_from((b"other", None))), b"x"
        out.append(Change(offset, key, value))
    return out


def _table(index: SubscriptionIndex) -> dict[str, object]:
    """All that the router and the read API see of an index."""
    return {"triggers": {t: index.get(t) for t in _TRIGGERS}, "topics": index.topics(),
            "on_topic": {t: sorted(live.sub.trigger for live in index.on_topic(t)) for t in _TOPICS},
            "grants": {ns: sorted(map(str, index.grants_of(ns))) for ns in ("alice", "bob")},
            "unreported": sorted(live.sub.trigger for live in index.unreported()),
            "applied": index.applied, "len": len(index)}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=_logs(), cuts=st.lists(st.integers(0, 40), max_size=4))
def test_loading_reads_whole_leaves_the_table_record_by_record_leaves(log: list[Change], cuts: list[int]) -> None:
    """``load`` (the router's load: reads whole, records replaced later in a read not decoded, orjson)
    against ``apply`` of every record in turn with the stdlib's json alone."""
    policy = grants.TopicPolicy(frozenset({"envelopes"}))
    plain = SubscriptionIndex(policy)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(records, "_fast_loads", None)
        for change in log:
            plain.apply(change)
        plain.recheck()
    bulk = SubscriptionIndex(policy)
    bounds = sorted({0, len(log), *(c for c in cuts if c < len(log))})
    for start, stop in itertools.pairwise(bounds):
        bulk.load(log[start:stop])
    bulk.recheck()
    assert _table(bulk) == _table(plain)


def test_a_replaced_record_is_not_decoded_but_an_unreadable_last_one_leaves_the_one_before() -> None:
    index = SubscriptionIndex()
    key = records.subscription_key("/guest/T")
    index.load([Change(0, key, b"never decoded"), Change(1, key, records.encode_subscription(sub(topic="a")))])
    assert index.skipped == 0 and index.get("/guest/T").sub.topic == "a"  # type: ignore[union-attr]
    index.load([Change(2, key, records.encode_subscription(sub(topic="b"))), Change(3, key, b"unreadable"),
                Change(4, b"other", None)])
    live = index.get("/guest/T")
    assert index.skipped == 1 and live is not None and live.sub.topic == "b" and live.version == 2
    assert live.sub.segments[0].origin == 2 and index.applied == 4
