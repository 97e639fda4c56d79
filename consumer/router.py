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
  a count of outstanding destinations per record).
- **order per trigger**: one send queue per trigger, drained in order by one task; envelopes are
  keyed by the trigger, so the firer keeps that order.
- **limits**: batches per trigger under its bytes/count/window limits (consumer/batching.py); a
  message over the payload limit, or for a disabled subscription, goes to the dead-letter topic
  with the trigger in ``dl_trigger``; in-flight records are bounded (partitions pause).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kafka import TopicPartition

from consumer import batching, positions
from consumer.batching import Batch, Batcher, Limits
from consumer.kafka_edge import GroupReader, KafkaUnavailable, Offsets, Producer, Record
from consumer.logs import fields
from consumer.metrics import RouterMetrics
from consumer.offsets import PartitionOffsets
from consumer.positions import PartitionState, SegmentStart
from consumer.settings import Settings
from consumer.subscriptions import SubscriptionIndex
from consumer.table import Change, CompactedTable, LogSource
from messaging_lib import envelope, topics
from messaging_lib.errors import Reason
from messaging_lib.subscriptions import Options, feed_source

log = logging.getLogger("consumer.router")

Ref = tuple[PartitionOffsets, int]  # a routed record: its partition's tracker and its offset
ReaderFactory = Callable[..., GroupReader]
UNASSIGNED_WATCH_S = 30.0  # how long a new topic's assignment is watched for (see _watch_unassigned)


@dataclass(frozen=True, slots=True)
class _Route:
    """One subscription as one partition routes to it: [low, stop) bounds of its joined segments."""

    trigger: str
    version: int
    credential: str = field(repr=False)
    options: Options
    limits: Limits
    bounds: tuple[tuple[int, int | None], ...]
    disabled: bool


@dataclass
class _Partition:
    state: PartitionState
    position: int  # the next offset to read
    offsets: PartitionOffsets = field(default_factory=PartitionOffsets)
    committed: tuple[int, str] | None = None
    routes: list[_Route] | None = None  # the routing plan; None: rebuild before the next record

    def committable(self) -> int:
        taken = self.offsets.committable()
        return self.position if taken is None else taken


class Router:
    def __init__(self, settings: Settings, producer: Producer, table_source: LogSource, metrics: RouterMetrics,
                 reader_factory: ReaderFactory = GroupReader, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._producer, self._table_source, self._metrics, self._clock = producer, table_source, metrics, clock
        self._reader_factory = reader_factory
        self.index = SubscriptionIndex()
        self._staged: list[Change] = []
        self._wake = asyncio.Event()
        self._parts: dict[TopicPartition, _Partition] = {}
        self._owned: set[TopicPartition] = set()  # assigned to this member, as handed over
        self._released: dict[TopicPartition, _Partition] = {}  # revoked, final commit still due
        self._unpositioned: set[TopicPartition] = set()  # owned, still paused, not yet placed
        self._unassigned: dict[str, float] = {}  # new topics none of whose partitions came here yet -> until
        self._metadata_refreshed = 0.0
        self._outstanding: dict[Ref, int] = {}  # routed records -> destinations not yet acknowledged
        self._in_flight = 0
        self._batcher = Batcher()
        self._queues: dict[str, deque[Batch]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._paused = False
        self._stopping = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader: GroupReader | None = None
        self.failure: BaseException | None = None
        self.ready = False
        self.last_poll = clock()

    # --- the main loop ---

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._reader = self._reader_factory(
            self.settings.kafka, self.settings.router_group, self._on_assigned, self._on_revoked,
            fetch_max_wait_ms=100, max_partition_fetch_bytes=4 * 1024 * 1024, **self.settings.membership("router"))
        table_stop = asyncio.Event()
        table = CompactedTable(self._table_source, self._stage)
        table_task = asyncio.ensure_future(table.run(table_stop))
        try:
            await self._until_loaded(table, table_task)
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
        await asyncio.wait({loaded, table_task, stopping}, return_when=asyncio.FIRST_COMPLETED)
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
            if self._released:
                await self._commit_released()
            if self._unpositioned:
                await self._position_assigned()
            if self._unassigned:
                await self._watch_unassigned()
            await self._apply_backpressure()
            if not self._reader.topics:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 0.1)
                self.last_poll = self._clock()
                continue
            records = await self._reader.poll(self._poll_timeout_s(), self.settings.router_max_poll_records)
            now = self._clock()
            for record in records:
                self._route(record, now)
            self._metrics.consumed.inc(len(records))
            self._send(self._batcher.due(now))
            self.last_poll = now
            if now - last_commit >= self.settings.commit_interval_s:
                await self._commit()
                last_commit = self._clock()

    def stop(self) -> None:
        """Stop reading; run() then sends what it holds (until the shutdown timeout) and commits."""
        self.ready = False
        self._stopping.set()
        self._wake.set()

    def _poll_timeout_s(self) -> float:
        due = self._batcher.next_due_s()
        if due is None:
            return 0.1
        return min(0.1, max(0.005, due - self._clock()))

    async def _shutdown(self) -> None:
        unfinished = 0
        if self._reader is not None:
            unfinished = await self._drain(self.settings.shutdown_timeout_s)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._reader is not None:
            await self._commit()
            await self._reader.close()
        log.info("router stopped", extra=fields(unfinished=unfinished))

    async def _apply_backpressure(self) -> None:
        assert self._reader is not None
        limit = self.settings.router_max_in_flight
        want = self._in_flight >= limit or (self._paused and self._in_flight > limit // 2)
        if want != self._paused:
            await self._reader.pause(list(self._parts), want)
            self._paused = want
        elif want and self._parts:
            await self._reader.pause(list(self._parts), True)  # partitions placed since the pause
        self._metrics.in_flight.set(self._in_flight)
        self._metrics.assigned.set(len(self._parts))

    # --- subscription changes ---

    def _stage(self, change: Change) -> None:
        """The table's callback: record and wake, nothing else."""
        self._staged.append(change)
        self._wake.set()

    async def _apply_staged(self) -> None:
        assert self._reader is not None
        changes, self._staged = self._staged, []
        affected: set[str] = set()
        for change in changes:
            changed = self.index.apply(change)
            if changed is None:
                continue
            trigger, old_topic = changed
            self._send(self._batcher.close(trigger))  # what was batched goes out under its version
            live = self.index.get(trigger)
            if live is not None:
                affected.add(live.sub.topic)
            if old_topic is not None:
                affected.add(old_topic)
        for tp, part in self._parts.items():
            if tp.topic in affected:
                part.routes = None
        await self._join([tp for tp in self._parts if tp.topic in affected])
        wanted = self.index.topics()
        if wanted != self._reader.topics:
            await self._drain(self.settings.shutdown_timeout_s)  # the rebalance must not replay work
            await self._commit()
            if not wanted:
                self._parts.clear()
                self._owned.clear()
                self._unpositioned.clear()
            new = wanted - self._reader.topics
            await self._reader.set_topics(wanted)
            until = self._clock() + UNASSIGNED_WATCH_S
            self._unassigned = {t: d for t, d in self._unassigned.items() if t in wanted} | dict.fromkeys(new, until)
            log.info("subscribed topics changed", extra=fields(topics=len(wanted)))
        self._metrics.subscriptions.set(len(self.index))
        self._metrics.topics.set(len(wanted))

    def _segments(self, tp: TopicPartition) -> list[SegmentStart]:
        return [SegmentStart(s.origin, s.start_at(tp.partition))  # type: ignore[arg-type]
                for live in self.index.on_topic(tp.topic) for s in live.sub.segments]

    async def _join(self, partitions: list[TopicPartition]) -> None:
        """Join new segments; a catch-up rewinds only after everything routed is acknowledged, so
        the window it commits never covers a record some other subscription still waits for."""
        planned: dict[TopicPartition, tuple[PartitionState, int]] = {}
        for tp in partitions:
            part = self._parts[tp]
            state = part.state.copy()
            target = positions.join(state, part.position, self._segments(tp), self.index.applied)
            if target is None:
                part.state, part.routes = state, None
            else:
                planned[tp] = (state, target)
        if not planned:
            return
        if await self._drain(None) and self._stopping.is_set():
            return  # not applied: joined again from the committed state after the restart
        planned = {tp: plan for tp, plan in planned.items() if tp in self._parts}  # still ours after the wait
        for tp, (state, target) in planned.items():
            part = self._parts[tp]
            part.state, part.position, part.offsets, part.routes = state, target, PartitionOffsets(), None
        assert self._reader is not None
        await self._reader.seek({tp: target for tp, (_, target) in planned.items()})
        self._metrics.catchups.inc(len(planned))
        log.info("catch-up", extra=fields(partitions={f"{tp.topic}-{tp.partition}": target
                                                      for tp, (_, target) in planned.items()}))

    # --- routing a record ---

    def _route(self, record: Record, now: float) -> None:
        part = self._parts.get((record.topic, record.partition))  # type: ignore[call-overload]
        offset = record.offset
        if part is None or offset < part.position:
            return  # fetched before a revoke or a seek
        part.position = offset + 1
        part.offsets.take(offset)
        self._in_flight += 1
        ref: Ref = (part.offsets, offset)
        routes = part.routes if part.routes is not None else self._plan(part, record.topic, record.partition)
        destinations = 0
        encoded: dict[tuple[bool, bool, bool], bytes | None] = {}
        for route in routes:
            for low, stop in route.bounds:
                if low <= offset and (stop is None or offset < stop):
                    break
            else:
                continue
            destinations += 1
            if route.disabled:
                self._spawn(self._dead_letter(record, ref, route.trigger, Reason.SUBSCRIPTION_DISABLED,
                                              f"the subscription of {route.trigger} is disabled"))
                continue
            key = route.options.encoding
            if key in encoded:
                message = encoded[key]
            else:
                message = encoded[key] = batching.encode(batching.message(
                    record.topic, record.partition, offset, record.key, record.value, record.timestamp_ms,
                    record.headers, route.options))
                if not batching.fits_alone(message, self.settings.max_payload_bytes):
                    encoded[key] = message = None
            if message is None:
                self._spawn(self._dead_letter(record, ref, route.trigger, Reason.PAYLOAD_TOO_LARGE,
                                              f"the message is over the payload limit of "
                                              f"{self.settings.max_payload_bytes} bytes as JSON"))
                continue
            closed = self._batcher.add(route.trigger, route.version, route.credential, route.limits, message, ref,
                                       now)
            if closed:
                self._send(closed)
        if destinations:
            self._outstanding[ref] = destinations
        else:
            self._finish(ref)

    def _plan(self, part: _Partition, topic: str, partition: int) -> list[_Route]:
        """Who receives this partition's records from where: rebuilt only when the table or the
        partition's join state changes (``part.routes = None``), not per record."""
        routes = []
        for live in self.index.on_topic(topic):
            sub = live.sub
            bounds = []
            for segment in sub.segments:
                low = part.state.lower_bound(segment.origin, segment.start_at(partition))  # type: ignore[arg-type]
                if low is not None:
                    bounds.append((low, segment.stop_at(partition)))
            if bounds:
                routes.append(_Route(sub.trigger, live.version, sub.credential, sub.options,
                                     Limits.of(sub.options, self.settings.max_payload_bytes), tuple(bounds),
                                     live.disabled))
        part.routes = routes
        return routes

    def _finish(self, ref: Ref) -> None:
        self._in_flight -= 1
        tracker, offset = ref
        tracker.done(offset)

    def _acknowledged(self, ref: Ref) -> None:
        left = self._outstanding[ref] - 1
        if left:
            self._outstanding[ref] = left
        else:
            del self._outstanding[ref]
            self._finish(ref)

    # --- writing ---

    def _send(self, batches: list[Batch]) -> None:
        for batch in batches:
            queue = self._queues.get(batch.trigger)
            if queue is None:
                self._queues[batch.trigger] = deque([batch])
                self._spawn(self._drain_queue(batch.trigger))
            else:
                queue.append(batch)

    async def _drain_queue(self, trigger: str) -> None:
        queue = self._queues[trigger]
        try:
            while queue:
                batch = queue[0]
                await self._write_envelope(batch)
                queue.popleft()
                for ref in batch.refs:
                    self._acknowledged(ref)  # type: ignore[arg-type]
        finally:
            del self._queues[trigger]

    async def _write_envelope(self, batch: Batch) -> None:
        env = envelope.Envelope(id=str(uuid.uuid4()), source=feed_source(batch.version), trigger=batch.trigger,
                                credential=batch.credential, time=envelope.format_time(datetime.now(UTC)))
        headers, _ = envelope.to_binary(env)  # binary mode: the batch's bytes are the value, as built
        await self._write(self.settings.trigger_messages_topic, batching.payload(batch.messages),
                          batch.trigger.encode("utf-8"), headers)
        self._metrics.envelopes.inc()
        self._metrics.messages.inc(len(batch.messages))

    async def _dead_letter(self, record: Record, ref: Ref, trigger: str, reason: Reason, detail: str) -> None:
        now_ms = int(time.time() * 1000)
        headers = [(k, v) for k, v in record.headers if k not in topics.DEAD_LETTER_HEADERS]
        headers += topics.dead_letter_headers(
            reason=reason, detail=detail, source_topic=record.topic, source_partition=record.partition,
            source_offset=record.offset, first_attempt_ms=now_ms, last_attempt_ms=now_ms, trigger=trigger)
        await self._write(self.settings.dead_letter_topic, record.value, record.key, headers)
        self._metrics.dead_lettered.labels(reason.value).inc()
        log.info("message dead-lettered", extra=fields(reason=reason.value, trigger=trigger, topic=record.topic,
                                                       partition=record.partition, offset=record.offset))
        self._acknowledged(ref)

    async def _write(self, topic: str, value: bytes | None, key: bytes | None,
                     headers: list[tuple[str, bytes]]) -> None:
        """Until the broker acknowledges: the offsets behind the record wait for it."""
        backoff = 0.1
        while True:
            try:
                await self._producer.send(topic, value, key=key, headers=headers)
                return
            except KafkaUnavailable as e:
                log.warning("write failed; retrying", extra=fields(topic=topic, error=str(e)))
                await asyncio.sleep(backoff)
                backoff = min(5.0, backoff * 2)

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """A task that failed is a bug: stop (uncommitted records are read again on restart)."""
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None and self.failure is None:
            log.error("router task failed; stopping", exc_info=error)
            self.failure = error
            self.stop()

    async def _drain(self, timeout_s: float | None) -> int:
        """Send every open batch and wait until all routed records are acknowledged (or the
        timeout, or a stop); returns how many are still outstanding."""
        self._send(self._batcher.close_all())
        deadline = None if timeout_s is None else self._clock() + timeout_s
        while self._in_flight and (deadline is None or self._clock() < deadline):
            if deadline is None and self._stopping.is_set():
                break
            await asyncio.sleep(0.005)
        return self._in_flight

    # --- commits ---

    async def _commit(self) -> None:
        assert self._reader is not None
        offsets, rejoin = _offsets_to_commit(self._parts)
        if offsets:
            try:
                await self._reader.commit(offsets)
                for tp, value in offsets.items():
                    if tp in self._parts:
                        self._parts[tp].committed = value
                self._metrics.commits.inc()
            except KafkaUnavailable as e:
                log.warning("commit failed; will retry", extra=fields(error=str(e)))
        if rejoin and not self._stopping.is_set():
            await self._join([tp for tp in rejoin if tp in self._parts])

    # --- rebalances: kafka-python's IO thread only hands over; the loop does the work ---

    def _on_assigned(self, assigned: list[TopicPartition]) -> None:
        self._hand_over(self._own, assigned)

    def _on_revoked(self, revoked: list[TopicPartition]) -> None:
        self._hand_over(self._forget, revoked)

    def _hand_over(self, fn: Callable[[list[TopicPartition]], object], partitions: list[TopicPartition]) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(fn, partitions)
            self._loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:  # the loop is gone: the process is exiting
            pass

    def _own(self, assigned: list[TopicPartition]) -> None:
        self._owned.update(assigned)
        self._unpositioned.update(assigned)

    def _forget(self, revoked: list[TopicPartition]) -> None:
        """Stop routing them; the loop commits what was done before it polls again."""
        for tp in revoked:
            part = self._parts.pop(tp, None)
            if part is not None:
                self._released[tp] = part
        self._owned.difference_update(revoked)
        self._unpositioned.difference_update(revoked)

    async def _commit_released(self) -> None:
        """Cooperative rebalancing keeps this member's generation until it rejoins (at its next
        poll), so the revoked partitions' last work can still be committed: the new owner starts
        there. If that fails (fenced, Kafka down), it re-reads from the previous commit:
        duplicates, never a loss."""
        assert self._reader is not None
        await self._drain(min(10.0, self.settings.shutdown_timeout_s))
        released, self._released = self._released, {}
        offsets, _ = _offsets_to_commit(released)
        try:
            await self._reader.commit(offsets)
        except KafkaUnavailable as e:
            log.warning("commit of revoked partitions failed", extra=fields(error=str(e)))
        log.info("partitions revoked", extra=fields(partitions=sorted(f"{t.topic}-{t.partition}" for t in released)))

    async def _watch_unassigned(self) -> None:
        """A topic subscribed lately and not assigned here yet: refresh the metadata now and then,
        so a leader that assigned before it knew the topic rebalances (another member may simply
        own all of it: the watch ends after a while)."""
        assert self._reader is not None
        now = self._clock()
        mine = {tp.topic for tp in self._owned}
        self._unassigned = {t: until for t, until in self._unassigned.items() if t not in mine and now < until}
        if self._unassigned and now - self._metadata_refreshed >= 1.0:
            self._metadata_refreshed = now
            try:
                await self._reader.refresh_metadata()
            except KafkaUnavailable as e:
                log.warning("metadata refresh failed", extra=fields(error=str(e)))

    async def _position_assigned(self) -> None:
        """Place newly assigned (and still paused) partitions from their committed offset and
        metadata, or at the start of their subscriptions, then let them be fetched."""
        assert self._reader is not None
        assigned = sorted(self._unpositioned)
        self._unpositioned.clear()
        try:
            committed, ends = await self._reader.positions_of(assigned)
        except KafkaUnavailable as e:
            log.warning("cannot position assigned partitions; will retry", extra=fields(error=str(e)))
            self._unpositioned.update(assigned)
            return
        seeks = {}
        for tp in assigned:
            if tp not in self._owned:
                continue  # revoked while its position was fetched
            state, position = positions.initial(committed.get(tp), self._segments(tp), self.index.applied)
            self._parts[tp] = _Partition(state, ends[tp] if position is None else position,
                                         committed=committed.get(tp))
            seeks[tp] = self._parts[tp].position
        await self._reader.start(seeks)
        log.info("partitions assigned", extra=fields(partitions={f"{t.topic}-{t.partition}": o
                                                                 for t, o in seeks.items()}))


def _offsets_to_commit(parts: dict[TopicPartition, _Partition]) -> tuple[Offsets, list[TopicPartition]]:
    """What to commit (offset and catch-up metadata) where it changed, and the partitions whose
    closed catch-up window lets deferred segments join."""
    offsets: Offsets = {}
    rejoin = []
    for tp, part in parts.items():
        committable = part.committable()
        window = part.state.window_end
        if positions.settle(part.state, committable):
            rejoin.append(tp)
        if window != part.state.window_end:
            part.routes = None
        value = (committable, positions.encode(part.state, committable))
        if value != part.committed:
            offsets[tp] = value
    return offsets, rejoin
