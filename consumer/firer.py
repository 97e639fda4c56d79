"""The firer: reads trigger messages and fires their triggers (DESIGN.md section 5).

One asyncio loop owns all mutable state below. Guarantees, and where each is kept:
- at-least-once: an offset is committed only when every message before it in its partition was
  fired or its dead-letter record acknowledged (`PartitionOffsets`); the finished offsets above
  it travel in the commit's metadata and a new owner skips them, so after a crash only what
  finished since the last commit repeats (duplicates, never a loss);
- commits that land: a pipeline (one in flight, the next as soon as it is answered) that never
  blocks the loop, a refused one retried with the latest offsets; a revoked partition is committed
  before the next poll (which rejoins the group); a stop commits everything finished, then leaves;
- no zombies: a fire waits while the member's lease is out (heartbeats unanswered, fenced), and
  lost partitions are dropped uncommitted (`kafka_edge.Membership`);
- order per trigger: one queue per trigger FQN, drained by one task, head first; different
  triggers fire in parallel; a queue and its task vanish when empty, so no per-trigger state
  outlives its messages;
- bounded memory: at most `max_in_flight` messages are taken; beyond that all partitions are
  paused until half of them finished (with parking: half of what blocked namespaces do not hold,
  `parking.WindowBackpressure`);
- nothing dropped: a message leaves only fired or dead-lettered; a bad message (unparsable,
  bad credential, out of scope, host not allowed) is dead-lettered with its reason, never crashes
  the loop, never stalls its partition.
- subscriptions: on 401/403/404 the optional `on_refused` hook (consumer.subscriptions) hears of
  it before the dead-letter write, so the router's subscription can be marked disabled; a fire
  answered 204 (no active rule: nothing ran) goes to `consumer.no_rule` (metric, log, status note);
- fairness (issue 13): concurrent fires are shared by namespace (`consumer.fairness.FairSlots`),
  and a throttled namespace is paced to what its 429 body states (`consumer.pacing`): its fires
  wait for its pace outside any fire slot, so it holds few slots and the others keep firing. A
  429's retry waits for the pace, not a backoff. The in-flight window is shared by namespace
  too: a namespace over its share that is throttled or failing (or over it while the window
  fills) has its messages parked in `<topic>-parked` and taken back as it has room, so its
  backlog never pauses the partitions the others share (`consumer.parking`, with the
  crash-safety argument; the park position travels in the main partition's commit metadata).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from kafka import TopicPartition

from consumer import dead_letters
from consumer.dead_letters import DeadLetter
from consumer.fairness import FairSlots
from consumer.kafka_edge import CommitRejected, ConsumerThread, Membership, PartitionReader
from consumer.kafka_rd import Producer
from consumer.kafka_shared import KafkaUnavailable, Offsets, RebalanceCallback, Record, ReleaseCallback
from consumer.logs import fields
from consumer.metrics import FirerMetrics
from consumer.no_rule import NO_RULE_STATUS, NoRuleReporter
from consumer.offsets import METADATA_MAX_BYTES, PartitionOffsets
from consumer.openwhisk import TriggerClient
from consumer.outcomes import (
    TRIGGER_GONE_STATUSES,
    Attempt,
    RetryPolicy,
    Verdict,
    classify,
    dead_letter_reason,
    decide,
)
from consumer.pacing import Pacer
from consumer.parking import (
    FULL_FRACTION,
    H_TRIGGER,
    PACED_AHEAD_S,
    Parking,
    ParkReader,
    ParkWrites,
    WindowBackpressure,
    header,
    namespace_of,
    parked_seconds,
    source_offset,
)
from consumer.settings import Settings
from consumer.subscriptions import RefusalHook
from consumer.toolkit import (
    WRITE_RETRY,
    KeyedQueues,
    RetryRule,
    Supervisor,
    hand_over,
    sleep_while,
    wait_until,
    write_until_acknowledged,
)
from messaging_lib import envelope
from messaging_lib.credentials import Credential, Sealer
from messaging_lib.errors import BadMessage, Reason
from messaging_lib.kafka_config import KafkaSettings

log = logging.getLogger("consumer.firer")

# One fetch response is held twice (raw and decoded) and glibc keeps the peak, so fetches are kept
# small: 1 MiB is ~1,500 envelopes, plenty for thousands of fires/s, and a larger single record is
# still returned whole by the broker.
FETCH_MAX_BYTES = 1024 * 1024
# A revoked partition's fires already sent are awaited this long before its final commit: their
# outcome is known soon, and each one recorded is one the new owner does not repeat.
RELEASE_WIRE_WAIT_S = 2.0
# The rebalance waits this long for a revoked partition's final commit (kafka_edge ``_Listener``):
# the wire wait, then a commit sent while the member still owns the partition.
RELEASE_HOLD_S = RELEASE_WIRE_WAIT_S + 8.0
# A refused commit is sent again soon (the refusal usually ends with a rebalance): each moment
# without a landed commit is one more moment of fires a crash would repeat.
COMMIT_RETRY = RetryRule(initial_s=0.05, max_s=1.0)
# kafka-python refuses every commit with this while its join is pending (its member state is not
# stable), and only a poll completes the join: a loop that waits for a commit before polling
# again must not wait through it (the group's rebalance would wait for this member meanwhile).
CLIENT_REJOINING = "RebalanceInProgressError"
POLL_RETRY_S = 0.2  # a poll that could not reach Kafka is tried again after this
# The membership (may this member fire?) is read from kafka-python's state, a few of its calls, and
# was the firer's costliest check per fire (issue 15): a reading this fresh is reused by the fires
# in between. Nothing is lost: the lease it guards is most of a session timeout (seconds), the
# reading is renewed after every poll (records taken then fire on a fresh one), and the monotonic
# clock runs while a process is stopped, so a resumed process reads it afresh.
MEMBERSHIP_FRESH_S = 0.01


class GroupConsumer(Protocol):
    """What the firer needs of its group consumer; ``kafka_edge.ConsumerThread`` is the real one,
    tests pass an in-memory fake. Rebalance callbacks may come from another thread."""

    async def start(self) -> list[str]:
        """Subscribe; returns the topics whose partitions are not known yet."""
        ...

    async def poll(self, timeout_ms: int, max_records: int) -> list[Record]: ...

    async def pause(self, pause: bool) -> None:
        """Pause (or resume) every assigned partition."""
        ...

    async def commit(self, offsets: Offsets) -> None:
        """Resolves when the broker accepted the commit; raises ``KafkaUnavailable`` (``CommitRejected``)."""
        ...

    def membership(self) -> Membership:
        """Cheap, from any thread: may this member fire now, does it reach Kafka, is it rebalancing."""
        ...

    async def close(self) -> None: ...


class ConsumerFactory(Protocol):
    """``on_lost``: partitions taken away when fenced (no commit possible); ``on_committed``: the
    committed offset and metadata of newly assigned partitions, before any of their records."""

    def __call__(self, settings: KafkaSettings, group_id: str, topic_names: Sequence[str],
                 on_assigned: RebalanceCallback, on_revoked: ReleaseCallback, *, on_lost: RebalanceCallback,
                 on_committed: Callable[[Offsets], None], release_hold_s: float, **config: object) -> GroupConsumer: ...


@dataclass
class Job:
    """One valid trigger message on its way to OpenWhisk."""

    record: Record
    apihost: str
    namespace: str
    name: str
    api_key: str = field(repr=False)
    payload: bytes = field(repr=False)
    source: str = ""
    trigger: str = field(init=False)  # /namespace/name, built once: read several times per message

    def __post_init__(self) -> None:
        self.trigger = f"/{self.namespace}/{self.name}"


class Firer:
    """The firer's loop. Its edges come in: the trigger client, the producer, and a factory for
    its group consumer (built in ``run``, on the loop), so tests run it on fakes."""

    def __init__(self, settings: Settings, client: TriggerClient, producer: Producer, sealer: Sealer,
                 metrics: FirerMetrics, clock: Callable[[], float] = time.monotonic,
                 on_refused: RefusalHook | None = None, consumer_factory: ConsumerFactory = ConsumerThread,
                 no_rule: NoRuleReporter | None = None,
                 window_left_s: Callable[[], float] | None = None, park_reader: ParkReader | None = None) -> None:
        self.settings = settings
        self._on_refused = on_refused
        self._no_rule = no_rule or NoRuleReporter(metrics.fires_without_rule)
        self._client, self._producer, self._metrics, self._clock = client, producer, metrics, clock
        self._consumer_factory = consumer_factory
        self._window_left_s = window_left_s or _window_left_s  # OpenWhisk's throttle window, by the wall clock
        # Opening a token is the firer's main CPU cost, and a trigger's messages repeat its token.
        self._authorize = sealer.authorize  # it caches the opening; expiry is checked on every call
        self._policy = RetryPolicy(settings.retry_initial_backoff_s, settings.retry_max_backoff_s,
                                   settings.retry_max_age_s)
        self._pacer = Pacer()
        # concurrent fires shared by namespace, each capped at the concurrency OpenWhisk stated for it
        self._fire_slots = FairSlots(settings.max_concurrent_fires, self._pacer.concurrency)
        self._offsets: dict[TopicPartition, PartitionOffsets] = {}  # one per assigned partition
        self._active: Counter[TopicPartition] = Counter()  # messages not finished, per partition
        self._supervisor = Supervisor("firer", self.stop)
        self._queues: KeyedQueues[str, Job] = KeyedQueues(self._supervisor, self._fire, self._abandon)
        self._backpressure = WindowBackpressure(settings.max_in_flight)
        self._in_flight = 0
        self._stopping = asyncio.Event()
        self._consumer: GroupConsumer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self.last_poll = clock()
        self._finished = asyncio.Event()  # something finished since the last commit was sent: commit again
        self._landed: dict[TopicPartition, tuple[int, str]] = {}  # the last commit the broker accepted
        self._releases: set[asyncio.Task[None]] = set()  # commits of revoked partitions, awaited before polling
        self._releasing: dict[TopicPartition, PartitionOffsets] = {}  # revoked, their fires on the wire awaited
        self._on_wire: dict[TopicPartition, int] = {}  # fire requests sent and not answered, per partition
        self._metadata_max_bytes = METADATA_MAX_BYTES
        self._rebalance_started: float | None = None
        self._poll_failing = False  # the last poll could not reach Kafka
        self._member_valid, self._member_read_until = False, 0.0  # the membership reading fires reuse
        self._init_parking(park_reader)

    @property
    def ready(self) -> bool:
        """Readiness: started, not stopping, and a member of the group that reaches Kafka."""
        if not self._started or self._stopping.is_set() or self._consumer is None:
            return False
        member = self._consumer.membership()
        return member.valid and member.reachable

    # --- the main loop ---

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._consumer = self._consumer_factory(
            self.settings.kafka, self.settings.firer_group, [self.settings.trigger_messages_topic],
            self._on_assigned, self._on_revoked, on_lost=self._on_lost, on_committed=self._on_committed,
            max_poll_records=1000, fetch_max_wait_ms=100, max_partition_fetch_bytes=FETCH_MAX_BYTES,
            fetch_max_bytes=FETCH_MAX_BYTES, release_hold_s=RELEASE_HOLD_S,
            **self.settings.membership("firer"))  # cooperative rebalancing: the edge's default
        if await self._consumer.start():
            log.warning("the topic has no partitions yet (does it exist?): waiting for it",
                        extra=fields(topic=self.settings.trigger_messages_topic))
        self._started = True
        self._supervisor.spawn(self._drain_parks())
        log.info("firer started", extra=fields(topic=self.settings.trigger_messages_topic,
                                               group=self.settings.firer_group))
        self._supervisor.spawn(self._commit_continuously())
        while not self._stopping.is_set():
            await self._apply_backpressure()
            await self._finish_releases()
            room = max(1, self.settings.max_in_flight - self._in_flight)
            records = await self._poll(max_records=min(1000, room))
            self._member_read_until = 0.0  # what was just polled fires on a fresh membership reading
            for record in records:
                self._accept(record)
            self.last_poll = now = self._clock()
            self._watch_membership(now)
        await self._shutdown()

    @property
    def failure(self) -> BaseException | None:
        """The error of the task that failed and stopped the firer, if any."""
        return self._supervisor.failure

    def stop(self) -> None:
        """Stop taking messages; run() then drains until the shutdown timeout and commits."""
        self._stopping.set()

    async def _shutdown(self) -> None:
        """Drain, commit everything finished, then leave the group (``close``): a clean stop
        repeats nothing. The consumer's partitions are paused (nothing new is taken) and it is
        polled whenever a join is pending: a rebalance that starts meanwhile (another member
        stopping too) completes, its revoked partitions are committed as usual, and the final
        commit is not refused for a join nobody drives (``_poll_while_stopping``)."""
        assert self._consumer is not None
        await self._consumer.pause(True)
        polling = asyncio.ensure_future(self._poll_while_stopping())
        try:
            await wait_until(lambda: not self._in_flight, self.settings.shutdown_timeout_s, self._clock)
            unfinished = self._in_flight
            await self._finish_releases()
            await self._supervisor.cancel_all()
            if not await self._commit_until_landed(self._commit_points(self._offsets),
                                                   self.settings.shutdown_timeout_s):
                log.warning("the final commit did not land: the next owner repeats what finished since the last one")
        finally:
            polling.cancel()
            await asyncio.gather(polling, return_exceptions=True)
        await self._consumer.close()
        await self._parking.close()
        log.info("firer stopped", extra=fields(unfinished=unfinished))
        if self.failure is not None:
            raise RuntimeError("the firer stopped after a failure") from self.failure

    async def _poll(self, max_records: int) -> list[Record]:
        """One poll. Kafka unreachable is waited out, not fatal: kafka-python 3 raises out of poll
        the refused connection of its coordinator lookup during a broker outage (seen: a firer
        died 1 s into one). ``/readyz`` says not ready meanwhile; firing waits for the lease."""
        assert self._consumer is not None
        try:
            records = await self._consumer.poll(timeout_ms=100, max_records=max_records)
        except KafkaUnavailable as e:
            if not self._poll_failing:
                log.warning("Kafka unreachable: polling again until it answers", extra=fields(error=str(e)))
            self._poll_failing = True
            await asyncio.sleep(POLL_RETRY_S)
            return []
        if self._poll_failing:
            log.info("Kafka answers again")
            self._poll_failing = False
        return records

    async def _poll_while_stopping(self) -> None:
        """While stopping, poll only while a join is pending or the membership is in doubt: only
        a poll completes a join, and a commit is refused until it is complete. Otherwise the
        stopped firer polls no more. Records of partitions assigned meanwhile (not paused) are
        not taken: nothing past them is committed, so their next owner reads them."""
        assert self._consumer is not None
        while True:
            member = self._consumer.membership()
            if not member.rebalancing and member.valid:
                await asyncio.sleep(0.05)
                continue
            try:
                await self._consumer.poll(timeout_ms=100, max_records=100)
            except KafkaUnavailable as e:
                log.debug("poll failed while stopping", extra=fields(error=str(e)))
                await asyncio.sleep(0.1)
            self.last_poll = self._clock()

    async def _apply_backpressure(self) -> None:
        assert self._consumer is not None
        if self._parking.enabled:  # what blocked namespaces hold waits for them: it does not hold the partitions
            self._backpressure.stuck = self._parking.window.held_by(self._blocked)
        if await self._backpressure.apply(self._in_flight, self._consumer.pause):
            paused = self._backpressure.paused
            log.debug("backpressure", extra=fields(pause=paused, in_flight=self._in_flight))
            self._metrics.paused.set(int(paused))
        self._metrics.in_flight.set(self._in_flight)
        self._metrics.assigned.set(len(self._offsets))
        for namespace in self._pacer.expire(self._clock()):
            log.info("namespace no longer throttled", extra=fields(namespace=namespace))
        self._metrics.paced_namespaces.set(len(self._pacer))

    def _watch_membership(self, now: float) -> None:
        """Count rebalances and the time they take, and publish whether this member is valid."""
        assert self._consumer is not None
        member = self._consumer.membership()
        self._metrics.member.set(int(member.valid and member.reachable))
        if member.rebalancing and self._rebalance_started is None:
            self._rebalance_started = now
            self._metrics.rebalances.inc()
        elif not member.rebalancing and self._rebalance_started is not None:
            self._metrics.rebalance_seconds.observe(now - self._rebalance_started)
            self._rebalance_started = None

    # --- commits: sent without blocking the loop, retried with the latest offsets until they land ---

    def _commit_points(self, trackers: Mapping[TopicPartition, PartitionOffsets]) -> Offsets:
        """Offset and finished-offsets metadata per partition, left out where the broker has it already."""
        points: Offsets = {}
        for tp, tracker in trackers.items():
            point = tracker.commit_point(self._metadata_max_bytes)
            if point is not None and self._landed.get(tp) != point:
                points[tp] = point
        return points

    async def _commit_continuously(self) -> None:
        """The commit pipeline: one commit of every owned partition in flight at a time, the next
        sent as soon as the previous was answered and something new finished (at most every
        ``firer_commit_interval_s``). What a crash repeats is what finished after the last commit that
        landed: with a fixed tick that is up to a tick plus a round trip of fires, here about one
        round trip (or the interval, if longer). A refusal (a rebalance in progress, the
        coordinator moving) is counted and sent again after a short backoff with the latest
        offsets, until they land or the partitions are lost."""
        backoff = COMMIT_RETRY.initial_s
        while True:
            await self._finished.wait()
            self._finished.clear()
            sent = self._clock()
            if await self._send_commit(self._commit_points(self._offsets)) is None:
                backoff = COMMIT_RETRY.initial_s
                wait = self.settings.firer_commit_interval_s - (self._clock() - sent)
            else:
                self._finished.set()  # nothing new need finish: the refused offsets are still unlanded
                wait, backoff = backoff, COMMIT_RETRY.next(backoff)
            if wait > 0:
                await asyncio.sleep(wait)

    async def _send_commit(self, points: Offsets) -> str | None:
        """None: landed (or nothing to commit); else why it was refused."""
        if not points or self._consumer is None:
            return None
        try:
            await self._consumer.commit(points)
        except KafkaUnavailable as e:
            reason = e.reason if isinstance(e, CommitRejected) else "KafkaUnavailable"
            self._metrics.commit_failures.labels(reason).inc()
            if reason in ("OffsetMetadataTooLargeError", "InvalidCommitOffsetSizeError") and self._metadata_max_bytes:
                log.warning("the broker refuses our commit metadata: committing plain offsets from now on",
                            extra=fields(error=str(e)))
                self._metadata_max_bytes = 0
            log.debug("commit refused; the next one carries the latest offsets", extra=fields(error=str(e)))
            return reason
        self._landed.update(points)
        self._metrics.commits.inc()
        return None

    async def _commit_until_landed(self, points: Offsets, within_s: float, polling: bool = True) -> bool:
        """Commit, retrying (backoff) until accepted, the member lost its membership (nothing it
        commits counts any more), or ``within_s`` passed. ``polling`` False: the loop does not poll
        meanwhile, so a refusal because the client is rejoining ends it too (only a poll completes
        the join)."""
        assert self._consumer is not None
        deadline = self._clock() + within_s
        backoff = WRITE_RETRY.initial_s
        while (refused := await self._send_commit(points)) is not None:
            if self._clock() + backoff > deadline or not self._consumer.membership().valid or \
                    (refused == CLIENT_REJOINING and not polling):
                return False
            await asyncio.sleep(backoff)
            backoff = WRITE_RETRY.next(backoff)
        return True

    async def _finish_releases(self) -> None:
        """Revoked partitions are committed before the next poll: that poll rejoins the group,
        and the new owner reads the committed offset as soon as the rebalance completes."""
        if self._releases:
            await asyncio.gather(*self._releases, return_exceptions=True)

    # --- taking a record ---

    def _accept(self, record: Record) -> None:
        tp = record.tp
        tracker = self._offsets.get(tp)
        if tracker is None:
            return  # fetched before its partition was revoked: the new owner reads it again
        self._metrics.consumed.inc()
        if not tracker.take(record.offset):
            self._metrics.skipped.inc()  # finished by the partition's previous owner (commit metadata)
            return
        self._active[tp] += 1
        self._in_flight += 1
        try:
            job = self._job(record)
        except BadMessage as bad:
            self._supervisor.spawn(self._dead_letter(DeadLetter(record, bad.reason, bad.detail)))
            return
        if self._parking.restoring(tp.partition):
            self._held_back.setdefault(tp.partition, []).append(job)  # its parked triggers are not known yet
            return
        self._admit(job)

    def _job(self, record: Record) -> Job:
        env = envelope.parse_record(record.headers, record.value, max_payload_bytes=self.settings.max_payload_bytes)
        apihost = (env.apihost or self.settings.openwhisk_apihost).rstrip("/")
        if apihost not in self.settings.allowed_apihosts:
            raise BadMessage(Reason.APIHOST_NOT_ALLOWED, f"{apihost} is not on the firer's allow-list")
        credential: Credential = self._authorize(env.credential, env.trigger)
        namespace, name = env.trigger_name
        return Job(record, apihost, namespace, name, credential.key, env.payload, env.source)

    def _finish(self, record: Record, done: bool) -> None:
        """done=False: abandoned (partition revoked, shutdown), so its offset is never committed here."""
        self._in_flight -= 1
        tp = record.tp
        self._active[tp] -= 1
        if self._active[tp] <= 0:
            del self._active[tp]
        self._parking.window.release((record.topic, record.partition, record.offset))
        if record.topic == self._parking.topic:
            self._finish_parked(record, done)
        elif done and (tracker := self._offsets.get(tp) or self._releasing.get(tp)) is not None:
            tracker.done(record.offset)
        if done:
            self._finished.set()  # the commit pipeline sends the new offsets (or park position)

    # --- firing ---

    def _abandon(self, job: Job) -> None:
        self._finish(job.record, done=False)

    async def _fire(self, job: Job) -> None:
        """A trigger queue's handler: fire until fired, dead-lettered or abandoned; a job of a revoked
        partition is skipped (its new owner has it). Per-fire CPU is the firer's budget (issue 15),
        so the usual way through (a member, unpaced, a slot free) awaits nothing but the request:
        the waits (fenced, paced, a slot) are entered only when needed, and the membership (a
        few reads of kafka-python's state, the costliest check) is asked once, in the slot right
        before the request; before the pace too when paced (a fenced member takes no pace token),
        and again after it was found fenced or a retry's backoff. The handler itself, not a coroutine
        under one: every resumption of the request resumes each coroutine above it too."""
        tp = job.record.tp
        if self._main(tp) not in self._offsets:
            self._abandon(job)
            return
        first_ms = _now_ms()
        first_s = self._clock()
        attempts = 0
        record, namespace, slots = job.record, job.namespace, self._fire_slots
        recheck = False  # found fenced in the slot, or back from a backoff: wait outside until a member
        while True:
            paced = namespace in self._pacer  # unpaced: no wait (Pacer.reserve would answer 0)
            if (paced or recheck) and not self._may_fire(tp) and not await self._while_fenced(tp):
                self._finish(record, done=False)
                return
            recheck = False
            if paced and not await self._paced(job):
                self._finish(record, done=False)
                return
            if not slots.try_acquire(namespace):
                await slots.wait(namespace)
            try:
                if not self._may_fire(tp):
                    recheck = True  # fenced (or fenced while waiting for a slot): wait outside it
                    continue
                started = self._clock()
                window = _window_now()
                self._pacer.counted(namespace, window)  # OpenWhisk counts every check, refused ones too
                on_wire = self._on_wire
                on_wire[tp] = on_wire.get(tp, 0) + 1
                try:
                    attempt = await self._client.fire(job.apihost, namespace, job.name, job.api_key, job.payload)
                finally:
                    if (left := on_wire[tp] - 1) > 0:
                        on_wire[tp] = left
                    else:
                        del on_wire[tp]
                self._metrics.fire_seconds.observe(self._clock() - started)
            finally:
                slots.release(namespace)
            attempts += 1
            self._metrics.attempted(attempt.status)
            self._pace(namespace, attempt, window)
            verdict, backoff = classify(attempt), 0.0
            if verdict is Verdict.RETRY:  # only a retry's verdict depends on the clock (its age)
                verdict, backoff = decide(attempt, first_s, self._clock(), attempts, self._policy)
            if verdict is Verdict.FIRED:
                self._metrics.fired.inc()
                if attempt.status == NO_RULE_STATUS and (
                        report := self._no_rule.fired(job.trigger, job.source)) is not None:
                    await report  # a log line or a status note is due (rarely: once per trigger per interval)
                self._finish(record, done=True)
                return
            if verdict is Verdict.DEAD_LETTER:
                if self._on_refused is not None and attempt.status in TRIGGER_GONE_STATUSES:
                    await self._report_refusal(job, attempt.status)
                await self._dead_letter(DeadLetter(
                    job.record, dead_letter_reason(attempt), attempt.error or "no response",
                    attempt.status, attempts, first_ms, _now_ms()), job.trigger)
                return
            self._metrics.retries.inc()
            if attempt.status == 429:
                backoff = 0.0  # the namespace's pace is the wait: its next slot, at the rate OpenWhisk allows
            self._retrying[job.namespace] += 1  # failing: its messages over its share are parked meanwhile
            recheck = True
            try:
                if not await self._sleep_unless_revoked(backoff, tp):
                    self._finish(record, done=False)
                    return
            finally:
                self._retrying[job.namespace] -= 1
                if self._retrying[job.namespace] <= 0:
                    del self._retrying[job.namespace]

    async def _report_refusal(self, job: Job, status: int) -> None:
        assert self._on_refused is not None
        try:
            await self._on_refused(job.trigger, job.source, status)
        except KafkaUnavailable as e:  # the next refused message reports it again
            log.warning("could not record the refusal", extra=fields(trigger=job.trigger, error=str(e)))

    async def _paced(self, job: Job) -> bool:
        """Wait until the job's namespace may fire by its pace; each wait is re-asked afterwards,
        so the slot is taken at the rate in force then. False: the partition was revoked."""
        delayed = False
        while (wait := self._pacer.reserve(job.namespace, self._clock(), waited=delayed)) > 0:
            if not delayed:
                self._metrics.paced_delays.inc()
                delayed = True
            if not await self._sleep_unless_revoked(wait, job.record.tp):
                self._pacer.arrived(job.namespace)
                return False
        return True

    def _pace(self, namespace: str, attempt: Attempt, window: int | None = None) -> None:
        """``window``: the throttle window the fire went out in (its 429 is probed when our own
        fires there do not explain it: ``consumer/pacing.py``). An unpaced namespace's success
        costs two comparisons (issue 15: per-fire CPU)."""
        if attempt.status != 429 and namespace not in self._pacer:
            return
        now = self._clock()
        if attempt.status == 429:
            new = namespace not in self._pacer
            self._pacer.throttled(namespace, now, attempt.error, window_left_s=self._window_left_s(), window=window)
            if new:  # the body's limit is OpenWhisk's text, no secret: it tells the user why
                log.info("namespace throttled", extra=fields(
                    namespace=namespace, limit=attempt.error[:200],
                    rate_per_s=self._pacer.rate(namespace), concurrency=self._pacer.concurrency(namespace)))
        elif attempt.status is not None and attempt.status < 300 and namespace in self._pacer:
            self._pacer.succeeded(namespace, now)
            if namespace not in self._pacer:
                log.info("namespace no longer throttled", extra=fields(namespace=namespace))

    def _may_fire(self, tp: TopicPartition) -> bool:
        return self._main(tp) in self._offsets and self._member()

    def _member(self) -> bool:
        """Whether this member may fire: kafka-python's state, read at most every
        ``MEMBERSHIP_FRESH_S`` and after every poll (see there)."""
        if (now := time.monotonic()) >= self._member_read_until:
            assert self._consumer is not None
            self._member_valid = self._consumer.membership().valid
            self._member_read_until = now + MEMBERSHIP_FRESH_S
        return self._member_valid

    async def _while_fenced(self, tp: TopicPartition) -> bool:
        """No zombie fires: while this member may not fire (its lease ran out, it was fenced), wait
        until it may again or the partition is gone (lost: the new owner fires it). True: fire.
        Checked again right before the request (``_may_fire``), after any wait for a slot."""
        main = self._main(tp)
        await wait_until(lambda: main not in self._offsets or self._may_fire(tp), None, self._clock)
        return main in self._offsets

    async def _sleep_unless_revoked(self, seconds: float, tp: TopicPartition) -> bool:
        """Sleep; False as soon as the partition is revoked (its new owner takes the message over)."""
        main = self._main(tp)
        return await sleep_while(seconds, lambda: main in self._offsets, self._clock)

    async def _dead_letter(self, dl: DeadLetter, trigger: str = "") -> None:
        """Write until acknowledged; only then is the message finished."""
        topic = self.settings.dead_letter_topic
        if not await write_until_acknowledged(
                lambda: dead_letters.write(self._producer, topic, dl), KafkaUnavailable, what=topic,
                wait=lambda seconds: self._sleep_unless_revoked(seconds, dl.record.tp)):
            self._finish(dl.record, done=False)
            return
        self._metrics.dead_lettered.labels(dl.reason).inc()
        log.info("message dead-lettered", extra=fields(
            reason=dl.reason, status=dl.status, trigger=trigger or None, topic=dl.record.topic,
            partition=dl.record.partition, offset=dl.record.offset))
        self._finish(dl.record, done=True)

    # --- rebalance callbacks (run on kafka-python's IO thread, inside poll) ---
    # Cooperative rebalancing: "revoked" partitions really leave and "assigned" ones are new, and
    # kafka-python starts a new one from its committed offset. (Under the eager protocol every
    # rebalance revokes all and assigns all again, and kafka-python keeps its fetch position for a
    # partition that comes back; dropping the work taken before the rebalance, as `_release`
    # does, would then skip those messages for good.)

    def _on_assigned(self, assigned: list[TopicPartition]) -> None:
        assert self._loop is not None
        hand_over(self._loop, self._assign, assigned)

    def _assign(self, assigned: list[TopicPartition]) -> None:
        for tp in assigned:
            self._offsets[tp] = PartitionOffsets()
            self._landed.pop(tp, None)
            self._parking.assign(tp.partition)
        log.info("partitions assigned", extra=fields(partitions=sorted(f"{t.topic}-{t.partition}" for t in assigned)))

    def _on_committed(self, committed: Offsets) -> None:
        """On the consumer thread, inside poll, before the partitions' first records: hand over."""
        assert self._loop is not None
        hand_over(self._loop, self._resume, committed)

    def _resume(self, committed: Offsets) -> None:
        """Skip what the previous owner finished above its committed offset (its commit metadata)."""
        for tp, (offset, metadata) in committed.items():
            if (tracker := self._offsets.get(tp)) is not None:
                tracker.resume(offset, metadata)
                self._landed[tp] = (offset, metadata)
                self._parking.positioned(tp.partition, tracker.park)

    def _on_revoked(self, revoked: list[TopicPartition]) -> concurrent.futures.Future[None]:
        """kafka-python 3 runs this on its IO thread, where nothing may block: it hands over, and
        the edge holds the rebalance until the returned future says the final commit is done."""
        assert self._loop is not None
        released: concurrent.futures.Future[None] = concurrent.futures.Future()
        hand_over(self._loop, self._release, revoked, released)
        return released

    def _on_lost(self, lost: list[TopicPartition]) -> None:
        assert self._loop is not None
        hand_over(self._loop, self._lose, lost)

    def _release(self, revoked: list[TopicPartition], released: concurrent.futures.Future[None]) -> None:
        """Stop firing revoked partitions at once; the fires already on the wire are awaited
        (briefly: the request is sent, its outcome is the only question), then what is done is
        committed (offset and finished offsets) while the rebalance waits for it (``released``):
        the member still owns the partitions, and the new owner starts where this one stopped.
        If the commit is refused because the client is rejoining anyway (the edge stopped
        waiting), it is given up at once: the new owner repeats what finished since the last
        commit that landed. Their queued messages are skipped and retrying ones abandoned: the
        new owner reads them from the committed offset (a partition assigned straight back is
        that new owner: its queued messages fire, ahead of what it reads again)."""
        self._drop_parks(revoked)
        for tp in revoked:
            if (tracker := self._offsets.pop(tp, None)) is not None:
                self._releasing[tp] = tracker
        task = self._supervisor.spawn(self._commit_released(revoked))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)
        task.add_done_callback(lambda _: None if released.done() else released.set_result(None))
        log.info("partitions revoked", extra=fields(partitions=sorted(f"{t.topic}-{t.partition}" for t in revoked)))

    async def _commit_released(self, revoked: list[TopicPartition]) -> None:
        """Commit the trackers the revoke released, and only those: kafka-python may assign a
        revoked partition back in the same rebalance (``_assign`` then gives it a new tracker,
        which must outlive this; forgetting it stopped the partition for good)."""
        released = {tp: self._releasing[tp] for tp in revoked if tp in self._releasing}
        try:
            await wait_until(lambda: not any(tp in self._on_wire for tp in revoked),
                             min(self.settings.fire_timeout_s, RELEASE_WIRE_WAIT_S), self._clock)
            points = self._commit_points(released)
            if not await self._commit_until_landed(points, self.settings.kafka_max_poll_interval_ms / 1000,
                                                   polling=False):
                log.warning("the commit of revoked partitions did not land: their new owner repeats more",
                            extra=fields(partitions=len(points)))
        finally:
            for tp, tracker in released.items():
                if self._releasing.get(tp) is tracker:
                    del self._releasing[tp]
                if tp not in self._offsets:  # not ours again (an assignment reset what landed)
                    self._landed.pop(tp, None)

    def _lose(self, lost: list[TopicPartition]) -> None:
        """Fenced: the partitions may be another member's already, so nothing of them is fired or
        committed any more (a commit would be refused anyway); kafka-python rejoins at the next poll."""
        self._metrics.partitions_lost.inc(len(lost))
        self._drop_parks(lost)
        for tp in lost:
            self._offsets.pop(tp, None)
            self._releasing.pop(tp, None)
            self._landed.pop(tp, None)
        log.warning("membership lost: partitions dropped uncommitted", extra=fields(
            partitions=sorted(f"{t.topic}-{t.partition}" for t in lost)))

    # --- parking (issue 13; consumer/parking.py): a namespace's backlog leaves the window ---

    def _init_parking(self, park_reader: ParkReader | None) -> None:
        """``park_reader`` None: no parking (the window pauses every partition when full, as before);
        ``park_reader_of(settings)`` is the real one (the entry point passes it)."""
        self._parking = Parking(self.settings.trigger_messages_topic, self.settings.max_in_flight, park_reader,
                                self._producer, self._clock)
        self._held_back: dict[int, list[Job]] = {}  # main records of partitions whose park is restoring
        self._retrying: Counter[str] = Counter()  # fires waiting for a retry, per namespace
        self._park_writes: ParkWrites[Job] = ParkWrites()

    @staticmethod
    def park_reader_of(settings: Settings) -> ParkReader:
        return PartitionReader(settings.kafka, "park", max_partition_fetch_bytes=FETCH_MAX_BYTES,
                               fetch_max_bytes=FETCH_MAX_BYTES)

    def _main(self, tp: TopicPartition) -> TopicPartition:
        """The main partition a (park or main) partition's messages belong to: its owner fires them."""
        return TopicPartition(self.settings.trigger_messages_topic, tp.partition) if tp.topic == self._parking.topic \
            else tp

    def _blocked(self, namespace: str) -> bool:
        """Throttled (paced after a 429) or failing (a fire waiting for its retry)."""
        return namespace in self._pacer or self._retrying.get(namespace, 0) > 0

    def _admit(self, job: Job) -> None:
        """A main message: held in its trigger's queue, or parked when its namespace is over its
        share. The first message a trigger parks takes the trigger's queued main messages along
        (ahead of it): once parked messages follow them they could never leave the window, and a
        throttled namespace would hold all it had taken before its first 429 until its throttle
        ended, over its share (the partitions paused meanwhile: issue 13)."""
        record = job.record
        blocked = self._blocked(job.namespace)
        if self._parking.wants(record, job.trigger, job.namespace, blocked):
            if not self._parking.triggers.parked(record.partition, job.trigger):
                self._evict(job.trigger, self._movable(itertools.repeat(0)))
            self._parking.park(record, job.trigger, blocked)
            self._send_to_park(job)
            return
        self._parking.window.hold((record.topic, record.partition, record.offset), job.namespace)
        self._queues.put(job.trigger, job)

    def _send_to_park(self, job: Job) -> None:
        """Counted as parked already (``Parking.park``): write it, in the order of the calls."""
        self._park_writes.start(job.record.partition, job.trigger, job.record.offset)
        self._supervisor.spawn(self._park(job))

    async def _park(self, job: Job) -> None:
        """Write the parked copy; only once acknowledged is the main offset finished. A write the
        producer gave up on is not sent again (it could land behind later parked messages of its
        trigger): the message goes back to memory, in its trigger's order (``ParkWrites``)."""
        record = job.record
        try:
            await self._parking.write(record, job.trigger)
            failed = None
        except KafkaUnavailable as e:
            log.warning("a park write failed: the message stays in memory and fires from there", extra=fields(
                topic=self._parking.topic, partition=record.partition, offset=record.offset, error=str(e)))
            failed = job
        back = self._park_writes.settle(record.partition, job.trigger, record.offset, failed)
        if failed is None:
            self._metrics.parked_total.inc()
            self._finish(record, done=True)
        for unparked in back:
            self._unpark(unparked)

    def _unpark(self, job: Job) -> None:
        """A message whose park write failed: held in its trigger's queue (every earlier write of
        the trigger settled, so whatever of the trigger is queued came before it, and its parked
        successors are taken back only behind it)."""
        record = job.record
        if self._main(record.tp) not in self._offsets:
            self._abandon(job)  # the partition left: its next owner reads it from main
            return
        if self._parking.triggers.take(record.partition, job.trigger):
            log.info("namespace no longer parked", extra=fields(namespace=job.namespace))
        self._parking.window.hold((record.topic, record.partition, record.offset), job.namespace)
        self._queues.put(job.trigger, job)

    async def _drain_parks(self) -> None:
        """Read the owned park partitions and take parked messages back as their namespace has room."""
        while not self._stopping.is_set():
            try:
                restored = await self._parking.step(self._take_back, self._may_take_back)
            except KafkaUnavailable as e:  # the park's reader: retried (a missing topic is a ConfigError: stop)
                log.warning("reading the park failed; retrying", extra=fields(topic=self._parking.topic, error=str(e)))
                await asyncio.sleep(1.0)
                continue
            for partition in restored:
                for job in self._held_back.pop(partition, []):
                    if self._main(job.record.tp) in self._offsets:
                        self._admit(job)
                    else:
                        self._abandon(job)
            self._evict_over_share()
            for tp, tracker in self._offsets.items():
                if (position := self._parking.position(tp.partition)) is not None:
                    tracker.park = position
            self._metrics.parked.set(len(self._parking.triggers))

    def _evict_over_share(self) -> None:
        """A throttled or failing namespace holding more than its share (it took messages before
        it was known to be blocked, or the share shrank as another namespace came) gives the
        waiting tail of its trigger queues to the park: main messages only, of triggers with
        nothing parked yet (a suffix of a queue leaves, so nothing it leaves behind overtakes it)."""
        if not self._parking.enabled:
            return
        share = self._parking.window.share()
        over = {ns for ns in self._parking.window.namespaces() if self._parking.window.held(ns) > share
                and self._blocked(ns)}
        if not over:
            return
        for trigger in self._queues.keys():  # noqa: SIM118 (a copy: queues change as jobs leave)
            namespace = namespace_of(trigger)
            surplus = self._parking.window.held(namespace) - share
            if namespace not in over or surplus <= 0:
                continue
            self._evict(trigger, self._movable(iter(range(surplus))))

    def _evict(self, trigger: str, movable: Callable[[Job], bool]) -> None:
        """The movable tail of the trigger's queue leaves the window for the park, in order."""
        for job in self._queues.take_tail(trigger, movable):
            self._parking.window.release((job.record.topic, job.record.partition, job.record.offset))
            self._parking.park(job.record, job.trigger)
            self._send_to_park(job)

    def _movable(self, budget: Iterator[int]) -> Callable[[Job], bool]:
        """Which queued jobs may be evicted to the park: main ones of a trigger with nothing parked, within budget."""
        def movable(job: Job) -> bool:
            return (job.record.topic != self._parking.topic
                    and not self._parking.triggers.parked(job.record.partition, job.trigger)
                    and next(budget, None) is not None)
        return movable

    def _may_take_back(self, record: Record) -> bool:
        """Room in the window for its namespace, as much as its pace can fire soon, no earlier
        park write of its trigger unsettled (that message may come back to memory: it goes
        first), and its main partition read past where it came from (after a crash, a held
        predecessor is then in its trigger's queue ahead of it)."""
        trigger = header(record, H_TRIGGER) or ""
        namespace = namespace_of(trigger)
        main = self._offsets.get(self._main(record.tp))
        read_to = main.read_to if main is not None else None
        # nothing read nor committed: wait a moment for main records, then none came before it
        read_past = read_to > source_offset(record) if read_to is not None else self._parking.settled(record.partition)
        return (read_past
                and not self._park_writes.before(record.partition, trigger, source_offset(record))
                and self._parking.window.room(namespace)
                and self._fires_soon(namespace)
                and self._in_flight < self.settings.max_in_flight * FULL_FRACTION)

    def _fires_soon(self, namespace: str) -> bool:
        """A paced namespace holds what its pace lets it fire within ``PACED_AHEAD_S`` (at least
        one): the rest waits in the park, not in the window. Filled to its share while held to
        the end of its minute, the window left the others only half of itself to read (and park)
        the backlog ahead of their messages, and their messages waited behind it (issue 13)."""
        soon = self._pacer.fires_within(namespace, self._clock(), PACED_AHEAD_S)
        return soon is None or self._parking.window.held(namespace) < max(1, soon)

    def _take_back(self, record: Record) -> None:
        """A parked message re-enters the window, behind its trigger's held messages."""
        self._active[record.tp] += 1
        self._in_flight += 1
        if (waited := parked_seconds(record, time.time())) is not None:
            self._metrics.parked_seconds.observe(waited)
        try:
            job = self._job(record)
        except BadMessage as bad:  # e.g. its credential expired while parked
            self._supervisor.spawn(self._dead_letter(DeadLetter(record, bad.reason, bad.detail)))
            return
        self._parking.window.hold((record.topic, record.partition, record.offset), job.namespace)
        self._queues.put(job.trigger, job)

    def _finish_parked(self, record: Record, done: bool) -> None:
        """A parked message finished: its park position may advance (committed with main partition p)."""
        if done and (tracker := self._parking.tracker(record.partition)) is not None:
            tracker.done(record.offset)
            main = self._main(record.tp)
            if (owner := self._offsets.get(main) or self._releasing.get(main)) is not None:
                owner.park = self._parking.position(record.partition)

    def _drop_parks(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._parking.drop(tp.partition)
            self._park_writes.drop(tp.partition)
            for job in self._held_back.pop(tp.partition, []):
                self._abandon(job)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _window_now() -> int:
    """OpenWhisk's current throttle window: the epoch minute, by the wall clock."""
    return int(time.time() // 60)


def _window_left_s(margin_s: float = 0.5) -> float:
    """What is left of OpenWhisk's current throttle window (the epoch minute, by the wall clock),
    plus a margin for the controller's clock being a little behind ours."""
    return 60.0 - time.time() % 60.0 + margin_s
