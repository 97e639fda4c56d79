"""The real Firer without Kafka or OpenWhisk: its guarantees (DESIGN.md section 5), in seconds.

The Firer gets an in-memory group consumer (``FakeConsumer``, made by ``FakeBroker.factory``)
and a function-backed trigger client (``Triggers``). The broker keeps the records and the
group's committed offsets, so a second Firer on it sees what a restarted process would. Tests
wait on conditions, never on fixed sleeps; a "crash" is the event loop ending under a running
Firer (every task cancelled, no drain, no final commit).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

import pytest
from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from consumer.firer import MEMBERSHIP_FRESH_S, Firer
from consumer.kafka_edge import CommitRejected, Membership
from consumer.kafka_shared import KafkaUnavailable, Offsets, RebalanceCallback, Record, ReleaseCallback
from consumer.metrics import FirerMetrics
from consumer.offsets import encode
from consumer.outcomes import Attempt
from consumer.settings import Settings
from messaging_lib import envelope, topics
from messaging_lib.credentials import Sealer, generate_key
from messaging_lib.kafka_config import KafkaSettings

pytestmark = pytest.mark.timeout(60)

TOPIC = "trigger-messages"
DEAD = "dead-letters"
APIHOST = "https://ow.example"
API_KEY = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:" + "a" * 64
SEALING_KEY = generate_key()
SEALER = Sealer([SEALING_KEY])
GUEST = SEALER.seal(API_KEY, ["/guest/*"])


def settings(**changes: object) -> Settings:
    base = Settings(roles="firer", sealing_keys=SEALING_KEY, openwhisk_apihost=APIHOST,
                    trigger_messages_topic=TOPIC, dead_letter_topic=DEAD, commit_interval_s=0.01,
                    shutdown_timeout_s=5.0, retry_initial_backoff_s=0.001, retry_max_backoff_s=0.002,
                    kafka=KafkaSettings(bootstrap_servers=("unused:9092",)))
    return replace(base, **changes)  # type: ignore[arg-type]


# --- fakes -------------------------------------------------------------------------------------


class FakeConsumer:
    """One group member: assignment, positions, pause; rebalances happen inside ``poll`` as in
    kafka-python, whose callbacks run before the records of that poll are handed back."""

    def __init__(self, broker: FakeBroker, on_assigned: RebalanceCallback, on_revoked: RebalanceCallback,
                 on_lost: RebalanceCallback, on_committed: Callable[[Offsets], None]) -> None:
        self.broker, self._on_assigned, self._on_revoked = broker, on_assigned, on_revoked
        self._on_lost, self._on_committed = on_lost, on_committed
        self.member = Membership(valid=True, reachable=True, rebalancing=False)
        self.assignment: list[TopicPartition] = []
        self.position: dict[TopicPartition, int] = {}
        self.pauses: list[bool] = []
        self.paused = False
        self.polls = 0
        self.in_poll = False
        self.closed = False
        self.poll_failures = 0  # so many next polls raise KafkaUnavailable (Kafka unreachable)
        self._rebalances: list[tuple[str, list[TopicPartition]]] = []
        self.released: list[concurrent.futures.Future[None] | None] = []  # what each revoke handed back

    def assign(self, partitions: list[TopicPartition]) -> None:
        self._rebalances.append(("assign", partitions))

    def revoke(self, partitions: list[TopicPartition]) -> None:
        self._rebalances.append(("revoke", partitions))

    def lose(self) -> None:
        """Fenced: kafka-python calls on_partitions_lost with everything at the next poll."""
        self._rebalances.append(("lose", list(self.assignment)))

    def membership(self) -> Membership:
        return self.member

    async def start(self) -> list[str]:
        self.assign(list(self.broker.records))
        return []

    async def poll(self, timeout_ms: int, max_records: int) -> list[Record]:
        self.polls += 1
        if self.poll_failures:
            self.poll_failures -= 1
            raise KafkaUnavailable("poll failed: KafkaConnectionError: 111 ECONNREFUSED")
        rebalances, self._rebalances = self._rebalances, []
        for kind, partitions in rebalances:
            if kind == "assign":
                self.assignment += partitions
                for tp in partitions:
                    self.position[tp] = self.broker.committed.get(tp, 0)
                self._on_assigned(partitions)
                self._on_committed({tp: (self.broker.committed[tp], self.broker.metadata.get(tp, ""))
                                    for tp in partitions if tp in self.broker.committed})
            elif kind == "lose":
                self._on_lost(partitions)
                self.assignment = [tp for tp in self.assignment if tp not in partitions]
            else:
                self.released.append(self._on_revoked(partitions))
                self.assignment = [tp for tp in self.assignment if tp not in partitions]
        self.in_poll = True
        await asyncio.sleep(0.001)  # the poll's wait; the handed-over callbacks run first
        self.in_poll = False
        if self.paused:
            return []
        found: list[Record] = []
        for tp in self.assignment:
            taken = self.broker.records[tp][self.position[tp]:][:max_records - len(found)]
            self.position[tp] += len(taken)
            found += taken
        return found

    async def pause(self, pause: bool) -> None:
        await asyncio.sleep(0)  # a call to the consumer thread: the fires taken before it start meanwhile
        self.pauses.append(pause)
        self.paused = pause

    async def commit(self, offsets: Offsets) -> None:
        self.broker.commit_attempts.append(dict(offsets))
        if self.broker.commit_gate is not None:
            await self.broker.commit_gate.wait()  # the broker has not answered yet
        if self.broker.commit_failures:
            self.broker.commit_failures -= 1
            raise CommitRejected(self.broker.commit_refusal, "commit refused")
        self.broker.committed.update({tp: offset for tp, (offset, _) in offsets.items()})
        self.broker.metadata.update({tp: metadata for tp, (_, metadata) in offsets.items()})
        self.broker.commits.append({tp: offset for tp, (offset, _) in offsets.items()})

    async def close(self) -> None:
        self.closed = True


@dataclass
class FakeBroker:
    """The trigger-messages topic and the group's committed offsets, which outlive consumers."""

    partitions: int = 2
    records: dict[TopicPartition, list[Record]] = field(default_factory=dict)
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    metadata: dict[TopicPartition, str] = field(default_factory=dict)  # of the committed offsets
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)  # accepted
    commit_attempts: list[Offsets] = field(default_factory=list)
    commit_failures: int = 0
    commit_refusal: str = "RebalanceInProgressError"  # the reason the failures give
    commit_gate: asyncio.Event | None = None  # set: commits wait for it (a broker slow to answer)
    consumers: list[FakeConsumer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.records = {TopicPartition(TOPIC, p): [] for p in range(self.partitions)}

    def factory(self, kafka: KafkaSettings, group_id: str, topics: list[str], on_assigned: RebalanceCallback,
                on_revoked: ReleaseCallback, *, on_lost: RebalanceCallback,
                on_committed: Callable[[Offsets], None], release_hold_s: float, **config: object) -> FakeConsumer:
        assert topics == [TOPIC]
        assert config["session_timeout_ms"] == 10_000 and config["heartbeat_interval_ms"] == 1_000
        consumer = FakeConsumer(self, on_assigned, on_revoked, on_lost, on_committed)
        self.consumers.append(consumer)
        return consumer

    def append(self, partition: int, value: bytes | None, headers: list[tuple[str, bytes]]) -> Record:
        tp = TopicPartition(TOPIC, partition)
        record = Record(TOPIC, partition, len(self.records[tp]), b"key", value, headers, 0)
        self.records[tp].append(record)
        return record

    def message(self, partition: int, trigger: str, n: int = 0, credential: str = GUEST,
                apihost: str | None = None) -> Record:
        env = envelope.Envelope(id=f"id-{n}", source="test", trigger=trigger, credential=credential,
                                apihost=apihost, data={"n": n})
        headers, value = envelope.to_binary(env)
        return self.append(partition, value, headers)

    def end(self, partition: int) -> int:
        return len(self.records[TopicPartition(TOPIC, partition)])


@dataclass(frozen=True)
class Fire:
    trigger: str
    n: int


class Triggers:
    """A function-backed ``TriggerClient``: ``respond`` decides each fire's outcome."""

    def __init__(self, respond: Callable[[Fire], Awaitable[Attempt]] | None = None) -> None:
        self.respond = respond or _accept
        self.calls: list[Fire] = []
        self.fired: list[Fire] = []  # answered 2xx, in completion order

    async def fire(self, apihost: str, namespace: str, name: str, api_key: str, payload: bytes) -> Attempt:
        assert apihost == APIHOST and api_key == API_KEY
        call = Fire(f"/{namespace}/{name}", int(payload.decode().split(":")[1].rstrip("}")))
        self.calls.append(call)
        attempt = await self.respond(call)
        if attempt.status is not None and attempt.status < 300:
            self.fired.append(call)
        return attempt


async def _accept(_: Fire) -> Attempt:
    return Attempt(200)


class Gates:
    """Fires that wait until the test opens their gate (by trigger and n)."""

    def __init__(self, *blocked: Fire) -> None:
        self._gates = {fire: asyncio.Event() for fire in blocked}

    def open(self, fire: Fire) -> None:
        self._gates[fire].set()

    async def respond(self, fire: Fire) -> Attempt:
        gate = self._gates.get(fire)
        if gate is not None:
            await gate.wait()
        return Attempt(200)


class FakeProducer:
    """Records acknowledged writes; the first ``failures`` sends raise ``KafkaUnavailable``."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.sent: list[tuple[str, bytes | None, bytes | None, dict[str, bytes]]] = []

    async def send(self, topic: str, value: bytes | None, key: bytes | None = None,
                   headers: list[tuple[str, bytes]] | None = None) -> tuple[int, int]:
        if self.failures:
            self.failures -= 1
            raise KafkaUnavailable("broker down")
        self.sent.append((topic, value, key, dict(headers or [])))
        return 0, len(self.sent) - 1


@dataclass
class Running:
    firer: Firer
    task: asyncio.Task[None]
    broker: FakeBroker
    triggers: Triggers
    producer: FakeProducer
    registry: CollectorRegistry

    @property
    def consumer(self) -> FakeConsumer:
        return self.broker.consumers[-1]

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    async def stop(self) -> None:
        self.firer.stop()
        await asyncio.wait_for(self.task, 10)


async def start(broker: FakeBroker, triggers: Triggers, producer: FakeProducer | None = None,
                window_left_s: float = 0.0, **changes: object) -> Running:
    registry = CollectorRegistry()
    producer = producer or FakeProducer()
    firer = Firer(settings(**changes), triggers, producer, SEALER, FirerMetrics(registry),  # type: ignore[arg-type]
                  consumer_factory=broker.factory, window_left_s=lambda: window_left_s)
    running = Running(firer, asyncio.ensure_future(firer.run()), broker, triggers, producer, registry)
    await until(lambda: firer.ready and broker.consumers and broker.consumers[-1].polls > 0, "the firer polls")
    return running


async def until(check: Callable[[], object], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


def tp(partition: int) -> TopicPartition:
    return TopicPartition(TOPIC, partition)


# --- the guarantees ----------------------------------------------------------------------------


def test_fires_everything_and_commits_to_the_end() -> None:
    async def scenario() -> None:
        broker = FakeBroker()
        for n in range(20):
            broker.message(n % 2, f"/guest/t{n % 5}", n)
        running = await start(broker, Triggers())
        await until(lambda: broker.committed == {tp(0): 10, tp(1): 10}, "everything committed")
        assert sorted(f.n for f in running.triggers.fired) == list(range(20))
        assert running.metric("firer_messages_fired_total") == 20
        await running.stop()
        assert running.consumer.closed and running.firer.failure is None

    asyncio.run(scenario())


def test_a_crash_redelivers_exactly_what_was_not_committed() -> None:
    """At-least-once: nothing is committed past an unfinished message, but the finished ones
    above it travel in the commit's metadata, so a new firer on the same group fires the
    unfinished message again and skips the ones already fired (issue 12: before, it fired
    everything at or after the committed offset again)."""
    broker = FakeBroker(partitions=1)
    for n in range(6):
        broker.message(0, "/guest/slow" if n == 2 else f"/guest/t{n}", n)
    stuck = Fire("/guest/slow", 2)

    async def before_the_crash() -> list[Fire]:
        triggers = Triggers(Gates(stuck).respond)  # n=2 never answers
        await start(broker, triggers)
        await until(lambda: len(triggers.fired) == 5 and broker.commits, "all but one fired, a commit")
        await until(lambda: broker.committed.get(tp(0)) == 2 and broker.metadata.get(tp(0)) == encode(2, [(3, 6)]),
                    "the commit up to the stuck one, with the finished ones above it")
        return list(triggers.fired)  # returning ends the loop under the running firer: the crash

    fired_before = asyncio.run(before_the_crash())
    assert broker.committed == {tp(0): 2}  # never past n=2, though 3..5 were fired

    async def after_the_restart() -> tuple[list[Fire], float]:
        triggers = Triggers()
        running = await start(broker, triggers)
        await until(lambda: broker.committed == {tp(0): 6}, "everything committed")
        await running.stop()
        return triggers.fired, running.metric("firer_messages_skipped_total")

    fired_after, skipped = asyncio.run(after_the_restart())
    assert sorted(f.n for f in fired_after) == [2]  # re-delivered: only the unfinished one
    assert skipped == 3
    assert {f.n for f in fired_before} | {f.n for f in fired_after} == set(range(6))


def test_order_per_trigger_holds_when_fires_complete_out_of_order() -> None:
    async def scenario() -> None:
        broker = FakeBroker(partitions=1)
        for n in range(8):
            broker.message(0, "/guest/a" if n % 2 == 0 else "/guest/b", n)
        first_a = Fire("/guest/a", 0)
        gates = Gates(first_a)
        running = await start(broker, Triggers(gates.respond))
        await until(lambda: len(running.triggers.fired) == 4, "b fired while a waits")
        assert [f.n for f in running.triggers.fired] == [1, 3, 5, 7]
        assert running.triggers.calls.count(first_a) == 1 and len(running.triggers.calls) == 5  # a's next wait
        await until(lambda: broker.commits, "a commit")
        assert broker.committed[tp(0)] == 0  # b's done offsets wait behind a's first
        gates.open(first_a)
        await until(lambda: broker.committed == {tp(0): 8}, "everything committed")
        fired_a = [f.n for f in running.triggers.fired if f.trigger == "/guest/a"]
        assert fired_a == [0, 2, 4, 6]
        await running.stop()

    asyncio.run(scenario())


def test_a_revoked_partition_fires_nothing_more_and_commits_only_what_was_done() -> None:
    async def scenario() -> None:
        broker = FakeBroker(partitions=2)
        for n in range(4):
            broker.message(0, "/guest/a", n)  # a's queue on partition 0: n=0 blocks, 1..3 wait
        broker.message(0, "/guest/early", 10)  # offset 4: done before the revoke, but after a's head
        broker.message(1, "/guest/other", 20)

        async def respond(fire: Fire) -> Attempt:
            if fire.n == 0:
                await gate.wait()
            return Attempt(200)

        gate = asyncio.Event()
        running = await start(broker, Triggers(respond))
        await until(lambda: {f.n for f in running.triggers.fired} == {10, 20}, "the unblocked ones fired")
        running.consumer.revoke([tp(0)])
        await until(lambda: running.metric("firer_assigned_partitions") == 1, "the revoke is applied")
        polls = running.consumer.polls
        await until(lambda: running.consumer.polls > polls, "polling again: the fire on the wire was given up "
                    "(RELEASE_WIRE_WAIT_S) and the revoked partition's final commit landed")
        await until(lambda: broker.committed.get(tp(0)) == 0, "the revoked partition's final commit")
        gate.set()  # the in-flight fire answers after the revoke
        broker.message(1, "/guest/other", 21)
        await until(lambda: broker.committed.get(tp(1)) == 2, "the kept partition goes on")
        assert [f.n for f in running.triggers.calls if f.trigger == "/guest/a"] == [0]  # 1..3 never fired
        assert broker.committed[tp(0)] == 0 and all(c.get(tp(0), 0) == 0 for c in broker.commits)
        await until(lambda: running.metric("firer_in_flight") == 0, "the abandoned ones are released")
        await running.stop()
        assert broker.committed[tp(0)] == 0  # the new owner starts at a's first message

    asyncio.run(scenario())


def test_backpressure_pauses_at_max_in_flight_and_resumes_at_half() -> None:
    async def scenario() -> None:
        broker = FakeBroker(partitions=1)
        for n in range(10):
            broker.message(0, f"/guest/t{n}", n)
        blocked = [Fire(f"/guest/t{n}", n) for n in range(10)]
        gates = Gates(*blocked)
        running = await start(broker, Triggers(gates.respond), max_in_flight=4)
        consumer = running.consumer
        await until(lambda: consumer.pauses == [True], "paused at the limit")
        assert running.metric("firer_in_flight") == 4 and len(running.triggers.calls) == 4
        gates.open(blocked[0])
        await until(lambda: len(running.triggers.fired) == 1, "one done")
        polls = consumer.polls
        await until(lambda: consumer.polls >= polls + 3, "a few more polls")
        assert consumer.pauses == [True]  # 3 in flight: above half, still paused
        gates.open(blocked[1])
        await until(lambda: consumer.pauses == [True, False], "resumed at half")
        for fire in blocked[2:]:
            gates.open(fire)
        await until(lambda: broker.committed == {tp(0): 10}, "everything committed")
        assert len(running.triggers.calls) == 10
        await running.stop()

    asyncio.run(scenario())


def test_retries_until_the_maximum_age_then_dead_letters_with_headers() -> None:
    async def scenario() -> None:
        broker = FakeBroker(partitions=1)
        record = broker.message(0, "/guest/down", 1)
        broker.message(0, "/guest/up", 2)

        async def respond(fire: Fire) -> Attempt:
            return Attempt(503, "unavailable") if fire.trigger == "/guest/down" else Attempt(200)

        producer = FakeProducer(failures=2)  # the dead-letter write is retried too
        running = await start(broker, Triggers(respond), producer, retry_max_age_s=0.05)
        await until(lambda: broker.committed == {tp(0): 2}, "both finished")
        attempts = [f for f in running.triggers.calls if f.trigger == "/guest/down"]
        assert len(attempts) >= 2
        [(topic, value, key, headers)] = producer.sent
        assert (topic, value, key) == (DEAD, record.value, record.key)
        assert {k: v for k, v in headers.items() if not k.startswith("dl_")} == dict(record.headers)
        assert headers[topics.DL_REASON] == b"retries-exhausted"
        assert headers[topics.DL_STATUS] == b"503"
        assert headers[topics.DL_ATTEMPTS] == str(len(attempts)).encode()
        assert headers[topics.DL_DETAIL] == b"unavailable"
        assert (headers[topics.DL_SOURCE_TOPIC], headers[topics.DL_SOURCE_PARTITION],
                headers[topics.DL_SOURCE_OFFSET]) == (TOPIC.encode(), b"0", b"0")
        assert int(headers[topics.DL_FIRST_ATTEMPT_MS]) <= int(headers[topics.DL_LAST_ATTEMPT_MS])
        assert running.metric("firer_messages_dead_lettered_total", reason="retries-exhausted") == 1
        await running.stop()

    asyncio.run(scenario())


def test_a_refused_trigger_is_reported_and_dead_lettered_at_once() -> None:
    async def scenario() -> None:
        broker = FakeBroker(partitions=1)
        broker.message(0, "/guest/gone", 1)

        async def respond(_: Fire) -> Attempt:
            return Attempt(404, "not found")

        refused: list[tuple[str, str, int]] = []

        async def on_refused(trigger: str, source: str, status: int) -> None:
            refused.append((trigger, source, status))

        registry = CollectorRegistry()
        producer = FakeProducer()
        triggers = Triggers(respond)
        firer = Firer(settings(), triggers, producer, SEALER, FirerMetrics(registry),  # type: ignore[arg-type]
                      on_refused=on_refused, consumer_factory=broker.factory)
        task = asyncio.ensure_future(firer.run())
        await until(lambda: broker.committed == {tp(0): 1}, "dead-lettered and committed")
        assert refused == [("/guest/gone", "test", 404)] and len(triggers.calls) == 1
        assert producer.sent[0][3][topics.DL_REASON] == b"fire-rejected"
        firer.stop()
        await task

    asyncio.run(scenario())


def test_bad_messages_are_dead_lettered_without_stalling_the_partition() -> None:
    async def scenario() -> None:
        broker = FakeBroker(partitions=1)
        broker.append(0, b"not json", [])
        broker.message(0, "/guest/a", 1)
        broker.message(0, "/guest/b", 2, credential=Sealer([generate_key()]).seal(API_KEY, ["/guest/*"]))
        broker.message(0, "/other/c", 3)  # outside the credential's scope
        broker.message(0, "/guest/d", 4, apihost="https://evil.example")
        broker.message(0, "/guest/e", 5, apihost=APIHOST + "/")  # the configured host, written differently
        running = await start(broker, Triggers())
        await until(lambda: broker.committed == {tp(0): 6}, "everything finished")
        assert [f.n for f in running.triggers.fired] == [1, 5]
        reasons = [(headers[topics.DL_REASON], headers[topics.DL_SOURCE_OFFSET])
                   for _, _, _, headers in running.producer.sent]
        assert sorted(reasons) == sorted([(b"not-json", b"0"), (b"bad-credential", b"2"),
                                          (b"credential-out-of-scope", b"3"), (b"apihost-not-allowed", b"4")])
        assert all(headers[topics.DL_ATTEMPTS] == b"0" for _, _, _, headers in running.producer.sent)
        assert all(API_KEY not in str(headers) for _, _, _, headers in running.producer.sent)
        await running.stop()
        assert running.firer.failure is None

    asyncio.run(scenario())


def test_stop_drains_in_flight_fires_then_commits() -> None:
    async def scenario() -> None:
        broker = FakeBroker(partitions=1)
        for n in range(3):
            broker.message(0, f"/guest/t{n}", n)
        blocked = Fire("/guest/t1", 1)
        gates = Gates(blocked)
        running = await start(broker, Triggers(gates.respond))
        await until(lambda: len(running.triggers.fired) == 2, "the others fired")
        running.firer.stop()
        assert not running.firer.ready
        await until(lambda: not running.consumer.in_poll, "the poll under way returned")
        polls = running.consumer.polls
        broker.message(0, "/guest/late", 9)  # produced after the stop: never taken
        gates.open(blocked)
        await asyncio.wait_for(running.task, 10)
        assert broker.committed == {tp(0): 3} and running.consumer.closed
        assert running.consumer.polls == polls
        assert all(f.trigger != "/guest/late" for f in running.triggers.calls)

    asyncio.run(scenario())


def test_stop_gives_up_after_the_shutdown_timeout_and_commits_only_what_was_done() -> None:
    async def scenario() -> None:
        broker = FakeBroker(partitions=1)
        for n in range(3):
            broker.message(0, f"/guest/t{n}", n)
        running = await start(broker, Triggers(Gates(Fire("/guest/t1", 1)).respond), shutdown_timeout_s=0.05)
        await until(lambda: len(running.triggers.fired) == 2, "the others fired")
        running.firer.stop()
        await asyncio.wait_for(running.task, 10)
        assert broker.committed == {tp(0): 1} and running.consumer.closed  # t1 is read again after a restart

    asyncio.run(scenario())


def test_a_failed_commit_is_retried() -> None:
    async def scenario() -> None:
        broker = FakeBroker(partitions=1, commit_failures=3)
        broker.message(0, "/guest/a", 1)
        running = await start(broker, Triggers())
        await until(lambda: broker.committed == {tp(0): 1}, "committed after the failures")
        assert broker.commit_failures == 0
        await running.stop()

    asyncio.run(scenario())


# --- membership and commits (issue 12) ---------------------------------------------------------


def test_a_commit_the_broker_is_slow_to_answer_blocks_neither_polling_nor_firing() -> None:
    async def scenario() -> None:
        broker = FakeBroker(partitions=1, commit_gate=asyncio.Event())
        broker.message(0, "/guest/a", 0)
        running = await start(broker, Triggers())
        await until(lambda: broker.commit_attempts, "a commit sent (and not answered)")
        polls = running.consumer.polls
        broker.message(0, "/guest/b", 1)
        await until(lambda: len(running.triggers.fired) == 2 and running.consumer.polls > polls + 5,
                    "polling and firing go on")
        assert len(broker.commit_attempts) == 1  # one periodic commit in flight at a time
        assert broker.commit_gate is not None
        broker.commit_gate.set()
        await until(lambda: broker.committed == {tp(0): 2}, "the latest offsets committed")
        await running.stop()

    asyncio.run(scenario())


def test_a_poll_that_cannot_reach_kafka_is_retried_and_the_firer_goes_on() -> None:
    """A broker outage: kafka-python 3 raises a refused connection out of poll. Not fatal."""
    async def scenario() -> None:
        broker = FakeBroker(partitions=1)
        broker.message(0, "/guest/a", 0)
        running = await start(broker, Triggers())
        await until(lambda: len(running.triggers.fired) == 1, "the first fire")
        running.consumer.poll_failures = 3
        broker.message(0, "/guest/a", 1)
        await until(lambda: len(running.triggers.fired) == 2 and not running.consumer.poll_failures,
                    "firing again once Kafka answers", timeout_s=10)
        assert not running.task.done()
        await running.stop()

    asyncio.run(scenario())


def test_refused_commits_are_retried_with_the_latest_offsets_and_counted_by_reason() -> None:
    async def scenario() -> None:
        broker = FakeBroker(partitions=1, commit_failures=5)
        broker.message(0, "/guest/a", 0)
        running = await start(broker, Triggers())
        await until(lambda: broker.commit_attempts, "a first attempt")
        broker.message(0, "/guest/a", 1)
        await until(lambda: broker.committed == {tp(0): 2}, "committed once the broker accepts")
        assert broker.commits == [{tp(0): 2}]  # the refused offset 1 was never re-sent once 2 was done
        assert running.metric("firer_commit_failures_total", reason="RebalanceInProgressError") == 5
        await running.stop()

    asyncio.run(scenario())


def test_a_revoked_partition_is_committed_before_the_next_poll_even_when_refused_at_first() -> None:
    async def scenario() -> None:
        broker = FakeBroker(partitions=2)
        broker.message(0, "/guest/a", 0)
        broker.message(0, "/guest/slow", 1)  # offset 1: in flight at the revoke
        broker.message(0, "/guest/b", 2)  # offset 2: done above it, travels in the metadata
        gate = Gates(Fire("/guest/slow", 1))
        broker.commit_failures, broker.commit_refusal = 3, "NotCoordinatorError"  # the coordinator moved
        broker.commit_gate = asyncio.Event()  # nothing lands before the revoke
        running = await start(broker, Triggers(gate.respond))
        await until(lambda: {f.n for f in running.triggers.fired} == {0, 2}, "all but the slow one fired")
        running.consumer.revoke([tp(0)])
        await until(lambda: running.metric("firer_assigned_partitions") == 1, "the revoke is applied")
        polls = running.consumer.polls
        await until(lambda: any(tp(0) in c and len(c) == 1 for c in broker.commit_attempts), "the revoke commit sent")
        assert running.consumer.polls == polls  # no rejoin before the commit lands
        broker.commit_gate.set()
        await until(lambda: running.consumer.polls > polls, "polling again once it landed")
        assert broker.committed[tp(0)] == 1 and broker.metadata[tp(0)] == encode(1, [(2, 3)])
        assert running.metric("firer_commit_failures_total", reason="NotCoordinatorError") == 3
        gate.open(Fire("/guest/slow", 1))
        await running.stop()
        assert broker.committed[tp(0)] == 1  # the abandoned one is the new owner's

    asyncio.run(scenario())


def test_a_revoked_partitions_commit_refused_because_the_client_is_rejoining_does_not_hold_the_poll() -> None:
    """kafka-python 3 refuses every commit while its next join is pending, and only a poll
    completes the join: the release commit is given up at once and the loop polls (a firer
    waited out the whole rebalance timeout, its kept partitions unfired, in tests/e2e/test_churn)."""
    async def scenario() -> None:
        broker = FakeBroker(partitions=2)
        broker.message(0, "/guest/a", 0)
        running = await start(broker, Triggers())
        await until(lambda: broker.committed == {tp(0): 1}, "the first one fired and committed")
        broker.message(0, "/guest/a", 1)
        broker.commit_failures = 1_000_000  # refused until the join completes: never, here
        await until(lambda: len(running.triggers.fired) == 2, "the second one fired, its commit refused")
        running.consumer.revoke([tp(0)])
        await until(lambda: running.metric("firer_assigned_partitions") == 1, "the revoke is applied")
        polls = running.consumer.polls
        await until(lambda: running.consumer.polls > polls + 3, "polling again", timeout_s=10)
        assert broker.committed[tp(0)] == 1  # the new owner repeats offset 1
        broker.commit_failures = 0
        await running.stop()

    asyncio.run(scenario())


def test_the_rebalance_waits_for_a_revoked_partitions_commit_until_it_landed() -> None:
    """kafka-python 3 refuses commits from the moment the next join starts, and starts it as soon
    as the revoke callback returns: the edge holds it on the future the firer hands back, which
    completes only once the revoked partition's commit landed (a restart under load repeated 268
    to 446 of 600 messages when the commit came after the rejoin)."""
    async def scenario() -> None:
        broker, running = await two_partitions_fired()
        broker.message(0, "/guest/a", 2)
        await until(lambda: len(running.triggers.fired) == 3, "the third one fired")
        broker.commit_gate = asyncio.Event()  # the broker has not answered the commit yet
        running.consumer.revoke([tp(0)])
        await until(lambda: running.consumer.released, "the revoke handed over")
        released = running.consumer.released[0]
        assert released is not None
        await until(lambda: any(tp(0) in attempt for attempt in broker.commit_attempts[-2:]), "the release commit sent")
        assert not released.done()  # the rejoin still waits
        broker.commit_gate.set()
        await until(released.done, "the rebalance goes on once the commit landed")
        assert broker.committed[tp(0)] == 2  # past its second message
        await running.stop()

    asyncio.run(scenario())


async def two_partitions_fired() -> tuple[FakeBroker, Running]:
    """A firer holding two partitions, a message fired and committed on each."""
    broker = FakeBroker(partitions=2)
    broker.message(0, "/guest/a", 0)
    broker.message(1, "/guest/b", 1)
    running = await start(broker, Triggers())
    await until(lambda: broker.committed == {tp(0): 1, tp(1): 1}, "both fired and committed")
    return broker, running


def test_a_partition_revoked_and_assigned_back_in_one_rebalance_goes_on_firing() -> None:
    """kafka-python's sticky assignor may revoke every partition and assign some straight back
    (seen with a zombie rejoining): the release's clean-up must not forget the new assignment."""
    async def scenario() -> None:
        broker, running = await two_partitions_fired()
        running.consumer.revoke([tp(0), tp(1)])
        running.consumer.assign([tp(1)])
        await until(lambda: running.metric("firer_assigned_partitions") == 1 and not running.firer._releases,
                    "the rebalance applied and the release done")
        broker.message(1, "/guest/b", 2)
        await until(lambda: broker.committed.get(tp(1)) == 2, "the partition assigned back fires and commits")
        assert [f.n for f in running.triggers.fired] == [0, 1, 2]
        await running.stop()

    asyncio.run(scenario())


def test_a_fenced_member_fires_nothing_until_it_is_a_member_again_and_is_not_ready() -> None:
    async def scenario() -> None:
        broker = FakeBroker(partitions=1)
        broker.message(0, "/guest/a", 0)
        running = await start(broker, Triggers())
        await until(lambda: broker.committed == {tp(0): 1}, "the first one fired")
        assert running.firer.ready
        running.consumer.member = Membership(valid=False, reachable=True, rebalancing=False)  # lease ran out
        assert not running.firer.ready
        broker.message(0, "/guest/a", 1)
        await until(lambda: running.metric("firer_in_flight") == 1, "taken")
        polls = running.consumer.polls
        await until(lambda: running.consumer.polls > polls + 20, "a while")
        assert len(running.triggers.calls) == 1 and running.metric("firer_group_member") == 0
        running.consumer.member = Membership(valid=True, reachable=True, rebalancing=False)  # heartbeats answered
        await until(lambda: broker.committed == {tp(0): 2}, "fired once a member again")
        assert running.firer.ready
        await running.stop()

    asyncio.run(scenario())


def test_lost_partitions_are_dropped_uncommitted_and_never_fired() -> None:
    async def scenario() -> None:
        broker, running = await two_partitions_fired()
        running.consumer.member = Membership(valid=False, reachable=True, rebalancing=False)
        broker.message(0, "/guest/a", 2)
        broker.message(1, "/guest/b", 3)
        await until(lambda: running.metric("firer_in_flight") == 2, "taken, waiting for the membership")
        attempts = len(broker.commit_attempts)
        running.consumer.lose()  # the heartbeat answer: unknown member
        await until(lambda: running.metric("firer_partitions_lost_total") == 2, "everything dropped")
        await until(lambda: running.metric("firer_in_flight") == 0, "the waiting fires abandoned")
        running.consumer.member = Membership(valid=True, reachable=True, rebalancing=False)  # rejoined...
        running.consumer.assign([tp(0), tp(1)])  # ... and got the partitions back, from the commit
        await until(lambda: broker.committed == {tp(0): 2, tp(1): 2}, "fired by the new generation")
        assert [f.n for f in running.triggers.calls].count(2) == 1 and len(broker.commit_attempts) > attempts
        await running.stop()

    asyncio.run(scenario())


def test_rebalances_are_counted_and_timed() -> None:
    async def scenario() -> None:
        broker = FakeBroker(partitions=1)
        running = await start(broker, Triggers())
        running.consumer.member = Membership(valid=True, reachable=True, rebalancing=True)
        await until(lambda: running.metric("firer_rebalances_total") == 1, "a rebalance seen")
        running.consumer.member = Membership(valid=True, reachable=True, rebalancing=False)
        await until(lambda: running.metric("firer_rebalance_seconds_count") == 1, "and its end")
        await running.stop()

    asyncio.run(scenario())


def test_a_fire_on_the_wire_at_the_revoke_is_awaited_and_committed_so_the_new_owner_skips_it() -> None:
    async def scenario() -> None:
        broker = FakeBroker(partitions=1)
        broker.message(0, "/guest/a", 0)
        broker.message(0, "/guest/b", 1)
        wire = Fire("/guest/a", 0)
        gates = Gates(wire)
        running = await start(broker, Triggers(gates.respond))
        await until(lambda: [f.n for f in running.triggers.fired] == [1] and broker.metadata.get(tp(0)),
                    "b fired and committed above a, a on the wire")
        running.consumer.revoke([tp(0)])
        await until(lambda: running.metric("firer_assigned_partitions") == 0, "the revoke is applied")
        gates.open(wire)  # the answer comes after the revoke
        await until(lambda: broker.committed.get(tp(0)) == 2, "the revoked partition committed past a")
        await running.stop()

    asyncio.run(scenario())


# --- fairness: a throttled namespace is paced to what OpenWhisk says, others keep flowing -------

ALICE = SEALER.seal(API_KEY, ["/alice/*"])
BOB = SEALER.seal(API_KEY, ["/bob/*"])


def rate_429(allowed: int) -> Attempt:
    return Attempt(429, f'{{"error":"Too many requests in the last minute (count: {allowed + 1}, '
                        f'allowed: {allowed}).","code":"t"}}')


def test_a_throttled_namespace_fires_at_its_stated_allowance_in_order_while_another_flows() -> None:
    async def scenario() -> None:
        broker = FakeBroker(partitions=2)
        for n in range(30):  # a trigger's messages share a partition (keyed by trigger)
            broker.message(n % 3 % 2, f"/alice/t{n % 3}", n, credential=ALICE)
        for n in range(100, 110):
            broker.message(n % 2, f"/bob/t{n % 2}", n, credential=BOB)
        alice_ok: list[float] = []
        throttled = False

        async def respond(fire: Fire) -> Attempt:
            nonlocal throttled
            if fire.trigger.startswith("/alice/"):
                if not throttled:  # the controller says the limit once: 600/min
                    throttled = True
                    return rate_429(600)
                alice_ok.append(time.monotonic())
            return Attempt(200)

        running = await start(broker, Triggers(respond))
        await until(lambda: len([f for f in running.triggers.fired if f.n >= 100]) == 10, "bob fired")
        bob_done = time.monotonic()
        await until(lambda: broker.committed == {tp(0): 25, tp(1): 15}, "everything committed")
        fired = running.triggers.fired
        assert bob_done < alice_ok[-1]  # bob did not wait behind alice's paced backlog
        for trigger in {f.trigger for f in fired}:
            ns = [f.n for f in fired if f.trigger == trigger]
            assert ns == sorted(ns) and len(ns) == len(set(ns))  # in order, once each
        rate = (len(alice_ok) - 1) / (alice_ok[-1] - alice_ok[0])
        assert 0.8 * 9.5 <= rate <= 1.1 * 10  # 600/min paced a little under it
        assert len([f for f in running.triggers.calls if f.trigger.startswith("/alice/")]) == 31  # one 429 only
        assert running.metric("firer_fires_delayed_by_pacing_total") > 0
        assert running.metric("firer_paced_namespaces") == 1
        await running.stop()

    asyncio.run(scenario())


def test_a_stated_concurrency_caps_the_namespace_and_a_slow_namespace_holds_at_most_its_share() -> None:
    async def scenario() -> None:
        broker = FakeBroker(partitions=1)
        for n in range(12):
            broker.message(0, f"/alice/t{n}", n, credential=ALICE)  # 12 triggers: 12 parallel fires wanted
        for n in range(100, 104):
            broker.message(0, f"/bob/t{n}", n, credential=BOB)
        alice_now = alice_max = 0
        told = False
        release = asyncio.Event()

        async def respond(fire: Fire) -> Attempt:
            nonlocal alice_now, alice_max, told
            if not fire.trigger.startswith("/alice/"):
                return Attempt(200)
            if not told:
                told = True
                return Attempt(429, '{"error":"Too many concurrent requests in flight (count: 3, allowed: 2)."}')
            alice_now += 1
            alice_max = max(alice_max, alice_now)
            await release.wait()  # alice is slow
            alice_now -= 1
            return Attempt(200)

        running = await start(broker, Triggers(respond), max_concurrent_fires=4)
        await until(lambda: len([f for f in running.triggers.fired if f.n >= 100]) == 4, "bob fired past alice")
        assert alice_max <= 2
        release.set()
        await until(lambda: broker.committed == {tp(0): 16}, "everything committed")
        assert alice_max <= 2
        await running.stop()

    asyncio.run(scenario())


def test_the_membership_is_read_per_poll_and_moment_not_per_fire() -> None:
    """Reading it is a few kafka-python calls (issue 15): fires between two polls reuse one reading
    at most MEMBERSHIP_FRESH_S old (a flip is seen by everything polled after it: the test above)."""
    async def scenario() -> None:
        broker = FakeBroker(partitions=1)
        running = await start(broker, Triggers())
        reads = 0
        membership = running.consumer.membership

        def counted() -> Membership:
            nonlocal reads
            reads += 1
            return membership()
        running.consumer.membership = counted  # type: ignore[method-assign]
        polls, started = running.consumer.polls, time.monotonic()
        for n in range(300):
            broker.message(0, f"/guest/t{n}", n)
        await until(lambda: broker.committed == {tp(0): 300}, "everything fired")
        polls, elapsed = running.consumer.polls - polls, time.monotonic() - started
        # per poll: the loop's own reading and the fresh one for what it took; plus one per moment
        assert reads <= 2 * polls + elapsed / MEMBERSHIP_FRESH_S + 5  # was at least 2 per fire
        await running.stop()

    asyncio.run(scenario())
