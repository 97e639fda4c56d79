"""Fires that run nothing (answered 204: no active rule): the pure throttle (``NoRuleTracker``, on an
injected clock), the status notice in the records, the router's index and READ (it never disables),
the firer's hook that writes it, and the real Firer on its fakes (tests/consumer/test_firer.py)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry, Counter

from consumer.firer import Firer
from consumer.metrics import FirerMetrics, LoopCounter
from consumer.no_rule import NoRuleReporter, NoRuleTracker
from consumer.outcomes import Attempt
from consumer.subscriptions import StatusWriter, SubscriptionIndex
from consumer.table import Change
from feed import records
from feed.lifecycle import status_view
from feed.records import Options, Segment, Status, Subscription
from messaging_lib import envelope
from messaging_lib.errors import RecordError
from tests.consumer.test_firer import GUEST, SEALER, FakeBroker, FakeProducer, Fire, Triggers, settings, tp, until

pytestmark = pytest.mark.timeout(60)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- the tracker ---------------------------------------------------------------------------------


def test_logs_and_notes_once_per_trigger_per_interval() -> None:
    clock = Clock()
    tracker = NoRuleTracker(interval_s=300, clock=clock)
    first = tracker.decide("/guest/T", 7)
    assert first.log and first.note
    clock.now += 299
    again = tracker.decide("/guest/T", 7)
    assert not again.log and not again.note
    other = tracker.decide("/guest/U", 7)  # per trigger
    assert other.log and other.note
    clock.now += 1
    later = tracker.decide("/guest/T", 7)
    assert later.log and later.note


def test_a_new_subscription_version_is_noted_at_once_and_plain_triggers_are_never_noted() -> None:
    clock = Clock()
    tracker = NoRuleTracker(interval_s=300, clock=clock)
    tracker.decide("/guest/T", 7)
    updated = tracker.decide("/guest/T", 8)  # an UPDATE cleared the note: note the new version
    assert updated.note and not updated.log
    plain = tracker.decide("/guest/P", None)  # not a kafkaFeed envelope
    assert plain.log and not plain.note


def test_memory_is_bounded_by_an_lru_of_triggers() -> None:
    clock = Clock()
    tracker = NoRuleTracker(interval_s=300, max_triggers=3, clock=clock)
    for name in ("A", "B", "C"):
        tracker.decide(f"/guest/{name}", 1)
    assert not tracker.decide("/guest/A", 1).log  # A becomes the most recent
    tracker.decide("/guest/D", 1)  # pushes out B, the least recently reported
    assert len(tracker) == 3
    assert not tracker.decide("/guest/A", 1).log
    assert tracker.decide("/guest/B", 1).log  # forgotten: reported again (sooner, never never)
    with pytest.raises(ValueError):
        NoRuleTracker(max_triggers=0)


def test_a_note_that_failed_is_tried_again_by_the_next_fire() -> None:
    clock = Clock()
    tracker = NoRuleTracker(interval_s=300, clock=clock)
    assert tracker.decide("/guest/T", 7).note
    tracker.note_failed("/guest/T")
    again = tracker.decide("/guest/T", 7)
    assert again.note and not again.log


def test_the_reporter_counts_every_fire_and_survives_a_kafka_failure(caplog: pytest.LogCaptureFixture) -> None:
    from consumer.kafka_shared import KafkaUnavailable

    registry = CollectorRegistry()
    counter = Counter("fires_without_rule", "test", registry=registry)
    notes: list[tuple[str, str]] = []
    failures = [1]

    async def note(trigger: str, source: str) -> None:
        if failures[0]:
            failures[0] -= 1
            raise KafkaUnavailable("broker down")
        notes.append((trigger, source))

    reporter = NoRuleReporter(counter, note, NoRuleTracker(clock=Clock()))

    async def scenario() -> None:
        for _ in range(3):
            await reporter.report("/guest/T", records.feed_source(4))
    with caplog.at_level(logging.WARNING, logger="consumer.no_rule"):
        asyncio.run(scenario())
    assert registry.get_sample_value("fires_without_rule_total") == 3
    assert notes == [("/guest/T", records.feed_source(4))]  # the failed note was written by the next fire
    ran_no_rule = [r for r in caplog.records if r.getMessage().startswith("a fire ran no rule")]
    assert len(ran_no_rule) == 1 and "wsk rule enable" in ran_no_rule[0].getMessage()
    assert ran_no_rule[0].fields["trigger"] == "/guest/T"  # type: ignore[attr-defined]


def test_a_quiet_fire_costs_no_coroutine_and_a_new_source_is_read_again() -> None:
    """The firer's hot path: within the interval a fire that ran no rule is only counted (``fired``
    returns nothing to await); a new subscription version (another source) is noted at once."""
    clock = Clock()
    counter = LoopCounter("fires_without_rule", "test")
    notes: list[tuple[str, str]] = []

    async def note(trigger: str, source: str) -> None:
        notes.append((trigger, source))

    reporter = NoRuleReporter(counter, note, NoRuleTracker(interval_s=300, clock=clock))

    async def scenario() -> None:
        for source in (records.feed_source(4), records.feed_source(4), records.feed_source(5)):
            if (work := reporter.fired("/guest/T", source)) is not None:
                await work
        clock.now += 299
        assert reporter.fired("/guest/T", records.feed_source(5)) is None
        clock.now += 1
        work = reporter.fired("/guest/T", records.feed_source(5))
        assert work is not None
        await work
    asyncio.run(scenario())
    assert counter.value == 5
    assert notes == [("/guest/T", records.feed_source(4)), ("/guest/T", records.feed_source(5)),
                     ("/guest/T", records.feed_source(5))]


def test_without_a_note_hook_only_the_log_line_is_due() -> None:
    clock = Clock()
    reporter = NoRuleReporter(LoopCounter("fires_without_rule", "test"), None, NoRuleTracker(clock=clock))
    first = reporter.fired("/guest/T", records.feed_source(4))
    assert first is not None
    asyncio.run(first)
    assert reporter.fired("/guest/T", records.feed_source(5)) is None  # nothing to note: no version read


# --- the notice in records, the index, READ and the writer ---------------------------------------


def sub(paused: bool = False) -> Subscription:
    segment = Segment(None, {0: 3}, {0: 5} if paused else None)
    return Subscription(trigger="/guest/T", topic="orders", credential="sealed", options=Options(),
                        start_from="latest", segments=(segment,), created_ms=1, updated_ms=1)


def test_a_notice_round_trips_as_active_and_disabled_records_read_as_before() -> None:
    notice = records.no_rule_notice(7, 99)
    assert records.decode_status(records.encode_status(notice)) == notice
    assert notice.state == records.ACTIVE and not notice.disables and not notice.disables_version(7)
    old = b'{"v":1,"state":"disabled","statusCode":404,"message":"m","config":7,"updated_ms":5}'
    assert records.decode_status(old) == Status(404, "m", 7, 5)
    assert records.decode_status(old).disables_version(7)
    with pytest.raises(RecordError):
        records.decode_status(old.replace(b'"disabled"', b'"paused"'))


def test_a_notice_never_disables_the_subscription_in_the_routers_index() -> None:
    index = SubscriptionIndex()
    index.apply(Change(0, records.subscription_key("/guest/T"), records.encode_subscription(sub())))
    index.apply(Change(1, records.status_key("/guest/T"), records.encode_status(records.no_rule_notice(0, 5))))
    live = index.get("/guest/T")
    assert live is not None and live.status is not None and not live.disabled
    assert [x.sub.trigger for x in index.on_topic("orders")] == ["/guest/T"] and not index.unreported()


def test_read_shows_a_notice_as_the_reason_of_an_active_status_until_a_newer_version() -> None:
    notice = records.no_rule_notice(4, 1_700_000_000_000)
    view = status_view(sub(), 4, notice)
    assert view["active"] is True and view["state"] == records.ACTIVE
    assert view["reason"] == {"kind": "AUTO", "statusCode": 204, "message": records.NO_RULE_MESSAGE}
    assert view["dateChanged"] == 1_700_000_000_000
    assert "reason" not in status_view(sub(), 5, notice)  # an UPDATE (version 5) cleared it
    assert status_view(sub(paused=True), 4, notice)["state"] == records.PAUSED
    assert status_view(sub(), 4, notice, revoked="gone")["state"] == records.DISABLED
    disabled = status_view(sub(), 4, Status(404, records.disabled_message(404), 4, 9))
    assert disabled["active"] is False and disabled["reason"]["statusCode"] == 404


def test_the_writer_notes_router_envelopes_and_never_over_a_disable_it_wrote() -> None:
    written: list[tuple[bytes, bytes]] = []

    async def send(key: bytes, value: bytes) -> None:
        written.append((key, value))

    writer = StatusWriter(send, clock_ms=lambda: 77)

    async def scenario() -> None:
        await writer.on_no_rule("/guest/T", "/guest/messaging/produce")  # not a subscription's envelope
        await writer.on_no_rule("/guest/T", records.feed_source(9))
        await writer.on_refused("/guest/T", records.feed_source(9), 404)
        await writer.on_no_rule("/guest/T", records.feed_source(9))  # a late 204 must not re-enable
        await writer.on_no_rule("/guest/T", records.feed_source(10))
    asyncio.run(scenario())
    statuses = [records.decode_status(value) for _, value in written]
    assert [k for k, _ in written] == [b"status:/guest/T"] * 3
    assert statuses == [records.no_rule_notice(9, 77), Status(404, records.disabled_message(404), 9, 77),
                        records.no_rule_notice(10, 77)]


# --- the real Firer on fakes -------------------------------------------------------------------


def feed_message(broker: FakeBroker, trigger: str, n: int, version: int) -> None:
    env = envelope.Envelope(id=f"id-{n}", source=records.feed_source(version), trigger=trigger, credential=GUEST,
                            data={"n": n})
    headers, value = envelope.to_binary(env)
    broker.append(0, value, headers)


def test_the_firer_counts_fires_that_ran_no_rule_logs_once_and_notes_the_subscription_once(
        caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        broker = FakeBroker(partitions=1)
        for n in range(3):
            feed_message(broker, "/guest/norule", n, version=12)
        feed_message(broker, "/guest/ruled", 3, version=13)

        async def respond(fire: Fire) -> Attempt:
            return Attempt(204 if fire.trigger == "/guest/norule" else 202)

        notes: list[tuple[bytes, bytes]] = []

        async def send(key: bytes, value: bytes) -> None:
            notes.append((key, value))

        registry = CollectorRegistry()
        metrics = FirerMetrics(registry)
        statuses = StatusWriter(send, clock_ms=lambda: 5)
        firer = Firer(settings(), Triggers(respond), FakeProducer(), SEALER, metrics,  # type: ignore[arg-type]
                      on_refused=statuses.on_refused, consumer_factory=broker.factory,
                      no_rule=NoRuleReporter(metrics.fires_without_rule, note=statuses.on_no_rule))
        task = asyncio.ensure_future(firer.run())
        await until(lambda: broker.committed == {tp(0): 4}, "all four fired and committed")
        assert registry.get_sample_value("firer_fires_without_rule_total") == 3
        assert registry.get_sample_value("firer_messages_fired_total") == 4  # a 204 is not retried
        assert [(k, records.decode_status(v)) for k, v in notes] == [
            (b"status:/guest/norule", records.no_rule_notice(12, 5))]
        firer.stop()
        await task

    with caplog.at_level(logging.WARNING, logger="consumer.no_rule"):
        asyncio.run(scenario())
    lines = [r for r in caplog.records if r.getMessage().startswith("a fire ran no rule")]
    assert [r.fields["trigger"] for r in lines] == ["/guest/norule"]  # type: ignore[attr-defined]
