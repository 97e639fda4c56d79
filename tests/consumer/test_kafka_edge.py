"""No kafka-python exception escapes the Kafka edge: every public method of every client there
maps the library's errors to ``KafkaUnavailable`` (consumer/kafka_edge.py, ``_unavailable``).

The kafka-python objects under the edge are replaced by stubs whose every call raises a
``KafkaError`` subclass, so each method's error path runs without a broker. A method added to
the edge without a case here fails ``test_every_public_method_is_covered``.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    UnknownTopicOrPartitionError,
)
from kafka.structs import MemberState

from consumer import kafka_edge
from consumer.kafka_edge import ConsumerThread
from consumer.kafka_shared import KafkaUnavailable, Record
from messaging_lib.kafka_config import KafkaSettings

pytestmark = pytest.mark.timeout(30)

SETTINGS = KafkaSettings(bootstrap_servers=("127.0.0.1:1",))
TP = TopicPartition("t", 0)
ERRORS = [KafkaTimeoutError, CommitFailedError, IllegalStateError, KafkaConnectionError,
          UnknownTopicOrPartitionError]


class Raising:
    """A kafka-python client whose every method raises ``error``."""

    def __init__(self, error: type[KafkaError], *_: Any, **__: Any) -> None:
        self._error = error

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def call(*_: Any, **__: Any) -> Any:
            raise self._error(f"{name} failed")
        return call


def _nothing(_: list[TopicPartition]) -> None:
    pass


class RaisingMember(Raising):
    """As ``Raising``, with a group coordinator that is known (a commit is sent, and fails)."""

    class _Coordinator(Raising):
        def coordinator_unknown(self) -> bool:
            return False

    def __init__(self, error: type[KafkaError]) -> None:
        super().__init__(error)
        self._coordinator = self._Coordinator(error)  # the firer's commit goes to the coordinator


def consumer_thread(error: type[KafkaError]) -> ConsumerThread:
    edge = ConsumerThread(SETTINGS, "g", ["t"], _nothing, _nothing)
    edge._consumer = RaisingMember(error)  # type: ignore[assignment]
    return edge


async def maybe(result: object) -> None:
    if inspect.isawaitable(result):
        await result


# (class, method) -> how to call it with the stubs in place
CASES: dict[tuple[type, str], Callable[[type[KafkaError]], Awaitable[object] | object]] = {
    (ConsumerThread, "start"): lambda e: ConsumerThread(SETTINGS, "g", ["t"], _nothing, _nothing).start(),
    (ConsumerThread, "poll"): lambda e: consumer_thread(e).poll(10, 10),
    (ConsumerThread, "pause"): lambda e: consumer_thread(e).pause(True),
    (ConsumerThread, "commit"): lambda e: consumer_thread(e).commit({TP: (1, "")}),
    (ConsumerThread, "close"): lambda e: consumer_thread(e).close(),
}


@pytest.fixture
def raising_constructors(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> type[KafkaError]:
    error: type[KafkaError] = request.param

    def construct(*_: Any, **__: Any) -> Any:
        raise error("cannot connect")

    for name in ("KafkaConsumer", "MemberConsumer", "KafkaAdminClient"):
        monkeypatch.setattr(kafka_edge, name, construct)
    return error


@pytest.mark.parametrize("raising_constructors", ERRORS, indirect=True, ids=lambda e: e.__name__)
@pytest.mark.parametrize("case", list(CASES), ids=lambda c: f"{c[0].__name__}.{c[1]}")
def test_library_errors_come_out_as_kafka_unavailable(case: tuple[type, str],
                                                      raising_constructors: type[KafkaError]) -> None:
    error = raising_constructors

    async def scenario() -> None:
        with pytest.raises(KafkaUnavailable) as info:
            await maybe(CASES[case](error))
        assert isinstance(info.value.__cause__, error)  # the library's error is kept as the cause

    asyncio.run(scenario())


def test_every_public_method_is_covered() -> None:
    public = {(cls, name) for cls in (ConsumerThread,)
              for name, member in vars(cls).items()
              if callable(member) and (not name.startswith("_") or name == "__init__")}
    public -= {(ConsumerThread, "__init__"), (ConsumerThread, "membership")}  # no I/O
    assert public == set(CASES)


def test_a_polls_records_are_the_records_with_one_partition_each() -> None:
    """``_records`` builds what ``Record(...)`` builds (equal, the same repr), sharing the poll's
    ``TopicPartition`` per partition; a record built directly has its own."""
    def raw(partition: int, offset: int, headers: list[tuple[str, bytes]] | None) -> ConsumerRecord:
        return ConsumerRecord("t", partition, -1, offset, 1_700_000_000_000, 0, b"k", b"v", headers, None, 1, 1, 0)
    tp0, tp1 = TopicPartition("t", 0), TopicPartition("t", 1)
    polled = kafka_edge._records({tp0: [raw(0, 5, [("h", b"1")]), raw(0, 6, None)], tp1: [raw(1, 0, [])]})
    at = 1_700_000_000_000
    expected = [Record("t", 0, 5, b"k", b"v", [("h", b"1")], at), Record("t", 0, 6, b"k", b"v", [], at),
                Record("t", 1, 0, b"k", b"v", [], at)]
    assert polled == expected
    assert [repr(r) for r in polled] == [repr(r) for r in expected]
    assert [r.tp for r in polled] == [tp0, tp0, tp1] and polled[0].tp is tp0 and polled[2].tp is tp1
    assert expected[0].tp == tp0 and type(expected[0].tp) is TopicPartition


# --- on a real broker: retained partitions are fetched while a join is pending -------------------


def _group_member(cls: type[KafkaConsumer], kafka: Any, group: str, topic: str, **config: Any) -> KafkaConsumer:
    consumer = cls(bootstrap_servers=kafka.bootstrap, group_id=group, enable_auto_commit=False,
                   auto_offset_reset="earliest", partition_assignment_strategy=[CooperativeStickyAssignor],
                   session_timeout_ms=10_000, heartbeat_interval_ms=1_000, fetch_max_wait_ms=100, **config)
    consumer.subscribe([topic])
    return consumer


def _poll_until(consumers: list[KafkaConsumer], done: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    """Each consumer polled on its own thread, 100 ms at a time, as the firer's consumer thread does."""
    stop = threading.Event()

    def poll(consumer: KafkaConsumer) -> None:
        while not stop.is_set():
            consumer.poll(timeout_ms=100)
    threads = [threading.Thread(target=poll, args=(c,), daemon=True) for c in consumers]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + timeout_s
        while not done():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join()


@pytest.mark.timeout(180)
def test_a_member_keeps_fetching_its_partitions_while_a_join_is_pending(kafka: Any) -> None:
    """kafka-python alone returns nothing from poll() while a JoinGroup is pending (see
    ``MemberConsumer``); here a join is held open by a member that heartbeats but does not poll
    (the broker waits for it up to its max poll interval), and ``MemberConsumer`` still returns
    the records of the partitions it keeps."""
    topic = kafka.create_topic("join", partitions=4)
    group = f"g-{topic}"
    member = _group_member(kafka_edge.MemberConsumer, kafka, group, topic)
    idle = _group_member(KafkaConsumer, kafka, group, topic, max_poll_interval_ms=40_000)
    newcomer: KafkaConsumer | None = None
    stop = threading.Event()
    try:
        _poll_until([member, idle], lambda: len(member.assignment()) == 2 and len(idle.assignment()) == 2 and
                    member._coordinator.state is MemberState.STABLE and idle._coordinator.state is MemberState.STABLE,
                    "two stable members with two partitions each")
        kept = sorted(member.assignment())
        newcomer = _group_member(KafkaConsumer, kafka, group, topic)

        def poll_newcomer() -> None:
            while not stop.is_set():
                newcomer.poll(timeout_ms=100)
        threading.Thread(target=poll_newcomer, daemon=True).start()  # its join starts the rebalance
        _poll_until([member], lambda: member._coordinator.state is MemberState.REBALANCING, "the member's join sent")
        assert len(member.assignment()) == 2
        producer = kafka.producer()
        for tp in kept:
            for n in range(10):
                producer.send(topic, value=b"%d" % n, partition=tp.partition)
        producer.flush()
        producer.close()
        got: list[Any] = []
        deadline = time.monotonic() + 20
        while len(got) < 20 and time.monotonic() < deadline:
            for records in member.poll(timeout_ms=100).values():
                got += records
            assert member._coordinator.state is MemberState.REBALANCING, "the join completed: the test proves nothing"
        assert sorted((r.partition, r.offset) for r in got) == sorted((tp.partition, n) for tp in kept
                                                                       for n in range(10))
        assert kafka_edge.membership_of(member) == kafka_edge.Membership(valid=True, reachable=True,
                                                                         rebalancing=True)
    finally:
        stop.set()
        for consumer in (member, idle, newcomer):
            if consumer is not None:
                consumer.close(autocommit=False, timeout_ms=2000)


@pytest.mark.timeout(240)  # above the 180 s wait below
def test_members_settle_in_a_few_rounds(kafka: Any) -> None:
    """kafka-python sends a new JoinGroup when the last one finished while no poll was waiting for
    it, and the broker starts a new rebalance for a leader's: a ``MemberConsumer`` that gave the
    join only a short slice of each poll started round after round (generation 12 and counting)
    and never settled. Polled as the firer polls, two members settle in the first rounds."""
    topic = kafka.create_topic("settle", partitions=4)
    group = f"g-{topic}"
    members = [_group_member(kafka_edge.MemberConsumer, kafka, group, topic) for _ in range(2)]
    try:
        _poll_until(members, lambda: all(len(m.assignment()) == 2 and m._coordinator.state is MemberState.STABLE
                                         and not m._coordinator.need_rejoin() for m in members),
                    "two members with two partitions each, settled", timeout_s=180)  # slow under load; the
        # generation count below is what tells a settled group from one that keeps rebalancing
        generations = {m._coordinator._generation.generation_id for m in members}
        assert len(generations) == 1 and max(generations) <= 3, generations
    finally:
        for member in members:
            member.close(autocommit=False, timeout_ms=2000)
