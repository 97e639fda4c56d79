"""Parking: a throttled, failing or slow namespace never fills the firer's in-flight window
(issue 13; DESIGN.md section 5, *Fairness* and *At-least-once*).

The in-flight window (``max_in_flight``) bounds memory: when it is full every partition pauses.
A namespace over its OpenWhisk limit fires slowly, so without parking its backlog fills the
window and no other namespace's message is even read. Here the window is shared by namespace:

- **Share** (``Window``): a namespace may hold ``capacity // (active namespaces + 1)`` messages
  (the ``+ 1`` keeps room for a namespace not seen yet); it may borrow beyond that while the
  window is not full.
- **Park decision** (``should_park``): a message is parked when its trigger already has parked
  messages (order), or its namespace holds at least its share and is throttled or failing, or
  holds at least its share while the window is full. A healthy namespace alone is never parked:
  the window pauses its partitions as before (backpressure bounds memory). A parked message is written to the park
  topic ``<firer topic>-parked`` (same partition number, same key, value and headers, plus the
  ``park_*`` headers) and only once that write is acknowledged is its main offset finished, so
  the main commit advances past it. The first message a trigger parks takes the trigger's queued
  main messages along, ahead of it: left in the window as predecessors of parked ones they could
  never leave it (order), and a namespace throttled after taking most of the window would keep
  it until its throttle ended.
- **Park writes** (``ParkWrites``): a write the producer gave up on is not sent again (it could
  land behind later parked messages of its trigger); its message goes back to its trigger's
  queue, in order, and fires from memory. A parked message is not taken back while an earlier
  write of its trigger is unsettled.
- **Backpressure** (``WindowBackpressure``): the window still pauses every partition when full
  (the memory bound), and resumes once half of what blocked namespaces do not hold is free:
  what a throttled namespace holds waits for its pace (after a per-minute 429 until the minute
  ends) and must not keep the others' partitions paused meanwhile.
- **Order per trigger** (``ParkedTriggers``): per park partition, the number of parked messages
  of each trigger not yet taken back. While it is above zero every later message of the trigger
  is parked behind them. A parked message taken back goes into the trigger's queue, behind any
  of its messages still held, so it never overtakes one.
- **Draining** (``Parking``): the owner of main partition ``p`` reads park partition ``p``
  (assigned, no group: ownership of ``p`` decides), and takes a parked message back when its
  namespace is under its share and, when paced, holds less than its pace lets it fire within
  ``PACED_AHEAD_S`` (a namespace held to the end of its minute takes nothing back: the window
  stays free for reading the backlog ahead of the others' messages); one trigger's messages are
  taken in offset order, another
  namespace's may pass them. What was read is tracked like a main partition
  (``offsets.PartitionOffsets``): the park read position is the first parked message not yet
  finished, and it travels in main partition ``p``'s commit metadata (``offsets.encode``'s
  ``park`` field), so one atomic commit covers both.
- **Assignment** of ``p``: the park position comes with the committed metadata; park partition
  ``p`` is read from there to its end to rebuild the parked triggers (``RESTORING``) before any
  main record of ``p`` is admitted (they wait, counted in the window); then draining starts from
  the park position.

Crash safety (nothing lost, order per trigger kept):

1. A main record leaves the main partition (its offset may be committed) only when fired,
   dead-lettered or its park copy acknowledged: a crash before that re-reads it from main (a
   message whose park write failed fires from memory: its offset waits for that fire).
2. A parked message leaves the park (the park position passes it) only when fired or
   dead-lettered; the position is committed with main ``p``'s offset in one commit, so the
   committed pair is always a state this process had: every message is either below the main
   offset and at or above the park position, or re-read from main.
3. After a crash, the main records not finished at the last commit are read again (the ones
   finished above the committed offset, parked ones included, are skipped by the commit's
   finished-offsets metadata). The rebuild counts every parked message from the committed park
   position, with the main offset it came from (``park_source_offset``). A re-read record of a
   trigger with parked messages is parked again when it came after the first of them (its copy
   parked before the crash, if any, is ahead of it: a duplicate, never a loss), and held when
   it came before (it was held before the crash, a predecessor of the parked ones); and no
   parked message is taken back before the main partition was read past the offset it came
   from, so such a predecessor is in the trigger's queue ahead of it. A re-read record whose
   trigger has no parked message had none ahead of it either (the position never passes an
   unfinished parked message), so holding it keeps the order.
4. Duplicates, as in the rest of the firer, only of what finished after the last commit: a
   parked message fired after the last commit fires again (the position is a single offset).

Pure state here (``Window``, ``ParkedTriggers``, ``ParkWrites``, ``ParkPartition``, ``should_park``,
``WindowBackpressure``) and one loop
object (``Parking``) that the firer drives; the Kafka side is ``kafka_edge.PartitionReader`` and
the firer's producer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Generic, Protocol, TypeVar

from kafka import TopicPartition

from consumer.kafka_shared import Record
from consumer.logs import fields
from consumer.offsets import PartitionOffsets
from consumer.toolkit import Backpressure
from messaging_lib import topics

log = logging.getLogger("consumer.parking")
T = TypeVar("T")

H_TRIGGER = "park_trigger"  # the trigger FQN /ns/name the parked message fires
H_PARKED_MS = "park_time_ms"  # epoch ms of the park write (time spent parked)
H_SOURCE_OFFSET = "park_source_offset"  # the main record's offset, for tracing
PARK_HEADERS = (H_TRIGGER, H_PARKED_MS, H_SOURCE_OFFSET)
FULL_FRACTION = 0.75  # parked messages are taken back only while the window is under this part
BUFFER_MAX = 500  # parked records read ahead per park partition (memory bound of the drain)
PACED_AHEAD_S = 2.0  # a paced namespace takes back what its pace lets it fire in this long (at least one)
RESTORE_WITHOUT_RECORDS_S = 2.0  # an idle assigned partition is restored after this, position or not


def park_topic(firer_topic: str) -> str:
    return topics.parked_topic(firer_topic)


def park_headers(headers: Sequence[tuple[str, bytes]], trigger: str, source_offset: int,
                 now_ms: int) -> list[tuple[str, bytes]]:
    """The original headers (any earlier ``park_*`` ones dropped) plus this parking's."""
    kept = [(k, v) for k, v in headers if k not in PARK_HEADERS]
    return [*kept, (H_TRIGGER, trigger.encode()), (H_PARKED_MS, str(now_ms).encode()),
            (H_SOURCE_OFFSET, str(source_offset).encode())]


def header(record: Record, name: str) -> str | None:
    for key, value in record.headers:
        if key == name:
            return value.decode("utf-8", "replace")
    return None


def namespace_of(trigger: str) -> str:
    """``/ns/name`` → ``ns``."""
    return trigger.split("/")[1] if trigger.count("/") >= 2 else ""


# --- the pure decisions ---------------------------------------------------------------------------


class Window:
    """The in-flight window, held per namespace (messages taken and not finished, parked ones
    excepted). ``key``: the message's (topic, partition, offset)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._held: Counter[str] = Counter()
        self._keys: dict[Hashable, str] = {}

    def hold(self, key: Hashable, namespace: str) -> None:
        if key not in self._keys:
            self._keys[key] = namespace
            self._held[namespace] += 1

    def release(self, key: Hashable) -> None:
        namespace = self._keys.pop(key, None)
        if namespace is None:
            return
        self._held[namespace] -= 1
        if self._held[namespace] <= 0:
            del self._held[namespace]

    def held(self, namespace: str) -> int:
        return self._held.get(namespace, 0)

    def namespaces(self) -> list[str]:
        return list(self._held)

    @property
    def total(self) -> int:
        return len(self._keys)

    def share(self) -> int:
        """Each active namespace's fair share, one share kept for a namespace yet to come."""
        return max(1, self.capacity // (len(self._held) + 1))

    def full(self) -> bool:
        return self.total >= self.capacity

    def held_by(self, namespaces: Callable[[str], bool]) -> int:
        """What the namespaces ``namespaces`` accepts hold."""
        return sum(n for namespace, n in self._held.items() if namespaces(namespace))

    def room(self, namespace: str) -> bool:
        """May a parked message of this namespace be taken back now: under its share, and the
        window under ``FULL_FRACTION`` (the rest stays for messages read from the main topic)."""
        return self.held(namespace) < self.share() and self.total < self.capacity * FULL_FRACTION


def should_park(*, trigger_parked: bool | None, held: int, share: int, blocked: bool, full: bool) -> bool:
    """Park (rather than hold) a message: its trigger has parked ones from before it (order), or
    its namespace holds its share and is throttled or failing, or holds its share while the
    window is full. ``trigger_parked`` None: its trigger has parked messages that came *after*
    it (re-read after a crash): it must be held, ahead of them."""
    if trigger_parked is None:
        return False
    if trigger_parked:
        return True
    return held >= share and (blocked or full)


class WindowBackpressure(Backpressure):
    """The window's backpressure with parking: pause at the limit as before (the memory bound),
    resume once half of the part of the window that blocked namespaces do not hold is free.

    What a throttled namespace holds waits for its pace, after a per-minute 429 often until the
    minute ends. Counted in a fixed resume threshold (half the window) it kept every partition
    paused until then whenever blocked namespaces held more than half: two throttled namespaces
    at their shares hold two thirds of the window, one alone at its share (half) is above half
    with any other message in flight, one that kept a trigger's queue behind a parked message
    was over its share. Every other namespace then waited for the throttle to end (issue 13).
    ``stuck``: what blocked namespaces hold now (the firer sets it before each ``apply``)."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.stuck = 0

    def wanted(self, in_flight: int) -> bool:
        stuck = max(0, min(self.stuck, in_flight))
        return in_flight >= self.limit or (self.paused and in_flight - stuck > (self.limit - stuck) // 2)


class ParkedTriggers:
    """Parked messages not yet taken back, per park partition and trigger, and per namespace
    (to log when a namespace starts and stops being parked). Only parked triggers hold state."""

    def __init__(self) -> None:
        self._triggers: dict[int, Counter[str]] = {}
        self._first: dict[tuple[int, str], int] = {}  # the lowest main offset a trigger's parked messages came from
        self._namespaces: Counter[str] = Counter()

    def add(self, partition: int, trigger: str, source_offset: int) -> bool:
        """Count one (parked from main offset ``source_offset``); True when its namespace starts being parked."""
        self._triggers.setdefault(partition, Counter())[trigger] += 1
        key = (partition, trigger)
        self._first[key] = min(self._first.get(key, source_offset), source_offset)
        namespace = namespace_of(trigger)
        self._namespaces[namespace] += 1
        return self._namespaces[namespace] == 1

    def take(self, partition: int, trigger: str) -> bool:
        """One taken back; True when its namespace has no parked message left."""
        counts = self._triggers.get(partition)
        if counts is None or counts[trigger] <= 0:
            return False
        counts[trigger] -= 1
        if counts[trigger] <= 0:
            del counts[trigger]
            del self._first[(partition, trigger)]
        return self._forget_one(namespace_of(trigger))

    def parked(self, partition: int, trigger: str, offset: int | None = None) -> bool | None:
        """Has the trigger parked messages (that came before main ``offset``)? None: it has, but
        they all came after ``offset`` (a record read again after a crash)."""
        counts = self._triggers.get(partition)
        if counts is None or counts.get(trigger, 0) <= 0:
            return False
        if offset is not None and offset < self._first[(partition, trigger)]:
            return None
        return True

    def drop(self, partition: int) -> list[str]:
        """The partition left this member; returns the namespaces no longer parked."""
        ended = []
        for key in [k for k in self._first if k[0] == partition]:
            del self._first[key]
        for trigger, n in self._triggers.pop(partition, Counter()).items():
            namespace = namespace_of(trigger)
            self._namespaces[namespace] -= n - 1
            if self._forget_one(namespace):
                ended.append(namespace)
        return ended

    def _forget_one(self, namespace: str) -> bool:
        self._namespaces[namespace] -= 1
        if self._namespaces[namespace] <= 0:
            del self._namespaces[namespace]
            return True
        return False

    def triggers(self, partition: int) -> int:
        """How many triggers of the partition have parked messages."""
        return len(self._triggers.get(partition, ()))

    def namespaces(self) -> int:
        return len(self._namespaces)

    def __len__(self) -> int:
        return sum(self._namespaces.values())


class ParkWrites(Generic[T]):
    """Park writes not settled yet, per park partition and trigger, in main-offset order.

    A write the producer gave up on (beyond its own retries) is not sent again: sent again it
    could land behind later parked messages of its trigger (their writes went on meanwhile).
    Its message stays in memory instead, in its trigger's queue, and fires from there; its main
    offset is finished only then. ``settle`` hands the failed messages back in their trigger's
    order, each once every earlier write of its trigger settled (an earlier one that is still on
    its way may fail too, and must go ahead of it). A parked message is not taken back while an
    earlier write of its trigger is unsettled (``before``): that one may come back to memory,
    and it goes first."""

    def __init__(self) -> None:
        self._writes: dict[tuple[int, str], dict[int, T | None]] = {}  # offset -> the failed item, None: on its way

    def start(self, partition: int, trigger: str, offset: int) -> None:
        self._writes.setdefault((partition, trigger), {})[offset] = None

    def settle(self, partition: int, trigger: str, offset: int, failed: T | None = None) -> list[T]:
        """The write of main ``offset`` was acknowledged (``failed`` None) or given up; returns the
        failed items that may go back to their trigger's queue now, in order."""
        writes = self._writes.get((partition, trigger))
        if writes is None or offset not in writes:  # forgotten (its partition left): it alone
            return [failed] if failed is not None else []
        if failed is None:
            del writes[offset]
        else:
            writes[offset] = failed
        ready: list[T] = []
        for first in sorted(writes):
            item = writes[first]
            if item is None:
                break  # an earlier write still on its way: what failed after it waits for it
            ready.append(item)
            del writes[first]
        if not writes:
            del self._writes[(partition, trigger)]
        return ready

    def before(self, partition: int, trigger: str, offset: int) -> bool:
        """Is a write of the trigger from before main ``offset`` unsettled (or failed, waiting)?"""
        writes = self._writes.get((partition, trigger))
        return writes is not None and min(writes) < offset

    def drop(self, partition: int) -> None:
        for key in [k for k in self._writes if k[0] == partition]:
            del self._writes[key]

    def __len__(self) -> int:
        return sum(len(w) for w in self._writes.values())


class ParkState(Enum):
    NEW = "new"  # assigned; waiting for the committed park position (or the first main record)
    RESTORING = "restoring"  # reading the park from the position to its end, counting triggers
    DRAINING = "draining"


@dataclass
class ParkPartition:
    """One owned park partition."""

    partition: int
    assigned_at: float
    state: ParkState = ParkState.NEW
    start: int | None = None  # the committed park position; None: from the beginning
    end: int = 0  # RESTORING: read up to here
    next_offset: int = 0  # DRAINING: the next offset expected (older ones are reads from before a seek)
    restored_at: float = float("inf")
    buffer: deque[Record] = field(default_factory=deque)  # DRAINING: read, not yet taken back
    tracker: PartitionOffsets = field(default_factory=PartitionOffsets)  # read ones until finished
    paused: bool = False


def source_offset(record: Record) -> int:
    """The main offset a parked record came from (0 when unreadable: no wait for the main read)."""
    try:
        return int(header(record, H_SOURCE_OFFSET) or 0)
    except ValueError:
        return 0


def takeable(buffer: Iterable[Record], room: Callable[[Record], bool]) -> Iterator[Record]:
    """The buffered parked records to take back now, in order: a record that may not go yet
    (its namespace has no room, or the main partition is not read past where it came from)
    holds back every later record of its trigger (order), not the other triggers'. Lazy:
    ``room`` is asked per record after the previous one was taken (and held by the caller)."""
    blocked: set[str] = set()
    for record in buffer:
        trigger = header(record, H_TRIGGER) or ""
        if trigger in blocked:
            continue
        if room(record):
            yield record
        else:
            blocked.add(trigger)


# --- the loop side --------------------------------------------------------------------------------


class ParkReader(Protocol):
    """What parking needs of the park topic's reader; ``kafka_edge.PartitionReader`` is the real one."""

    async def ensure_topic(self, topic: str, like: str) -> None:
        """Create ``topic`` with ``like``'s partition count when missing; refuse one with fewer."""
        ...

    async def add(self, positions: dict[TopicPartition, int | None]) -> dict[TopicPartition, int]:
        """Assign and seek (None: the beginning); returns their end offsets."""
        ...

    async def seek(self, positions: dict[TopicPartition, int | None]) -> None: ...

    async def position(self, partition: TopicPartition) -> int: ...

    async def remove(self, partitions: list[TopicPartition]) -> None: ...

    async def pause(self, partitions: list[TopicPartition], pause: bool) -> None: ...

    async def poll(self, timeout_ms: int, max_records: int) -> list[Record]: ...

    async def close(self) -> None: ...


class ParkProducer(Protocol):
    async def send(self, topic: str, value: bytes | None, key: bytes | None = None,
                   headers: list[tuple[str, bytes]] | None = None, partition: int | None = None
                   ) -> tuple[int, int]: ...


class Parking:
    """The firer's park: decisions, writes, and the reading of owned park partitions. Runs on the
    firer's loop: the firer calls ``assign``/``positioned``/``drop`` from its rebalance
    hand-overs, ``restoring``/``wants``/``park``/``write`` for main records and ``step`` from its drain
    task, which admits each parked record taken back into its trigger's queue (``admit``)."""

    def __init__(self, firer_topic: str, capacity: int, reader: ParkReader | None, producer: ParkProducer,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``reader`` None: no park (nothing is parked, the window pauses as before parking existed)."""
        self.firer_topic, self.topic = firer_topic, park_topic(firer_topic)
        self.window = Window(capacity)
        self.triggers = ParkedTriggers()
        self._reader, self._producer, self._clock = reader, producer, clock
        self._partitions: dict[int, ParkPartition] = {}
        self._read: set[int] = set()  # partitions assigned to the reader
        self._topic_checked = False

    # --- ownership, from the firer's rebalance hand-overs ---

    def assign(self, partition: int) -> None:
        if self._reader is not None:
            self._partitions[partition] = ParkPartition(partition, self._clock())

    def positioned(self, partition: int, park: int | None) -> None:
        """The committed park position of a newly assigned partition is known: restore from it."""
        part = self._partitions.get(partition)
        if part is not None and part.state is ParkState.NEW:
            part.start = park
            part.assigned_at = float("-inf")  # due now

    def drop(self, partition: int) -> None:
        """The main partition left: forget its park (the new owner reads it from the committed position)."""
        self._partitions.pop(partition, None)
        for namespace in self.triggers.drop(partition):
            log.info("namespace no longer parked", extra=fields(namespace=namespace, reason="partition left"))

    def settled(self, partition: int) -> bool:
        """Restored a while ago (``RESTORE_WITHOUT_RECORDS_S``): main records there were are read by now."""
        part = self._partitions.get(partition)
        return part is not None and self._clock() - part.restored_at >= RESTORE_WITHOUT_RECORDS_S

    def tracker(self, partition: int) -> PartitionOffsets | None:
        part = self._partitions.get(partition)
        return part.tracker if part is not None and part.state is ParkState.DRAINING else None

    def position(self, partition: int) -> int | None:
        """The park read position to commit with main ``partition`` (None: nothing known yet)."""
        part = self._partitions.get(partition)
        if part is None or part.state is not ParkState.DRAINING:
            return part.start if part is not None else None
        committable = part.tracker.committable()
        return part.start if committable is None else committable

    # --- main records ---

    def restoring(self, partition: int) -> bool:
        """True while the partition's parked triggers are not rebuilt: its main records wait
        (``step`` names the partition once restored). A record means its commit, if any, is
        known already (it is handed over before the records): the restore starts now."""
        part = self._partitions.get(partition)
        if part is None or part.state is ParkState.DRAINING:
            return False
        if part.state is ParkState.NEW:
            part.assigned_at = float("-inf")
        return True

    def wants(self, record: Record, trigger: str, namespace: str, blocked: bool) -> bool:
        """Park this main record? The caller then counts it (``park``) at once, so its trigger's
        later messages park behind it even before the write is acknowledged."""
        if self._reader is None:
            return False
        return should_park(trigger_parked=self.triggers.parked(record.partition, trigger, record.offset),
                           held=self.window.held(namespace), share=self.window.share(), blocked=blocked,
                           full=self.window.full())

    @property
    def enabled(self) -> bool:
        return self._reader is not None

    def park(self, record: Record, trigger: str, blocked: bool = True) -> None:
        """Count a main record as parked (``wants`` said so, or evicted from its trigger's queue)."""
        if self.triggers.add(record.partition, trigger, record.offset):
            namespace = namespace_of(trigger)
            log.info("namespace parked", extra=fields(namespace=namespace, held=self.window.held(namespace),
                                                      share=self.window.share(), throttled=blocked))

    async def write(self, record: Record, trigger: str) -> None:
        """Write the parked copy; returns once acknowledged (raises the producer's error)."""
        await self._producer.send(self.topic, record.value, record.key,
                                  park_headers(record.headers, trigger, record.offset, int(time.time() * 1000)),
                                  partition=record.partition)

    # --- the drain ---

    async def step(self, admit: Callable[[Record], None], room: Callable[[Record], bool],
                   timeout_ms: int = 100) -> list[int]:
        """One round: start due restores, read, finish restores, and take back what has room
        (``admit`` per record, before ``room`` is asked again). Returns the partitions whose
        restore finished (their held main records may go now)."""
        if self._reader is None:
            await asyncio.sleep(timeout_ms / 1000)
            return []
        await self._start_restores(self._reader)
        await self._forget_removed(self._reader)
        if not self._read:
            await asyncio.sleep(timeout_ms / 1000)
        records = await self._reader.poll(timeout_ms, 1000) if self._read else []
        for record in records:
            part = self._partitions.get(record.partition)
            if part is None:
                continue  # read before its partition left
            if part.state is ParkState.RESTORING and record.offset < part.end:
                self.triggers.add(part.partition, header(record, H_TRIGGER) or "", source_offset(record))
            elif part.state is ParkState.DRAINING and record.offset >= part.next_offset:
                part.tracker.take(record.offset)
                part.buffer.append(record)
                part.next_offset = record.offset + 1
        restored = await self._finish_restores(self._reader)
        await self._take(self._reader, admit, room)
        return restored

    async def _start_restores(self, reader: ParkReader) -> None:
        now = self._clock()
        due = [p for p in self._partitions.values()
               if p.state is ParkState.NEW and now - p.assigned_at >= RESTORE_WITHOUT_RECORDS_S]
        if not due:
            return
        if not self._topic_checked:
            await reader.ensure_topic(self.topic, like=self.firer_topic)
            self._topic_checked = True
        ends = await reader.add({TopicPartition(self.topic, p.partition): p.start for p in due})
        self._read.update(p.partition for p in due)
        for part in due:
            part.end = ends.get(TopicPartition(self.topic, part.partition), 0)
            part.state = ParkState.RESTORING

    async def _forget_removed(self, reader: ParkReader) -> None:
        gone = [p for p in self._read if p not in self._partitions]
        if gone:
            await reader.remove([TopicPartition(self.topic, p) for p in gone])
            self._read.difference_update(gone)

    async def _finish_restores(self, reader: ParkReader) -> list[int]:
        """A restoring partition read to its end: rewind to the position and drain."""
        done = []
        for part in self._partitions.values():
            if part.state is ParkState.RESTORING and \
                    await reader.position(TopicPartition(self.topic, part.partition)) >= part.end:
                done.append(part)
        if not done:
            return []
        await reader.seek({TopicPartition(self.topic, p.partition): p.start for p in done})
        for part in done:
            part.state = ParkState.DRAINING
            part.next_offset = part.start or 0
            part.restored_at = self._clock()
            log.info("park partition restored", extra=fields(
                topic=self.topic, partition=part.partition, position=part.start, end=part.end,
                parked_triggers=self.triggers.triggers(part.partition)))
        return [p.partition for p in done]

    async def _take(self, reader: ParkReader, admit: Callable[[Record], None],
                    room: Callable[[Record], bool]) -> None:
        for part in self._partitions.values():
            if part.state is not ParkState.DRAINING:
                continue
            if part.buffer:
                taken = set()
                for record in takeable(part.buffer, room):
                    trigger = header(record, H_TRIGGER) or ""
                    if self.triggers.take(part.partition, trigger):
                        log.info("namespace no longer parked", extra=fields(namespace=namespace_of(trigger)))
                    taken.add(record.offset)
                    admit(record)
                if taken:
                    part.buffer = deque(r for r in part.buffer if r.offset not in taken)
            await self._flow(reader, part)

    async def _flow(self, reader: ParkReader, part: ParkPartition) -> None:
        """Pause a park partition whose read-ahead is full; resume it at half."""
        tp = TopicPartition(self.topic, part.partition)
        if not part.paused and len(part.buffer) >= BUFFER_MAX:
            await reader.pause([tp], True)
            part.paused = True
        elif part.paused and len(part.buffer) <= BUFFER_MAX // 2:
            await reader.pause([tp], False)
            part.paused = False

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.close()


def parked_seconds(record: Record, now_s: float) -> float | None:
    """How long a parked record waited (from its ``park_time_ms`` header), or None."""
    parked_ms = header(record, H_PARKED_MS)
    try:
        return max(0.0, now_s - int(parked_ms) / 1000) if parked_ms else None
    except ValueError:
        return None
