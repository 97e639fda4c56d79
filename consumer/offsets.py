"""Which offset of a partition may be committed, and which finished offsets above it travel along.

Records of one partition are fired in parallel (different triggers), so they complete out of
order. The committable offset is the first offset still pending: committing past it could lose
that message after a crash. But the messages finished above it would all fire again under the
next owner, so the commit also carries them, compactly, in its metadata (``encode``), and a new
owner reads them back (``decode``, ``PartitionOffsets.resume``) and skips them: a crash then
repeats only what finished after the last commit. One tracker per assigned partition; no
per-trigger state.

The metadata: ``f1:`` and comma-separated runs of finished offsets, each ``gap`` or
``gap.length`` in base 36, the gap counted from the end of the previous run (the first from the
committed offset). 2,000 scattered offsets take ~6 KB, a contiguous block a few bytes. It must
fit the broker's ``offset.metadata.max.bytes`` (4096 by default): runs that do not fit are left
out, from the highest down (a shorter list only means more duplicates, never a loss), down to an
empty list, the plain offset.

Parking (consumer/parking.py) adds one field: ``;p`` and the read position of the partition's
park partition in base 36, after the runs (``f1:3,2.5;p1z``, or ``;p1z`` alone). It is never
left out (a few bytes), so one commit covers both the main offset and the park position.
Readers that predate it see no runs in such metadata, which only costs duplicates.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

PREFIX = "f1:"
PARK_FIELD = ";p"
METADATA_MAX_BYTES = 4096  # Kafka's default offset.metadata.max.bytes

Runs = list[tuple[int, int]]  # [start, end) of finished offsets, ascending, disjoint, not adjacent


def runs_of(offsets: Iterable[int]) -> Runs:
    runs: Runs = []
    for offset in sorted(set(offsets)):
        if runs and runs[-1][1] == offset:
            runs[-1] = (runs[-1][0], offset + 1)
        else:
            runs.append((offset, offset + 1))
    return runs


def _merge(a: Runs, b: Runs) -> Runs:
    merged: Runs = []
    for start, end in sorted(a + b):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


def encode(committed: int, finished: Runs, max_bytes: int = METADATA_MAX_BYTES, park: int | None = None) -> str:
    """The metadata for a commit at ``committed``; runs below it are dropped (already covered).
    ``park``: the park read position, always kept (the runs give way to it)."""
    park_field = "" if park is None else PARK_FIELD + _b36(park)
    return _encode_runs(committed, finished, max(0, max_bytes - len(park_field))) + park_field


def _encode_runs(committed: int, finished: Runs, max_bytes: int) -> str:
    tokens: list[str] = []
    size = len(PREFIX)
    previous = committed
    for start, end in finished:
        start = max(start, committed)
        if start >= end:
            continue
        token = _b36(start - previous) + ("" if end - start == 1 else "." + _b36(end - start))
        if size + len(token) + (1 if tokens else 0) > max_bytes:
            break
        tokens.append(token)
        size += len(token) + (1 if len(tokens) > 1 else 0)
        previous = end
    return PREFIX + ",".join(tokens) if tokens else ""


def decode(committed: int, metadata: str) -> Runs:
    """The finished runs a commit carries; anything else (another writer's metadata, damage)
    reads as none, which only costs duplicates."""
    metadata = metadata.partition(PARK_FIELD)[0]
    if not metadata.startswith(PREFIX) or len(metadata) == len(PREFIX):
        return []
    runs: Runs = []
    previous = committed
    try:
        for token in metadata[len(PREFIX):].split(","):
            gap, dot, length = token.partition(".")
            start = previous + int(gap, 36)
            end = start + (int(length, 36) if dot else 1)
            if start < previous or end <= start:
                return []
            runs.append((start, end))
            previous = end
    except ValueError:
        return []
    return runs


def decode_park(metadata: str) -> int | None:
    """The park read position a commit carries, or None (never parked, or unreadable)."""
    _, found, value = metadata.partition(PARK_FIELD)
    if not found or not value:
        return None
    try:
        position = int(value, 36)
    except ValueError:
        return None
    return position if position >= 0 else None


class PartitionOffsets:
    def __init__(self) -> None:
        self._pending: deque[int] = deque()  # taken offsets, ascending, the done ones not yet popped
        self._done: set[int] = set()
        self._next: int | None = None  # one past the highest offset taken
        self._inherited: Runs = []  # finished by an earlier owner, above where we started
        self.park: int | None = None  # the park read position that travels with this partition's commits

    def resume(self, committed: int, metadata: str) -> None:
        """Adopt an earlier owner's commit: the offsets it had finished above ``committed`` are
        skipped (``take`` answers False) and carried on in our commits until passed."""
        self._inherited = decode(committed, metadata)
        self.park = decode_park(metadata)
        if self._next is None:
            self._next = committed  # read below it; and the park position alone may advance: committed here

    def take(self, offset: int) -> bool:
        """Take a fetched offset; False when an earlier owner finished it (it counts as done at once)."""
        self._pending.append(offset)
        self._next = offset + 1
        if self._finished_before(offset):
            self.done(offset)
            return False
        return True

    def _finished_before(self, offset: int) -> bool:
        while self._inherited and self._inherited[0][1] <= offset:
            self._inherited.pop(0)  # passed: below every later offset
        return bool(self._inherited) and self._inherited[0][0] <= offset

    def done(self, offset: int) -> None:
        """Mark a taken offset finished; unknown offsets (a stale job after a rebalance) are ignored."""
        if not self._pending or offset < self._pending[0] or offset in self._done:
            return
        self._done.add(offset)
        while self._pending and self._pending[0] in self._done:
            self._done.discard(self._pending.popleft())

    @property
    def read_to(self) -> int | None:
        """One past the highest offset taken (or the committed one resumed from): read below it."""
        return self._next

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def committable(self) -> int | None:
        """The offset to commit (the next one to read), or None when nothing was taken."""
        if self._pending:
            return self._pending[0]
        return self._next

    def commit_point(self, max_bytes: int = METADATA_MAX_BYTES) -> tuple[int, str] | None:
        """The offset to commit and its metadata (the finished offsets above it), or None."""
        offset = self.committable()
        if offset is None:
            return None
        return offset, encode(offset, _merge(runs_of(self._done), self._inherited), max_bytes, self.park)
