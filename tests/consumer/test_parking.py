"""Parking (issue 13; consumer/parking.py): the pure decisions, the commit-metadata field, and the
real Firer on the in-memory fakes of test_firer.py plus an in-memory park topic, including a
crash while messages are parked."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from consumer.firer import Firer
from consumer.kafka_shared import KafkaUnavailable, Record
from consumer.metrics import FirerMetrics
from consumer.offsets import PartitionOffsets, decode, decode_park, encode
from consumer.outcomes import Attempt
from consumer.parking import (
    H_PARKED_MS,
    H_SOURCE_OFFSET,
    H_TRIGGER,
    ParkedTriggers,
    ParkWrites,
    Window,
    header,
    park_headers,
    park_topic,
    should_park,
    takeable,
)
from tests.consumer.test_firer import (
    ALICE,
    API_KEY,
    BOB,
    SEALER,
    TOPIC,
    FakeBroker,
    Fire,
    Running,
    Triggers,
    rate_429,
    settings,
    tp,
    until,
)

pytestmark = pytest.mark.timeout(60)
PARK = park_topic(TOPIC)


# --- the pure decisions ------------------------------------------------------------------------


def test_the_share_keeps_room_for_a_namespace_not_seen_yet() -> None:
    window = Window(12)
    assert window.share() == 12  # nobody holds anything: a newcomer may borrow it all
    window.hold(("t", 0, 1), "alice")
    assert window.share() == 6  # alice and one share kept free
    window.hold(("t", 0, 2), "bob")
    assert window.share() == 4 and window.held("alice") == 1 and window.total == 2
    window.release(("t", 0, 2))
    window.release(("t", 0, 2))  # twice: ignored
    assert window.share() == 6 and window.held("bob") == 0


def test_taking_back_stops_at_the_share_and_leaves_the_top_of_the_window_to_main_records() -> None:
    window = Window(8)
    for offset in range(4):
        window.hold(("t", 0, offset), "alice")
    assert not window.room("alice")  # at her share (8 // 2)
    window.release(("t", 0, 3))
    assert window.room("alice")
    for offset in range(10, 14):
        window.hold(("t", 0, offset), "bob")
    assert window.total == 7 and window.share() == 2
    assert not window.room("carol")  # 7 of 8 is above three quarters: the rest is for main records


@pytest.mark.parametrize(("trigger_parked", "held", "blocked", "full", "park"), [
    (True, 0, False, False, True),  # order: behind its trigger's parked messages
    (None, 9, True, True, False),  # order: ahead of its trigger's parked messages (read again)
    (False, 3, True, False, False),  # throttled but under its share
    (False, 4, True, False, True),  # throttled at its share
    (False, 4, False, False, False),  # healthy: borrows
    (False, 4, False, True, True),  # healthy but the window is full
    (False, 3, False, True, False),  # under its share: held even when full (backpressure pauses)
])
def test_the_park_decision(trigger_parked: bool | None, held: int, blocked: bool, full: bool, park: bool) -> None:
    assert should_park(trigger_parked=trigger_parked, held=held, share=4, blocked=blocked, full=full) is park


def test_parked_triggers_count_per_partition_and_tell_when_a_namespace_starts_and_stops() -> None:
    parked = ParkedTriggers()
    assert parked.add(0, "/alice/a", 7) is True
    assert parked.add(0, "/alice/a", 9) is False and parked.add(1, "/alice/b", 3) is False
    assert parked.parked(0, "/alice/a") and not parked.parked(1, "/alice/a") and len(parked) == 3
    assert parked.parked(0, "/alice/a", 8) is True  # came after the first parked one: behind it
    assert parked.parked(0, "/alice/a", 5) is None  # came before (read again after a crash): ahead
    assert parked.take(0, "/alice/a") is False
    assert parked.take(0, "/alice/a") is False and not parked.parked(0, "/alice/a")
    assert parked.take(0, "/alice/a") is False  # nothing left: ignored
    assert parked.drop(1) == ["alice"] and len(parked) == 0 and parked.namespaces() == 0


def _parked(offset: int, trigger: str) -> Record:
    return Record(PARK, 0, offset, trigger.encode(), b"{}", park_headers([], trigger, offset, 0), 0)


def test_taking_back_keeps_each_triggers_order_and_lets_other_namespaces_pass() -> None:
    buffer = [_parked(0, "/alice/a"), _parked(1, "/bob/b"), _parked(2, "/alice/c"), _parked(3, "/alice/a"),
              _parked(4, "/bob/b")]
    budget = {"alice": 1, "bob": 5}

    def room(record: Record) -> bool:
        return budget[header(record, H_TRIGGER).split("/")[1]] > 0  # type: ignore[union-attr]

    taken = []
    for record in takeable(buffer, room):
        budget[header(record, H_TRIGGER).split("/")[1]] -= 1  # type: ignore[union-attr]
        taken.append(record.offset)
    assert taken == [0, 1, 4]  # alice's room is one; /alice/a's second waits (order), bob passes


@given(st.lists(st.tuples(st.sampled_from(["/a/x", "/a/y", "/b/z"]), st.booleans()), max_size=40))
def test_taking_back_never_lets_a_triggers_message_pass_an_earlier_one_left_behind(
        buffer_spec: list[tuple[str, bool]]) -> None:
    buffer = [_parked(offset, trigger) for offset, (trigger, _) in enumerate(buffer_spec)]
    allowed = {record.offset: ok for record, (_, ok) in zip(buffer, buffer_spec, strict=True)}
    taken = {r.offset for r in takeable(buffer, lambda r: allowed[r.offset])}
    for record in buffer:
        if record.offset in taken:
            trigger = header(record, H_TRIGGER)
            earlier = [r for r in buffer if r.offset < record.offset and header(r, H_TRIGGER) == trigger]
            assert all(r.offset in taken for r in earlier)


def test_a_queue_gives_up_a_suffix_never_its_head() -> None:
    async def scenario() -> None:
        from consumer.toolkit import KeyedQueues, Supervisor
        gate = asyncio.Event()
        handled: list[int] = []

        async def handle(n: int) -> None:
            await gate.wait()
            handled.append(n)
        queues: KeyedQueues[str, int] = KeyedQueues(Supervisor("t", lambda: None), handle)
        for n in range(6):
            queues.put("k", n)
        await asyncio.sleep(0)
        assert queues.take_tail("k", lambda n: n != 2) == [3, 4, 5]  # stops at the first refused
        assert queues.take_tail("k", lambda n: True) == [1, 2]  # never the head (being handled)
        assert queues.take_tail("none", lambda n: True) == []
        gate.set()
        while "k" in queues:
            await asyncio.sleep(0)
        assert handled == [0]

    asyncio.run(scenario())


def test_park_headers_replace_an_earlier_parkings() -> None:
    first = park_headers([("ce_id", b"1")], "/a/t", 5, 1000)
    again = park_headers(first, "/a/t", 9, 2000)
    assert [k for k, _ in again] == ["ce_id", H_TRIGGER, H_PARKED_MS, H_SOURCE_OFFSET]
    assert dict(again)[H_SOURCE_OFFSET] == b"9"


# --- the commit metadata's park field ----------------------------------------------------------

runs_strategy = st.lists(st.tuples(st.integers(1, 50), st.integers(1, 20)), max_size=30)


def _runs(committed: int, gaps: list[tuple[int, int]]) -> list[tuple[int, int]]:
    runs, at = [], committed
    for gap, length in gaps:
        runs.append((at + gap, at + gap + length))
        at += gap + length
    return runs


@given(st.integers(0, 10**12), runs_strategy, st.one_of(st.none(), st.integers(0, 10**12)))
def test_the_park_position_round_trips_next_to_the_finished_runs(committed: int, gaps: list[tuple[int, int]],
                                                                  park: int | None) -> None:
    runs = _runs(committed, gaps)
    metadata = encode(committed, runs, park=park)
    assert decode_park(metadata) == park
    assert decode(committed, metadata) == runs
    assert encode(committed, runs) == encode(committed, runs, park=None)  # additive: unchanged without it


@given(st.integers(0, 10**6), runs_strategy, st.integers(0, 10**12), st.integers(0, 200))
def test_the_park_position_is_never_left_out_to_fit(committed: int, gaps: list[tuple[int, int]], park: int,
                                                    max_bytes: int) -> None:
    runs = _runs(committed, gaps)
    metadata = encode(committed, runs, max_bytes, park=park)
    assert decode_park(metadata) == park
    kept = decode(committed, metadata)
    assert kept == runs[:len(kept)]  # the runs give way, from the highest down
    assert len(metadata) <= max(max_bytes, len(";p") + 8)


def test_a_tracker_carries_the_park_position_through_resume_and_commit() -> None:
    tracker = PartitionOffsets()
    tracker.resume(10, encode(10, [(12, 13)], park=77))
    assert tracker.park == 77
    assert tracker.commit_point() == (10, encode(10, [(12, 13)], park=77))  # nothing taken: still committable
    tracker.park = 80
    assert decode_park(tracker.commit_point()[1]) == 80  # type: ignore[index]
    assert decode_park("f1:3") is None and decode_park("junk;pzz!") is None and decode(0, "f1:3;p5") == [(3, 4)]


# --- the Firer with a park ---------------------------------------------------------------------


@dataclass
class FakePark:
    """The park topic (and every other produced record) in memory, with a reader of it that
    assigns partitions like ``kafka_edge.PartitionReader``."""

    partitions: int = 2
    topics: dict[str, dict[int, list[Record]]] = field(default_factory=dict)
    position: dict[TopicPartition, int] = field(default_factory=dict)
    paused: set[TopicPartition] = field(default_factory=set)
    ensured: list[str] = field(default_factory=list)

    def records(self, topic: str, partition: int) -> list[Record]:
        return self.topics.setdefault(topic, {}).setdefault(partition, [])

    async def send(self, topic: str, value: bytes | None, key: bytes | None = None,
                   headers: list[tuple[str, bytes]] | None = None, partition: int | None = None) -> tuple[int, int]:
        await asyncio.sleep(0)
        log = self.records(topic, partition or 0)
        log.append(Record(topic, partition or 0, len(log), key, value, list(headers or []), 0))
        return partition or 0, len(log) - 1

    # the reader
    def reader(self) -> FakePark:
        self.position = {}
        self.paused = set()
        return self

    async def ensure_topic(self, topic: str, like: str) -> None:
        assert like == TOPIC
        self.ensured.append(topic)

    async def add(self, positions: dict[TopicPartition, int | None]) -> dict[TopicPartition, int]:
        for p, offset in positions.items():
            self.position[p] = offset or 0
        return {p: len(self.records(p.topic, p.partition)) for p in positions}

    async def seek(self, positions: dict[TopicPartition, int | None]) -> None:
        for p, offset in positions.items():
            self.position[p] = offset or 0

    async def position_of(self, p: TopicPartition) -> int:
        return self.position[p]

    async def remove(self, partitions: list[TopicPartition]) -> None:
        for p in partitions:
            self.position.pop(p, None)

    async def pause(self, partitions: list[TopicPartition], pause: bool) -> None:
        (self.paused.update if pause else self.paused.difference_update)(partitions)

    async def poll(self, timeout_ms: int, max_records: int) -> list[Record]:
        await asyncio.sleep(0.001)
        found: list[Record] = []
        for p in list(self.position):
            if p in self.paused:
                continue
            taken = self.records(p.topic, p.partition)[self.position[p]:][:max_records - len(found)]
            self.position[p] += len(taken)
            found += taken
        return found

    async def close(self) -> None:
        pass


class _Reader:
    """FakePark's reader under the ParkReader names (``position`` is a field of FakePark)."""

    def __init__(self, park: FakePark) -> None:
        self.park = park.reader()
        for name in ("ensure_topic", "add", "seek", "remove", "pause", "poll", "close"):
            setattr(self, name, getattr(self.park, name))

    async def position(self, p: TopicPartition) -> int:
        return await self.park.position_of(p)


async def start_parking(broker: FakeBroker, triggers: Triggers, park: FakePark, window_left_s: float = 0.0,
                        **changes: object) -> Running:
    registry = CollectorRegistry()
    firer = Firer(settings(**changes), triggers, park, SEALER, FirerMetrics(registry),  # type: ignore[arg-type]
                  consumer_factory=broker.factory, window_left_s=lambda: window_left_s,
                  park_reader=_Reader(park))  # type: ignore[arg-type]
    running = Running(firer, asyncio.ensure_future(firer.run()), broker, triggers, park, registry)  # type: ignore[arg-type]
    await until(lambda: firer.ready and broker.consumers and broker.consumers[-1].polls > 0, "the firer polls")
    return running


def _in_order(fires: list[Fire]) -> bool:
    by_trigger: dict[str, list[int]] = {}
    for fire in fires:
        by_trigger.setdefault(fire.trigger, []).append(fire.n)
    return all(ns == sorted(ns) for ns in by_trigger.values())


def _alice_then_bob(broker: FakeBroker, alice: int, bob: int) -> None:
    for n in range(alice):  # a trigger's messages share a partition (keyed by trigger)
        broker.message(n % 3 % 2, f"/alice/t{n % 3}", n, credential=ALICE)
    for n in range(1000, 1000 + bob):
        broker.message(n % 2, f"/bob/t{n % 2}", n, credential=BOB)


def test_a_throttled_backlog_is_parked_so_another_namespace_fires_at_once_and_nothing_is_lost() -> None:
    """The window (20) is far below alice's backlog (300, throttled to 6,000/min): without parking
    bob waits for most of alice's backlog; with it bob fires while alice is still being paced,
    and alice fires every message once, in order per trigger, and everything is committed."""
    async def scenario() -> None:
        broker, park = FakeBroker(partitions=2), FakePark()
        _alice_then_bob(broker, 300, 10)
        told = False

        async def respond(fire: Fire) -> Attempt:
            nonlocal told
            if fire.trigger.startswith("/alice/") and not told:
                told = True
                return rate_429(6000)
            return Attempt(200)

        running = await start_parking(broker, Triggers(respond), park, max_in_flight=20)
        fired = running.triggers.fired
        await until(lambda: len([f for f in fired if f.n >= 1000]) == 10, "bob fired")
        alice_before_bob = len([f for f in fired if f.n < 1000])
        assert alice_before_bob < 150, alice_before_bob  # bob did not wait behind alice's backlog
        await until(lambda: broker.committed == {tp(0): 205, tp(1): 105}, "everything committed", timeout_s=30)
        await until(lambda: len([f for f in fired if f.n < 1000]) == 300, "alice fired", timeout_s=30)
        assert sorted(f.n for f in fired) == list(range(300)) + list(range(1000, 1010))  # once each
        assert _in_order(fired)
        assert running.metric("firer_messages_parked_total") > 0 and park.ensured == [PARK]
        assert len(park.records(PARK, 0)) + len(park.records(PARK, 1)) == running.metric(
            "firer_messages_parked_total")
        assert running.metric("firer_messages_dead_lettered_total", reason="retries-exhausted") == 0
        await until(lambda: running.metric("firer_parked_messages") == 0, "nothing parked any more")
        assert running.metric("firer_parked_seconds_count") == running.metric("firer_messages_parked_total")
        await until(lambda: decode_park(broker.metadata.get(tp(0), "")) == len(park.records(PARK, 0)),
                    "the park position committed with the main partition")
        await running.stop()

    asyncio.run(scenario())


def test_a_crash_while_messages_are_parked_loses_nothing_and_keeps_order() -> None:
    """alice's fires hang after the first 429, so her backlog is parked; the process dies. The
    next one rebuilds the parked triggers from the committed park position before any main
    record, parks re-read main records of those triggers behind them, and fires everything."""
    broker, park = FakeBroker(partitions=2), FakePark()
    _alice_then_bob(broker, 120, 6)

    async def before_the_crash() -> None:
        hang = asyncio.Event()
        told = False

        async def respond(fire: Fire) -> Attempt:
            nonlocal told
            if fire.trigger.startswith("/alice/"):
                if not told:
                    told = True
                    return rate_429(6000)
                await hang.wait()  # never answers: alice is stuck
            return Attempt(200)

        running = await start_parking(broker, Triggers(respond), park, max_in_flight=20)
        await until(lambda: len([f for f in running.triggers.fired if f.n >= 1000]) == 6, "bob fired")
        await until(lambda: running.metric("firer_messages_parked_total") >= 60, "alice parked")
        await until(lambda: all(decode_park(broker.metadata.get(tp(p), "")) is not None for p in (0, 1))
                    and broker.committed.get(tp(1)) == 43 and decode(broker.committed[tp(0)], broker.metadata[tp(0)]),
                    "commits past parked messages (or with them as finished offsets), with the park position")

    asyncio.run(before_the_crash())  # returning ends the loop under the running firer: the crash
    parked_before = len(park.records(PARK, 0)) + len(park.records(PARK, 1))

    async def after_the_restart() -> list[Fire]:
        running = await start_parking(broker, Triggers(), park, max_in_flight=20)
        await until(lambda: broker.committed == {tp(0): 83, tp(1): 43}, "everything committed", timeout_s=30)
        await until(lambda: {f.n for f in running.triggers.fired} >= set(range(120)), "alice fired", timeout_s=30)
        await running.stop()
        return running.triggers.fired

    fired = asyncio.run(after_the_restart())
    by_trigger = {t: [f.n for f in fired if f.trigger == t] for t in {f.trigger for f in fired}}
    assert _in_order(fired), by_trigger  # re-parked copies stay behind the parked ones: no overtaking
    assert parked_before > 0


CAROL = SEALER.seal(API_KEY, ["/carol/*"])


def test_two_namespaces_held_to_the_end_of_their_window_never_keep_the_partitions_paused() -> None:
    """alice and carol are both over their per-minute limit (429s their own fires explain, so each
    holds until its window ends, here 60 s away) with backlogs far over the window (20). Each
    keeps its share (20 // 3 = 6) in the window, waiting for its window to end: together 12, more
    than the half of the window at which backpressure used to resume. Their backlog pauses the
    partitions once; they must resume at once (the rest of the backlog goes to the park), so
    bob's messages behind it fire within seconds, not when alice's and carol's windows end."""
    async def scenario() -> None:
        broker, park = FakeBroker(partitions=2), FakePark()
        for n in range(120):  # a trigger's messages share a partition (keyed by trigger)
            namespace, credential = ("alice", ALICE) if n % 2 else ("carol", CAROL)
            broker.message(n % 3 % 2, f"/{namespace}/t{n % 3}", n, credential=credential)
        for n in range(1000, 1004):
            broker.message(n % 2, f"/bob/t{n % 2}", n, credential=BOB)

        async def respond(fire: Fire) -> Attempt:
            return Attempt(200) if fire.trigger.startswith("/bob/") else rate_429(4)

        running = await start_parking(broker, Triggers(respond), park, window_left_s=60.0, max_in_flight=20)
        await until(lambda: len([f for f in running.triggers.fired if f.n >= 1000]) == 4,
                    "bob fired while alice and carol wait for their windows to end", timeout_s=5)
        assert running.metric("firer_messages_parked_total") > 0
        refused = [f for f in running.triggers.calls if not f.trigger.startswith("/bob/")]
        assert len(refused) <= 6  # one 429 per trigger, then each holds for its window (no retries meanwhile)
        # the loop ends under the running firer (their windows are a minute away)

    asyncio.run(scenario())


@dataclass
class SlowPark(FakePark):
    """A park whose reads take ``read_s``: the firer's rounds of evictions (after each read) come seldom."""

    read_s: float = 0.0
    reads: int = 0

    async def poll(self, timeout_ms: int, max_records: int) -> list[Record]:
        self.reads += 1
        await asyncio.sleep(self.read_s)
        return await super().poll(timeout_ms, max_records)


def test_a_trigger_that_starts_parking_takes_its_queued_messages_along() -> None:
    """alice took 30 messages (window 40, her share 20) before her first 429 (held for the
    minute). Her next messages are parked; each trigger's first parked message takes that
    trigger's queue along, so she holds her triggers' heads only. Left in the window they would
    be predecessors of parked messages (never movable again) and keep her over her share until
    her minute ended. Nor does she take parked messages back while she may not fire: the window
    stays free for reading (and parking) what is ahead of the others' messages."""
    async def scenario() -> None:
        broker, park = FakeBroker(partitions=1), SlowPark()
        for n in range(30):
            broker.message(0, f"/alice/t{n % 3}", n, credential=ALICE)

        async def respond(fire: Fire) -> Attempt:
            park.read_s = 2.0  # from now on the eviction rounds do not help
            await asyncio.sleep(0.05)
            return rate_429(4)

        running = await start_parking(broker, Triggers(respond), park, window_left_s=60.0, max_in_flight=40)
        await until(lambda: running.metric("firer_paced_namespaces") == 1 and running.metric("firer_in_flight") == 30,
                    "alice throttled, holding 30")
        for n in range(30, 60):
            broker.message(0, f"/alice/t{n % 3}", n, credential=ALICE)
        await until(lambda: running.metric("firer_messages_parked_total") >= 10, "alice's next messages parked")
        await until(lambda: running.metric("firer_in_flight") <= 3, "alice holds her triggers' heads only",
                    timeout_s=1.5)
        park.read_s, reads = 0.0, park.reads
        await until(lambda: park.reads >= reads + 20, "the park read again and again")
        assert running.metric("firer_in_flight") <= 3  # held to her minute's end: nothing taken back meanwhile
        for trigger in ("/alice/t0", "/alice/t1", "/alice/t2"):  # each trigger's parked in its order
            offsets = [int(header(r, H_SOURCE_OFFSET) or -1) for r in park.records(PARK, 0)
                       if header(r, H_TRIGGER) == trigger]
            assert offsets == sorted(offsets) and len(offsets) >= 9, (trigger, offsets)

    asyncio.run(scenario())


def test_failed_park_writes_come_back_in_their_triggers_order_once_every_earlier_write_settled() -> None:
    writes: ParkWrites[str] = ParkWrites()
    for offset in (3, 5, 8):
        writes.start(0, "/a/t", offset)
    writes.start(0, "/a/u", 4)
    assert writes.settle(0, "/a/t", 5, "m5") == []  # 3 is on its way: it may fail too, and goes first
    assert writes.before(0, "/a/t", 8) and writes.before(0, "/a/t", 6) and not writes.before(0, "/a/t", 3)
    assert writes.before(0, "/a/u", 9) and not writes.before(0, "/a/u", 4)  # per trigger
    assert writes.settle(0, "/a/t", 3, "m3") == ["m3", "m5"]
    assert writes.before(0, "/a/t", 9)  # 8 still on its way
    assert writes.settle(0, "/a/t", 8) == [] and not writes.before(0, "/a/t", 9)
    writes.drop(0)
    assert writes.settle(0, "/a/u", 4, "m4") == ["m4"] and len(writes) == 0  # its partition left: it alone


@dataclass
class FailingPark(FakePark):
    """The first park write fails, after the producer tried a while (later writes land meanwhile)."""

    failed: list[int] = field(default_factory=list)  # the main offsets whose park write failed

    async def send(self, topic: str, value: bytes | None, key: bytes | None = None,
                   headers: list[tuple[str, bytes]] | None = None, partition: int | None = None) -> tuple[int, int]:
        if topic == PARK and not self.failed:
            self.failed.append(int(dict(headers or [])[H_SOURCE_OFFSET]))
            await asyncio.sleep(0.3)
            raise KafkaUnavailable("send to the park failed: KafkaTimeoutError")
        return await super().send(topic, value, key, headers, partition)


def test_a_park_write_that_fails_is_not_sent_again_and_its_message_fires_in_its_triggers_order() -> None:
    """alice is paced (her backlog over the window is parked); the first park write fails after
    later ones of its trigger were acknowledged. Sent again it would land behind them; instead
    its message fires from memory, ahead of its trigger's parked messages, and everything is
    fired once, in order, and committed."""
    async def scenario() -> None:
        broker, park = FakeBroker(partitions=1), FailingPark()
        for n in range(90):
            broker.message(0, f"/alice/t{n % 3}", n, credential=ALICE)
        told = False

        async def respond(fire: Fire) -> Attempt:
            nonlocal told
            if not told:
                told = True
                return rate_429(6000)
            return Attempt(200)

        running = await start_parking(broker, Triggers(respond), park, max_in_flight=10)
        fired = running.triggers.fired
        await until(lambda: len(fired) >= 90 and broker.committed.get(tp(0)) == 90, "everything fired and committed",
                    timeout_s=30)
        await until(lambda: decode_park(broker.metadata.get(tp(0), "")) == len(park.records(PARK, 0)),
                    "the park position committed past every parked message")
        assert sorted(f.n for f in fired) == list(range(90)) and _in_order(fired)
        assert park.failed and park.failed[0] not in [int(header(r, H_SOURCE_OFFSET) or -1)
                                                      for r in park.records(PARK, 0)]  # not sent again
        failed_trigger = f"/alice/t{park.failed[0] % 3}"
        after = [int(header(r, H_SOURCE_OFFSET) or -1) for r in park.records(PARK, 0)
                 if header(r, H_TRIGGER) == failed_trigger and int(header(r, H_SOURCE_OFFSET) or -1) > park.failed[0]]
        assert after, "no later message of its trigger was parked: the test proves nothing"
        await running.stop()

    asyncio.run(scenario())


def test_without_a_park_reader_nothing_is_parked_and_the_window_pauses_as_before() -> None:
    async def scenario() -> None:
        broker = FakeBroker(partitions=1)
        for n in range(40):
            broker.message(0, f"/alice/t{n % 3}", n, credential=ALICE)
        gate = asyncio.Event()

        async def respond(fire: Fire) -> Attempt:
            await gate.wait()
            return Attempt(200)

        registry = CollectorRegistry()
        park = FakePark()
        firer = Firer(settings(max_in_flight=10), Triggers(respond), park, SEALER,  # type: ignore[arg-type]
                      FirerMetrics(registry), consumer_factory=broker.factory)
        task = asyncio.ensure_future(firer.run())
        await until(lambda: broker.consumers and broker.consumers[-1].paused, "paused at the window")
        assert park.topics == {}
        gate.set()
        await until(lambda: broker.committed.get(tp(0)) == 40, "everything committed")
        firer.stop()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())

