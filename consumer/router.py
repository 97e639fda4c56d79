"""The router: subscribed topics in, batched envelopes out (DESIGN.md sections 2 and 6).

One asyncio loop owns all state below; the subscriptions table and the rebalance callbacks only
stage work for it. What is kept, and where:

- **stateless**: the subscriptions come from the compacted topic (``CompactedTable`` into
  ``SubscriptionIndex``), read to its end before ``ready``; where each subscription reads rides
  on the committed offsets (consumer/positions.py). Nothing else survives a restart, nothing
  needs to.
- **one group for all topics**: the consumer is subscribed to exactly the topics that have a
  subscription; a change re-subscribes it without a restart.
- **at-least-once**: an input offset is committed only once every envelope (and dead-letter
  record) built from the records before it was acknowledged (``PartitionOffsets`` per partition,
  a count of outstanding destinations per record, kept per poll and partition in ``Routed``).
- **speed**: a poll's records are routed a partition at a time, as kafka-python fetched them:
  each record is encoded once per distinct encoding (``batching.encode_records``), and each
  subscription takes its run of them into its batches in one step (``Batcher.add_many``), so a
  subscription costs per batch, not per message; an acknowledgement counts down its run.
- **partitions** (consumer/router_partitions.py): ownership through rebalances, where each
  partition reads and for which subscriptions (catch-up), and what is committed; this module
  keeps the loop, subscription changes, routing and sending. The machinery shared with the firer
  (task supervision, per-trigger queues, pause hysteresis, writes retried until acknowledged,
  dead-letter records) is consumer/toolkit.py and consumer/dead_letters.py.
- **order per trigger**: one send queue per trigger, drained in order by one task; envelopes are
  keyed by the trigger, so the firer keeps that order.
- **limits**: batches per trigger under its bytes/count/window limits (consumer/batching.py); a
  message over the payload limit, or for a disabled subscription, goes to the dead-letter topic
  with the trigger in ``dl_trigger``; in-flight records are bounded (partitions pause).
- **defence in depth** (DESIGN.md section 6): the operator's topic policy is applied to every
  subscription record and grant change (consumer/subscriptions.py); a refused subscription is
  never subscribed to, and its status record (disabled, naming the version) is written once.
- **one subscription cannot take the others down**: a subscribed topic that disappears (deleted,
  never created, not readable) is noticed by a periodic check, or when kafka-python raises inside
  poll, and refuses the subscriptions on it alone (status record); the credential of each
  envelope is re-sealed short-lived from the subscription's (``Sealer.seal_for_envelope``), and a
  subscription whose credential cannot be re-sealed dead-letters its records and is disabled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any, cast

from kafka import TopicPartition

from consumer import batching, dead_letters
from consumer.batching import Batch, Batcher, Sizes
from consumer.dead_letters import DeadLetter
from consumer.kafka_rd import GroupReader, Producer
from consumer.kafka_shared import KafkaUnavailable, PartitionRecords
from consumer.logs import fields
from consumer.metrics import RouterMetrics
from consumer.offsets import PartitionOffsets
from consumer.router_partitions import Partitions, Route
from consumer.settings import Settings
from consumer.subscriptions import Live, Refusal, SubscriptionIndex
from consumer.table import Change, CompactedTable, LogSource
from consumer.toolkit import Backpressure, KeyedQueues, Supervisor, hand_over, wait_until, write_until_acknowledged
from feed import records
from feed.grants import TopicPolicy
from feed.records import Status, feed_source
from messaging_lib import envelope
from messaging_lib.credentials import Sealer
from messaging_lib.errors import BadMessage, Reason

log = logging.getLogger("consumer.router")

ReaderFactory = Callable[..., GroupReader]
TOPIC_CHECK_S = 5.0  # how often the subscribed topics are checked for existence (twice missing: refused)
ENVELOPE_CREDENTIAL_REUSE_S = 60.0  # an envelope credential is re-sealed at most this often per subscription
_CREDENTIALS_KEPT = 10_000  # envelope credentials cached; past it the cache starts over


def envelope_id() -> str:
    """A random (version 4) UUID for an envelope's ``id``, from the process's PRNG: an id must be
    unique, not secret, and ``uuid.uuid4`` reads the kernel's random source on each call, a
    system call that gives up the GIL and waits to take it back behind the poll thread
    (measured: ~6 % of the loop's time with 10 subscriptions)."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


def topic_policy(settings: Settings) -> TopicPolicy:
    """The operator's topic policy as the feed applies it: the prefix rule and the service's own topics."""
    return TopicPolicy.from_settings({"topic_prefix_pattern": settings.topic_prefix_pattern,
                                      "trigger_messages_topic": settings.trigger_messages_topic,
                                      "subscriptions_topic": settings.subscriptions_topic,
                                      "dead_letter_topic": settings.dead_letter_topic})


def gone_refusal(topic: str) -> Refusal:
    return Refusal(404, f"Disabled: the topic {topic} does not exist any more (or the messaging service may not "
                        "read it).")


def credential_refusal(error: BadMessage) -> Refusal:
    return Refusal(401, f"Disabled: the subscription's credential cannot be used ({error.reason.value}: "
                        f"{error.detail}). Update the trigger's feed to seal a new one.")


@dataclass(slots=True, eq=False)
class Routed:
    """One partition's records of one poll, routed: ``pending[i]`` counts the destinations
    (envelopes, dead letters) of ``offsets[i]`` not yet acknowledged."""

    tracker: PartitionOffsets
    offsets: list[int]
    pending: list[int]


Piece = tuple[Routed, int, int]  # records [i, k) of a Routed: one envelope's or dead letter's share


@dataclass(slots=True)
class _Encoded:
    """A partition's records under one encoding: the messages, their ``Sizes``, and the indexes
    of those over the payload limit (never batched: dead-lettered)."""

    messages: list[bytes]
    sizes: Sizes
    too_large: list[int]


class Router:
    def __init__(self, settings: Settings, producer: Producer, table_source: LogSource, metrics: RouterMetrics,
                 reader_factory: ReaderFactory = GroupReader, clock: Callable[[], float] = time.monotonic, *,
                 sealer: Sealer, wall_clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self.settings = settings
        self._producer, self._table_source, self._metrics, self._clock = producer, table_source, metrics, clock
        self._reader_factory = reader_factory
        self._sealer, self._wall_clock_ms = sealer, wall_clock_ms
        self.index = SubscriptionIndex(topic_policy(settings))
        self._credentials: dict[str, tuple[int, float, str | BadMessage]] = {}  # trigger -> version, when, sealed
        self._statuses_written: dict[str, tuple[int, str]] = {}  # trigger -> version and message written
        self._missing: frozenset[str] = frozenset()  # subscribed topics missing at the last check
        self._topics_checked = clock()
        self._staged: list[Change] = []
        self._loading = True  # reading the table to its end: changes go straight into the index
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._partitions = Partitions(settings, self.index, self._drain, self._stopping, metrics, clock)
        self._in_flight = 0  # records taken and not finished (every destination acknowledged)
        self._batcher = Batcher()
        self._supervisor = Supervisor("router", self.stop)
        self._queues: KeyedQueues[str, Batch] = KeyedQueues(self._supervisor, self._write_batch)
        self._backpressure = Backpressure(settings.router_max_in_flight)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader: GroupReader | None = None
        self.ready = False
        self.last_poll = clock()

    # --- the main loop ---

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._reader = self._reader_factory(
            self.settings.kafka, self.settings.router_group, self._on_assigned, self._on_revoked,
            fetch_max_wait_ms=100, max_partition_fetch_bytes=4 * 1024 * 1024,
            allow_auto_create_topics=False,  # a deleted topic stays deleted
            **self.settings.membership("router"))
        table_stop = asyncio.Event()
        table = CompactedTable(self._table_source, self._stage, on_load=self.index.load, long_lived=True)
        table_task = asyncio.ensure_future(table.run(table_stop))
        try:
            await self._until_loaded(table, table_task)
            self._loading = False
            await self._apply_staged()
            self.ready = True
            log.info("router started", extra=fields(subscriptions=len(self.index), topics=len(self.index.topics()),
                                                    group=self.settings.router_group))
            await self._loop_until_stopped(table_task)
        finally:
            self.ready = False
            await self._shutdown()
            table_stop.set()
            await asyncio.gather(table_task, return_exceptions=True)
        if self.failure is not None:
            raise RuntimeError("the router stopped after a failure") from self.failure

    async def _until_loaded(self, table: CompactedTable, table_task: asyncio.Future[None]) -> None:
        loaded = asyncio.ensure_future(table.loaded.wait())
        stopping = asyncio.ensure_future(self._stopping.wait())
        waiting: set[asyncio.Future[Any]] = {loaded, table_task, stopping}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        loaded.cancel()
        stopping.cancel()
        if table_task.done():
            table_task.result()  # raises the reason it ended
            raise RuntimeError("the subscriptions table stopped")

    async def _loop_until_stopped(self, table_task: asyncio.Future[None]) -> None:
        assert self._reader is not None
        last_commit = self._clock()
        while not self._stopping.is_set():
            if table_task.done():
                table_task.result()
                raise RuntimeError("the subscriptions table stopped")
            if self._staged:
                await self._apply_staged()
            await self._partitions.tend(self._reader)
            await self._apply_backpressure()
            if not self._reader.topics:
                await self._idle(0.1)
                self.last_poll = self._clock()
                continue
            if self._backpressure.paused:
                await self._idle(self._poll_timeout_s())
                if not self._backpressure.wanted(self._in_flight):
                    continue  # resume before polling
            await self._check_topics()
            timeout_s = 0.0 if self._backpressure.paused else self._poll_timeout_s()  # paused: waited above
            try:
                fetched = await self._reader.poll(timeout_s, self.settings.router_max_poll_records)
            except Exception as e:  # kafka-python raises more than its own errors in poll (an assignor's KeyError)
                if not await self._isolate(e):
                    raise
                continue
            now = self._clock()
            consumed = 0
            for batch in fetched:
                self._route(batch, now)
                consumed += len(batch.records)
            self._metrics.consumed.inc(consumed)
            self._send(self._batcher.due(now))
            self.last_poll = now
            if now - last_commit >= self.settings.commit_interval_s:
                await self._commit()
                last_commit = self._clock()

    async def _idle(self, timeout_s: float) -> None:
        """Nothing to poll (no topic, or every partition paused): wait for a table change, a stop,
        or enough acknowledgements to resume, rather than in kafka-python's poll, which sleeps
        its retry backoff when every partition is paused and holds up the resume behind it."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout_s)

    def stop(self) -> None:
        """Stop reading; run() then sends what it holds (until the shutdown timeout) and commits."""
        self.ready = False
        self._stopping.set()
        self._wake.set()

    @property
    def failure(self) -> BaseException | None:
        """The error of the task that failed and stopped the router, if any."""
        return self._supervisor.failure

    def _poll_timeout_s(self) -> float:
        due = self._batcher.next_due_s()
        if due is None:
            return 0.1
        return min(0.1, max(0.005, due - self._clock()))

    async def _shutdown(self) -> None:
        unfinished = 0
        if self._reader is not None:
            unfinished = await self._drain(self.settings.shutdown_timeout_s)
        await self._supervisor.cancel_all()
        if self._reader is not None:
            await self._commit_until_landed(self.settings.shutdown_timeout_s)
            await self._reader.close()
        log.info("router stopped", extra=fields(unfinished=unfinished))

    async def _commit_until_landed(self, within_s: float) -> None:
        """A clean stop repeats nothing: the final commit is sent again until it lands. Routers
        stopping together (a rolling restart) start a rebalance, and a commit is refused until a
        poll completes this member's join; the partitions are paused first, so such a poll fetches
        nothing (newly assigned ones stay paused until positioned)."""
        assert self._reader is not None
        await self._pause(True)
        deadline = self._clock() + within_s
        while not await self._partitions.commit(self._reader):
            if self._clock() >= deadline:
                log.warning("the final commit did not land: the next owner repeats what was routed since the last one")
                return
            with contextlib.suppress(KafkaUnavailable):
                await self._reader.poll(0.1, 1)

    async def _apply_backpressure(self) -> None:
        flipped = await self._backpressure.apply(self._in_flight, self._pause)
        if not flipped and self._backpressure.paused and self._partitions:
            await self._pause(True)  # partitions placed since the pause
        self._metrics.in_flight.set(self._in_flight)
        self._metrics.assigned.set(len(self._partitions))

    async def _pause(self, pause: bool) -> None:
        assert self._reader is not None
        await self._reader.pause(self._partitions.placed(), pause)

    # --- subscription changes ---

    def _stage(self, change: Change) -> None:
        """The table's callback: record and wake, nothing else. While the table loads nothing is
        routed yet (no batch, no partition, no topic), so a change is applied at once: a million
        records are not held until the end of the load."""
        if self._loading:
            self.index.apply(change)
            return
        self._staged.append(change)
        self._wake.set()

    async def _apply_staged(self) -> None:
        changes, self._staged = self._staged, []
        affected: set[str] = set()
        for change in changes:
            changed = self.index.apply(change)
            if changed is not None:
                self._changed(*changed, affected)
        for trigger, topic in self.index.recheck():  # grants changed: their namespaces decided again
            self._changed(trigger, topic, affected)
        await self._resubscribe(affected)

    def _changed(self, trigger: str, old_topic: str | None, affected: set[str]) -> None:
        self._send(self._batcher.close(trigger))  # what was batched goes out under its version
        self._credentials.pop(trigger, None)
        live = self.index.get(trigger)
        if live is not None:
            affected.add(live.sub.topic)
        if old_topic is not None:
            affected.add(old_topic)

    async def _resubscribe(self, affected: set[str]) -> None:
        """The table changed for the ``affected`` topics: replan them, write the status records of
        new refusals, and subscribe to exactly the topics wanted now."""
        assert self._reader is not None
        self._report_refusals()
        await self._partitions.join(self._reader, self._partitions.replan(affected))
        wanted = self.index.topics()
        if wanted != self._reader.topics:
            await self._drain(self.settings.shutdown_timeout_s)  # the rebalance must not replay work
            await self._commit()
            if not wanted:
                self._partitions.clear()
            new = wanted - self._reader.topics
            await self._reader.set_topics(wanted)
            self._partitions.watch(wanted, new)
            log.info("subscribed topics changed", extra=fields(topics=len(wanted)))
        self._metrics.subscriptions.set(len(self.index))
        self._metrics.topics.set(len(wanted))

    # --- refusals: the policy's, and subscriptions whose topic or credential failed ---

    def _report_refusals(self) -> None:
        """Write the status record of each new refusal (disabled, naming the version), once."""
        for live in self.index.unreported():
            assert live.refused is not None
            self._write_status(live, live.refused)

    def _write_status(self, live: Live, refusal: Refusal) -> None:
        trigger, version = live.sub.trigger, live.version
        if self._statuses_written.get(trigger) == (version, refusal.message):
            return
        if len(self._statuses_written) >= _CREDENTIALS_KEPT:
            self._statuses_written.clear()
        self._statuses_written[trigger] = (version, refusal.message)
        status = Status(refusal.status_code, refusal.message, version, self._wall_clock_ms())
        topic = self.settings.subscriptions_topic
        log.warning("subscription disabled", extra=fields(trigger=trigger, config=version, topic=live.sub.topic,
                                                          status=refusal.status_code, reason=refusal.message))
        self._supervisor.spawn(write_until_acknowledged(
            lambda: self._producer.send(topic, records.encode_status(status), key=records.status_key(trigger)),
            KafkaUnavailable, what=topic))

    async def _check_topics(self) -> None:
        """Now and then: a subscribed topic missing twice in a row (deleted, or no longer readable)
        refuses the subscriptions on it; the others keep their topics."""
        now = self._clock()
        if now - self._topics_checked < TOPIC_CHECK_S:
            return
        self._topics_checked = now
        assert self._reader is not None
        try:
            missing = await self._reader.missing(self._reader.topics)
        except KafkaUnavailable as e:
            log.warning("cannot check the subscribed topics", extra=fields(error=str(e)))
            return
        gone, self._missing = missing & self._missing, missing - self._missing
        if gone:
            await self._refuse_topics(gone)

    async def _isolate(self, error: Exception) -> bool:
        """kafka-python failed inside poll: if subscribed topics are missing (deleted, never
        created, unreadable), refuse the subscriptions on them and go on (True); else False."""
        assert self._reader is not None
        try:
            missing = await self._reader.missing(self._reader.topics)
        except KafkaUnavailable:
            return False
        log.warning("poll failed", extra=fields(error=f"{type(error).__name__}: {error}", missing=sorted(missing)))
        if not missing:
            return False
        await self._refuse_topics(missing)
        return True

    async def _refuse_topics(self, topics: frozenset[str]) -> None:
        affected: set[str] = set()
        for topic in topics:
            for live in self.index.on_topic(topic):
                if self.index.fault(live.sub.trigger, live.version, gone_refusal(topic)):
                    self._changed(live.sub.trigger, None, affected)
            affected.add(topic)
        await self._resubscribe(affected)

    # --- routing a partition's records ---

    def _route(self, fetched: PartitionRecords, now: float) -> None:
        taken = self._partitions.take(fetched)
        if taken is None:
            return  # fetched before a revoke or a seek
        part, offsets, records = taken
        count = len(offsets)
        self._in_flight += count
        routed = Routed(part.offsets, offsets, [0] * (count + 1))  # first as differences, see below
        encoded: dict[tuple[object, ...], _Encoded] = {}
        for route in self._partitions.routes_of(part, fetched.topic, fetched.partition):
            for i, k in route.spans(offsets):
                routed.pending[i] += 1
                routed.pending[k] -= 1
                if route.disabled:
                    for j in range(i, k):
                        self._spawn_dead_letter(fetched, records[j], (routed, j, j + 1), route.trigger,
                                                Reason.SUBSCRIPTION_DISABLED,
                                                f"the subscription of {route.trigger} is disabled")
                    continue
                credential = self._envelope_credential(route, now)
                if isinstance(credential, BadMessage):
                    for j in range(i, k):
                        self._spawn_dead_letter(fetched, records[j], (routed, j, j + 1), route.trigger,
                                                credential.reason, credential.detail)
                    continue
                enc = encoded.get(route.encoding)
                if enc is None:
                    enc = encoded[route.encoding] = self._encode(fetched, records, route)
                self._deliver(route, credential, fetched, records, routed, enc, i, k, now)
        routed.pending = pending = list(accumulate(routed.pending[:count]))  # differences -> counts
        if 0 in pending:  # nothing was acknowledged yet: these have no destination
            for j in [j for j, left in enumerate(pending) if not left]:
                self._finish_one(routed, j)

    def _envelope_credential(self, route: Route, now: float) -> str | BadMessage:
        """The short-lived credential for the route's envelopes (DESIGN.md section 4), re-sealed
        from the subscription's at most every ``ENVELOPE_CREDENTIAL_REUSE_S``. One that cannot be
        re-sealed (not ours, expired, out of scope) disables that subscription alone."""
        cached = self._credentials.get(route.trigger)
        if cached is not None and cached[0] == route.version and now - cached[1] < ENVELOPE_CREDENTIAL_REUSE_S:
            return cached[2]
        sealed: str | BadMessage
        try:
            sealed = self._sealer.seal_for_envelope(route.credential, route.trigger)
        except BadMessage as e:
            sealed = e
            live = self.index.get(route.trigger)
            if live is not None and live.version == route.version:
                self._write_status(live, credential_refusal(e))
        if len(self._credentials) >= _CREDENTIALS_KEPT:
            self._credentials.clear()
        self._credentials[route.trigger] = (route.version, now, sealed)
        return sealed

    def _encode(self, fetched: PartitionRecords, records: Sequence[Any], route: Route) -> _Encoded:
        messages = batching.encode_records(fetched.topic, fetched.partition, records, route.options)
        too_large, cap = [], self.settings.max_payload_bytes
        if not batching.fits_alone(max(messages, key=len), cap):
            too_large = [j for j, m in enumerate(messages) if not batching.fits_alone(m, cap)]
        return _Encoded(messages, Sizes(messages), too_large)

    def _deliver(self, route: Route, credential: str, fetched: PartitionRecords, records: Sequence[Any],
                 routed: Routed, enc: _Encoded, i: int, k: int, now: float) -> None:
        """Records [i, k) to the route's batches (their envelopes carry ``credential``); those over
        the payload limit to the dead-letter topic."""
        start = i
        for j in [j for j in enc.too_large if i <= j < k] + [k]:
            if start < j:
                self._send(self._batcher.add_many(route.trigger, route.version, credential, route.limits,
                                                  enc.messages, enc.sizes, start, j,
                                                  lambda a, b: (routed, a, b), now))
            if j < k:
                self._spawn_dead_letter(fetched, records[j], (routed, j, j + 1), route.trigger,
                                        Reason.PAYLOAD_TOO_LARGE, f"the message is over the payload limit of "
                                                                  f"{self.settings.max_payload_bytes} bytes as JSON")
            start = j + 1

    def _finish_one(self, routed: Routed, j: int) -> None:
        self._in_flight -= 1
        routed.tracker.done(routed.offsets[j])

    def _acknowledged(self, piece: Piece) -> None:
        """One destination of records [i, k) is acknowledged; a record with none left is done."""
        routed, i, k = piece
        pending = routed.pending
        left = [n - 1 for n in pending[i:k]]  # a slice at a time: most acknowledgements finish none
        pending[i:k] = left
        if 0 not in left:
            return
        offsets, done = routed.offsets, routed.tracker.done
        finished = [j for j, n in enumerate(left, i) if not n]
        for j in finished:
            done(offsets[j])
        self._in_flight -= len(finished)
        if finished and self._backpressure.paused and not self._backpressure.wanted(self._in_flight):
            self._wake.set()  # the loop resumes the partitions now, not at its next poll

    # --- writing ---

    def _send(self, batches: list[Batch]) -> None:
        """Into the trigger's queue: one task per trigger writes its envelopes in order."""
        for batch in batches:
            self._queues.put(batch.trigger, batch)

    async def _write_batch(self, batch: Batch) -> None:
        await self._write_envelope(batch)
        for piece in batch.refs:
            self._acknowledged(cast(Piece, piece))  # batching carries the router's refs opaquely

    async def _write_envelope(self, batch: Batch) -> None:
        env = envelope.Envelope(id=envelope_id(), source=feed_source(batch.version), trigger=batch.trigger,
                                credential=batch.credential, time=envelope.format_time(datetime.now(UTC)))
        headers, _ = envelope.to_binary(env)  # binary mode: the batch's bytes are the value, as built
        topic, payload = self.settings.trigger_messages_topic, batching.payload(batch.messages)
        await write_until_acknowledged(
            lambda: self._producer.send(topic, payload, key=batch.trigger.encode("utf-8"), headers=headers),
            KafkaUnavailable, what=topic)
        self._metrics.envelopes.inc()
        self._metrics.messages.inc(len(batch.messages))

    def _spawn_dead_letter(self, fetched: PartitionRecords, raw: Any, piece: Piece, trigger: str, reason: Reason,
                           detail: str) -> None:
        record = PartitionRecords.record(fetched.topic, fetched.partition, raw)
        self._supervisor.spawn(self._dead_letter(DeadLetter(record, reason, detail, trigger=trigger), piece))

    async def _dead_letter(self, dl: DeadLetter, piece: Piece) -> None:
        """Until the broker acknowledges: the offset behind the record waits for it."""
        topic = self.settings.dead_letter_topic
        await write_until_acknowledged(lambda: dead_letters.write(self._producer, topic, dl), KafkaUnavailable,
                                       what=topic)
        self._metrics.dead_lettered.labels(dl.reason.value).inc()
        log.info("message dead-lettered", extra=fields(reason=dl.reason.value, trigger=dl.trigger,
                                                       topic=dl.record.topic, partition=dl.record.partition,
                                                       offset=dl.record.offset))
        self._acknowledged(piece)

    async def _drain(self, timeout_s: float | None) -> int:
        """Send every open batch and wait until all routed records are acknowledged (or the
        timeout, or a stop); returns how many are still outstanding."""
        self._send(self._batcher.close_all())
        await wait_until(lambda: not self._in_flight or (timeout_s is None and self._stopping.is_set()),
                         timeout_s, self._clock, step_s=0.005)
        return self._in_flight

    # --- commits and rebalances: kafka-python's IO thread only hands over; the loop does the work ---

    async def _commit(self) -> None:
        assert self._reader is not None
        await self._partitions.commit(self._reader)

    def _on_assigned(self, assigned: list[TopicPartition]) -> None:
        self._hand_over(self._partitions.own, assigned)

    def _on_revoked(self, revoked: list[TopicPartition]) -> None:
        self._hand_over(self._partitions.forget, revoked)

    def _hand_over(self, fn: Callable[[list[TopicPartition]], object], partitions: list[TopicPartition]) -> None:
        assert self._loop is not None
        hand_over(self._loop, fn, partitions)
        hand_over(self._loop, self._wake.set)
