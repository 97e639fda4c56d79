"""Which offset of a partition may be committed, when records finish out of order.

Records of one partition are fired in parallel (different triggers), so they complete out of
order. The committable offset is the first offset still pending: committing past it could lose
that message after a crash. One tracker per assigned partition; no per-trigger state.
"""

from __future__ import annotations

from collections import deque


class PartitionOffsets:
    def __init__(self) -> None:
        self._pending: deque[int] = deque()  # taken offsets, ascending, the done ones not yet popped
        self._done: set[int] = set()
        self._next: int | None = None  # one past the highest offset taken

    def take(self, offset: int) -> None:
        self._pending.append(offset)
        self._next = offset + 1

    def done(self, offset: int) -> None:
        """Mark a taken offset finished; unknown offsets (a stale job after a rebalance) are ignored."""
        if not self._pending or offset < self._pending[0] or offset in self._done:
            return
        self._done.add(offset)
        while self._pending and self._pending[0] in self._done:
            self._done.discard(self._pending.popleft())

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def committable(self) -> int | None:
        """The offset to commit (the next one to read), or None when nothing was taken."""
        if self._pending:
            return self._pending[0]
        return self._next
