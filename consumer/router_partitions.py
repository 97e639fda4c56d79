"""The router's partitions: which it owns, where each reads and for whom, and what to commit.

The routing loop (consumer/router.py) owns one ``Partitions`` and calls it between its own steps;
nothing here runs on another thread. What it owns:

- **ownership**: the partitions the group handed over (``own``/``forget``, staged by the loop from
  the rebalance callbacks), placed before they are fetched (``position_assigned``), and the revoked
  ones whose final commit is still due (``commit_released``). A topic subscribed lately is watched
  until one of its partitions comes here (``watch_unassigned``).
- **positions**: where each partition reads and which subscription segments it serves
  (consumer/positions.py): a new segment joins, rewinding the partition for a catch-up
  (``join``); the routing plan of a partition (``routes_of``) follows its join state.
- **commits**: per partition the first offset not yet acknowledged, with its catch-up state as
  metadata, written only where it changed (``commit``).

Kafka is reached only through the ``GroupReader`` the loop passes in; waiting for the routed
records to be acknowledged (before a rewind, or a revoked partition's last commit) is the loop's
``drain``, injected.
"""

from __future__ import annotations

import asyncio
import logging
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from kafka import TopicPartition

from consumer import positions
from consumer.kafka_rd import GroupReader
from consumer.kafka_shared import KafkaUnavailable, Offsets, PartitionRecords
from consumer.logs import fields
from consumer.metrics import RouterMetrics
from consumer.offsets import PartitionOffsets
from consumer.positions import PartitionState, SegmentStart
from consumer.settings import Settings
from consumer.subscriptions import SubscriptionIndex
from feed.options import BatchLimits, batch_limits
from feed.records import Options, Segment

log = logging.getLogger("consumer.router")

_OFFSET = attrgetter("offset")
Drain = Callable[[float | None], Awaitable[int]]  # wait for acknowledgements (timeout); returns what is left
UNASSIGNED_WATCH_S = 30.0  # how long a new topic's assignment is watched for (see watch_unassigned)


@dataclass(frozen=True, slots=True)
class Route:
    """One subscription as one partition routes to it: [low, stop) bounds of its joined segments;
    ``encoding`` is ``options.encoding``, built once per plan (records sharing it are encoded once)."""

    trigger: str
    version: int
    credential: str = field(repr=False)
    options: Options
    limits: BatchLimits
    bounds: tuple[tuple[int, int | None], ...]
    disabled: bool
    encoding: tuple[object, ...] = ()

    def delivers(self, offset: int) -> bool:
        return any(low <= offset and (stop is None or offset < stop) for low, stop in self.bounds)

    def spans(self, offsets: Sequence[int]) -> list[tuple[int, int]]:
        """The index ranges [i, k) of ``offsets`` (ascending) this route delivers, in order."""
        found = []
        for low, stop in self.bounds:
            i = bisect_left(offsets, low)
            k = len(offsets) if stop is None else bisect_left(offsets, stop)
            if i < k:
                found.append((i, k))
        if len(found) < 2:
            return found
        found.sort()
        merged = [found[0]]
        for i, k in found[1:]:  # segments do not overlap; merged all the same, each record once
            if i <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(k, merged[-1][1]))
            else:
                merged.append((i, k))
        return merged


@dataclass
class Partition:
    state: PartitionState
    position: int  # the next offset to read
    offsets: PartitionOffsets = field(default_factory=PartitionOffsets)
    committed: tuple[int, str] | None = None
    routes: list[Route] | None = None  # the routing plan; None: rebuild before the next record

    def committable(self) -> int:
        taken = self.offsets.committable()
        return self.position if taken is None else taken


class Partitions:
    def __init__(self, settings: Settings, index: SubscriptionIndex, drain: Drain, stopping: asyncio.Event,
                 metrics: RouterMetrics, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings, self._index, self._drain, self._stopping = settings, index, drain, stopping
        self._metrics, self._clock = metrics, clock
        self._parts: dict[TopicPartition, Partition] = {}
        self._owned: set[TopicPartition] = set()  # assigned to this member, as handed over
        self._released: dict[TopicPartition, Partition] = {}  # revoked, final commit still due
        self._unpositioned: set[TopicPartition] = set()  # owned, still paused, not yet placed
        self._unassigned: dict[str, float] = {}  # new topics none of whose partitions came here yet -> until
        self._metadata_refreshed = 0.0

    def __len__(self) -> int:
        return len(self._parts)

    def placed(self) -> list[TopicPartition]:
        """The partitions positioned and routed here (the ones to pause or resume)."""
        return list(self._parts)

    # --- ownership: the rebalance callbacks' hand-over, applied on the loop ---

    def own(self, assigned: list[TopicPartition]) -> None:
        self._owned.update(assigned)
        self._unpositioned.update(assigned)

    def forget(self, revoked: list[TopicPartition]) -> None:
        """Stop routing them; the loop commits what was done before it polls again."""
        for tp in revoked:
            part = self._parts.pop(tp, None)
            if part is not None:
                self._released[tp] = part
        self._owned.difference_update(revoked)
        self._unpositioned.difference_update(revoked)

    def clear(self) -> None:
        """No topic is subscribed any more: the consumer leaves the group (committed before)."""
        self._parts.clear()
        self._owned.clear()
        self._unpositioned.clear()

    def watch(self, wanted: frozenset[str], new: Collection[str]) -> None:
        """The subscribed topics changed: watch the new ones until a partition of theirs comes here."""
        until = self._clock() + UNASSIGNED_WATCH_S
        self._unassigned = {t: d for t, d in self._unassigned.items() if t in wanted} | dict.fromkeys(new, until)

    async def tend(self, reader: GroupReader) -> None:
        """The loop's ownership step: commit revoked partitions, place assigned ones, watch new topics."""
        if self._released:
            await self.commit_released(reader)
        if self._unpositioned:
            await self.position_assigned(reader)
        if self._unassigned:
            await self.watch_unassigned(reader)

    async def commit_released(self, reader: GroupReader) -> None:
        """Cooperative rebalancing keeps this member's generation until it rejoins (at its next
        poll), so the revoked partitions' last work can still be committed: the new owner starts
        there. If that fails (fenced, Kafka down), it re-reads from the previous commit:
        duplicates, never a loss."""
        await self._drain(min(10.0, self._settings.shutdown_timeout_s))
        released, self._released = self._released, {}
        offsets, _ = _offsets_to_commit(released)
        try:
            await reader.commit(offsets)
        except KafkaUnavailable as e:
            log.warning("commit of revoked partitions failed", extra=fields(error=str(e)))
        log.info("partitions revoked", extra=fields(partitions=sorted(f"{t.topic}-{t.partition}" for t in released)))

    async def watch_unassigned(self, reader: GroupReader) -> None:
        """A topic subscribed lately and not assigned here yet: refresh the metadata now and then,
        so a leader that assigned before it knew the topic rebalances (another member may simply
        own all of it: the watch ends after a while)."""
        now = self._clock()
        mine = {tp.topic for tp in self._owned}
        self._unassigned = {t: until for t, until in self._unassigned.items() if t not in mine and now < until}
        if self._unassigned and now - self._metadata_refreshed >= 1.0:
            self._metadata_refreshed = now
            try:
                await reader.refresh_metadata()
            except KafkaUnavailable as e:
                log.warning("metadata refresh failed", extra=fields(error=str(e)))

    async def position_assigned(self, reader: GroupReader) -> None:
        """Place newly assigned (and still paused) partitions from their committed offset and
        metadata, or at the start of their subscriptions, then let them be fetched."""
        assigned = sorted(self._unpositioned)
        self._unpositioned.clear()
        try:
            committed, ends = await reader.positions_of(assigned)
        except KafkaUnavailable as e:
            log.warning("cannot position assigned partitions; will retry", extra=fields(error=str(e)))
            self._unpositioned.update(assigned)
            return
        seeks = {}
        for tp in assigned:
            if tp not in self._owned:
                continue  # revoked while its position was fetched
            state, position = positions.initial(committed.get(tp), self._segments(tp), self._index.applied)
            self._parts[tp] = Partition(state, ends[tp] if position is None else position,
                                        committed=committed.get(tp))
            seeks[tp] = self._parts[tp].position
        await reader.start(seeks)
        log.info("partitions assigned", extra=fields(partitions={f"{t.topic}-{t.partition}": o
                                                                 for t, o in seeks.items()}))

    # --- positions: who receives what, from where ---

    def take(self, fetched: PartitionRecords) -> tuple[Partition, list[int], Sequence[Any]] | None:
        """Account for a partition's fetched records about to be routed: the partition, the
        offsets and the records that are ours to route (not fetched before a revoke or a seek),
        or None when none is."""
        part = self._parts.get(TopicPartition(fetched.topic, fetched.partition))
        if part is None:
            return None
        records = fetched.records
        offsets = list(map(_OFFSET, records))
        first = bisect_left(offsets, part.position)
        if first == len(offsets):
            return None
        if first:
            offsets, records = offsets[first:], records[first:]
        part.position = offsets[-1] + 1
        take = part.offsets.take
        for offset in offsets:
            take(offset)
        return part, offsets, records

    def routes_of(self, part: Partition, topic: str, partition: int) -> list[Route]:
        """Who receives this partition's records from where: rebuilt only when the table or the
        partition's join state changes (``part.routes = None``), not per record."""
        if part.routes is not None:
            return part.routes
        routes = []
        for live in self._index.on_topic(topic):
            sub = live.sub
            bounds = []
            for segment in sub.segments:
                low = part.state.lower_bound(_origin(segment), segment.start_at(partition))
                if low is not None:
                    bounds.append((low, segment.stop_at(partition)))
            if bounds:
                routes.append(Route(sub.trigger, live.version, sub.credential, sub.options,
                                    batch_limits(sub.options, self._settings.max_payload_bytes), tuple(bounds),
                                    live.disabled, sub.options.encoding))
        part.routes = routes
        return routes

    def replan(self, topics: Collection[str]) -> list[TopicPartition]:
        """The table changed for these topics: their partitions' plans are rebuilt; returns them."""
        affected = [tp for tp in self._parts if tp.topic in topics]
        for tp in affected:
            self._parts[tp].routes = None
        return affected

    def _segments(self, tp: TopicPartition) -> list[SegmentStart]:
        return [SegmentStart(_origin(s), s.start_at(tp.partition))
                for live in self._index.on_topic(tp.topic) for s in live.sub.segments]

    async def join(self, reader: GroupReader, partitions: Iterable[TopicPartition]) -> None:
        """Join new segments; a catch-up rewinds only after everything routed is acknowledged, so
        the window it commits never covers a record some other subscription still waits for."""
        planned = self._plan_joins(partitions)
        if not planned:
            return
        if await self._drain(None) and self._stopping.is_set():
            return  # not applied: joined again from the committed state after the restart
        planned = {tp: plan for tp, plan in planned.items() if tp in self._parts}  # still ours after the wait
        for tp, (state, target) in planned.items():
            part = self._parts[tp]
            part.state, part.position, part.offsets, part.routes = state, target, PartitionOffsets(), None
        await reader.seek({tp: target for tp, (_, target) in planned.items()})
        self._metrics.catchups.inc(len(planned))
        log.info("catch-up", extra=fields(partitions={f"{tp.topic}-{tp.partition}": target
                                                      for tp, (_, target) in planned.items()}))

    def _plan_joins(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, tuple[PartitionState, int]]:
        """Join where no rewind is needed (applied now); returns the rewinds: new state and target."""
        planned: dict[TopicPartition, tuple[PartitionState, int]] = {}
        for tp in partitions:
            part = self._parts[tp]
            state = part.state.copy()
            target = positions.join(state, part.position, self._segments(tp), self._index.applied)
            if target is None:
                part.state, part.routes = state, None
            else:
                planned[tp] = (state, target)
        return planned

    # --- commits ---

    async def commit(self, reader: GroupReader) -> bool:
        """Commit what changed (while stopping, revoked partitions' work too); a catch-up window
        that closed lets deferred segments join. False when the commit was refused."""
        parts = self._parts | self._released if self._stopping.is_set() else self._parts
        offsets, rejoin = _offsets_to_commit(parts)
        landed = True
        if offsets:
            try:
                await reader.commit(offsets)
                for tp, value in offsets.items():
                    if tp in parts:
                        parts[tp].committed = value
                self._metrics.commits.inc()
            except KafkaUnavailable as e:
                log.warning("commit failed; will retry", extra=fields(error=str(e)))
                landed = False
        if rejoin and not self._stopping.is_set():
            await self.join(reader, [tp for tp in rejoin if tp in self._parts])
        return landed


def _offsets_to_commit(parts: dict[TopicPartition, Partition]) -> tuple[Offsets, list[TopicPartition]]:
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


def _origin(segment: Segment) -> int:
    """The index holds resolved subscriptions (``Subscription.resolved``): every origin is set."""
    assert segment.origin is not None, "an unresolved segment reached the router"
    return segment.origin
