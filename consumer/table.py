"""A compacted topic read as a table: to its end first (then ``ready``), then followed live.

The Kafka Connect ``KafkaBasedLog`` idea, small: ``CompactedTable`` reads a ``LogSource`` from
the beginning up to the end offset it had when reading started, sets ``loaded``, and keeps
following. Every record becomes a ``Change`` handed to ``on_change``, which must only record it
and wake its owner's loop (the owner applies changes between its own steps, so one loop owns all
state). A null value is a delete; interpreting keys and values is the owner's business.

``LogSource`` is the one-method-per-need interface; ``MemoryLog`` implements it for unit tests,
``consumer.kafka_edge.KafkaLog`` for Kafka.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger("consumer.table")


@dataclass(frozen=True)
class Change:
    offset: int
    key: bytes | None
    value: bytes | None = field(repr=False)


class LogSource(Protocol):
    async def open(self) -> int:
        """Start reading from the beginning; returns the end offset (one past the last record) now."""

    async def read(self, timeout_s: float) -> list[Change]:
        """The next records (possibly none, after at most ``timeout_s``)."""

    async def close(self) -> None: ...


class CompactedTable:
    def __init__(self, source: LogSource, on_change: Callable[[Change], None], poll_s: float = 0.1) -> None:
        self._source, self._on_change, self._poll_s = source, on_change, poll_s
        self.loaded = asyncio.Event()
        self.position = 0  # one past the last offset handed over

    async def run(self, stopping: asyncio.Event) -> None:
        """Read to the end, set ``loaded``, then follow until ``stopping`` is set."""
        end = await self._source.open()
        try:
            while not stopping.is_set():
                for change in await self._source.read(self._poll_s):
                    self.position = change.offset + 1
                    self._on_change(change)
                if not self.loaded.is_set() and self.position >= end:
                    log.info("table loaded", extra={"fields": {"records_to": end}})
                    self.loaded.set()
        finally:
            await self._source.close()


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
