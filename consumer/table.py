"""A compacted topic read as a table: to its end first (then ``ready``), then followed live.

The Kafka Connect ``KafkaBasedLog`` idea, small: ``CompactedTable`` reads a ``LogSource`` from
the beginning up to the end offset it had when reading started, sets ``loaded``, and keeps
following. Every record becomes a ``Change`` handed to ``on_change``, which must only record it
and wake its owner's loop (the owner applies changes between its own steps, so one loop owns all
state). A null value is a delete; interpreting keys and values is the owner's business.

Loading is the costly part (a million records take most of a router's start), so an owner may
take it in bulk: ``on_load`` gets each read of the load whole (one call per few thousand
records, where it may skip a record a later one of the same key replaces), and ``long_lived``
keeps Python's cyclic garbage collector off the records' objects (``_gc_paused``).

``LogSource`` is the one-method-per-need interface; ``MemoryLog`` implements it for unit tests,
``consumer.kafka_rd.KafkaLog`` for Kafka.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import NamedTuple, Protocol

log = logging.getLogger("consumer.table")


class Change(NamedTuple):
    """One record. A named tuple, not a frozen dataclass: a million are made while a table loads,
    at about a third of the cost each."""

    offset: int
    key: bytes | None
    value: bytes | None

    def __repr__(self) -> str:  # the value (a sealed credential, say) stays out of logs
        return f"Change(offset={self.offset!r}, key={self.key!r})"


class LogSource(Protocol):
    async def open(self) -> int:
        """Start reading from the beginning; returns the end offset (one past the last record) now."""

    async def read(self, timeout_s: float) -> list[Change]:
        """The next records (possibly none, after at most ``timeout_s``)."""

    async def close(self) -> None: ...


class CompactedTable:
    """``on_load``: given, it takes the reads before ``loaded`` (each a list, offsets ascending)
    instead of ``on_change``. ``long_lived``: what the owner builds from the load lives as long as
    the process (``_gc_paused``)."""

    def __init__(self, source: LogSource, on_change: Callable[[Change], None], poll_s: float = 0.1, *,
                 on_load: Callable[[Sequence[Change]], None] | None = None, long_lived: bool = False) -> None:
        self._source, self._on_change, self._poll_s = source, on_change, poll_s
        self._on_load, self._long_lived = on_load, long_lived
        self.loaded = asyncio.Event()
        self.position = 0  # one past the last offset handed over

    async def run(self, stopping: asyncio.Event) -> None:
        """Read to the end, set ``loaded``, then follow until ``stopping`` is set."""
        end = await self._source.open()
        try:
            with _gc_paused(self._long_lived):
                await self._load(stopping, end)
            while not stopping.is_set():
                self._hand_over(await self._source.read(self._poll_s))
        finally:
            await self._source.close()

    async def _load(self, stopping: asyncio.Event, end: int) -> None:
        while not stopping.is_set() and self.position < end:
            changes = await self._source.read(self._poll_s)
            if self._on_load is None:
                self._hand_over(changes)
            elif changes:
                self._on_load(changes)
                self.position = changes[-1].offset + 1
        if not stopping.is_set():
            log.info("table loaded", extra={"fields": {"records_to": end}})
            self.loaded.set()

    def _hand_over(self, changes: Sequence[Change]) -> None:
        for change in changes:
            self.position = change.offset + 1
            self._on_change(change)


@contextmanager
def _gc_paused(pause: bool) -> Iterator[None]:
    """While loading, no cyclic garbage collection; after it, what it built is frozen out of the
    collector's passes (``gc.freeze``). Why: a router's table is a few million long-lived objects,
    and each full pass walks all of them: while a million subscriptions load, the passes that
    allocation triggers took about a quarter of the load's CPU, and after it every full pass
    would stall the router for a walk over the whole table. The load's own cyclic garbage is
    frozen with it, never collected: measured, about 600 objects per 200,000 records (the clients'
    per-read objects), where collecting it first would walk the whole table once (0.8 CPU s per
    million records)."""
    if not pause or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


class MemoryLog:
    """An in-process append-only log; ``reader()`` gives independent ``LogSource`` readers."""

    def __init__(self) -> None:
        self.records: list[Change] = []
        self._appended = asyncio.Event()

    def append(self, key: bytes | None, value: bytes | None) -> int:
        offset = len(self.records)
        self.records.append(Change(offset, key, value))
        self._appended.set()
        return offset

    def reader(self) -> LogSource:
        return _MemoryReader(self)


class _MemoryReader:
    def __init__(self, log_: MemoryLog) -> None:
        self._log, self._next = log_, 0

    async def open(self) -> int:
        self._next = 0
        return len(self._log.records)

    async def read(self, timeout_s: float) -> list[Change]:
        if self._next >= len(self._log.records):
            self._log._appended.clear()
            try:
                await asyncio.wait_for(self._log._appended.wait(), timeout_s)
            except TimeoutError:
                return []
        out = self._log.records[self._next:]
        self._next = len(self._log.records)
        return out

    async def close(self) -> None:
        return None
