"""Concurrent fires shared by namespace (DESIGN.md section 5, *Fairness*).

The firer's HTTP requests to OpenWhisk are bounded (``max_concurrent_fires``). One global
semaphore let a namespace with many triggers, or slow ones, take every slot while others
waited. ``FairSlots`` allots them per namespace instead:

- fair share = capacity / active namespaces (those holding or waiting for a slot), at least 1;
- a namespace may borrow beyond its share while no other namespace waits, and gives the slots
  back as soon as one does: a freed slot goes to a waiting namespace under its share before a
  namespace over it (no preemption: a fire already sent finishes);
- a namespace never holds more than the concurrency OpenWhisk stated for it (``limit``);
- waiting namespaces are served round-robin, and each namespace's waiters first come first served.

Only namespaces holding or waiting for a slot hold state. Runs on the firer's one loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable


class FairSlots:
    """Per-fire CPU is the firer's budget (issue 15): taking and giving back a slot while no
    namespace waits is a few dict operations (no set built for the share, no wake-up pass), and
    a waiter costs one future."""

    def __init__(self, capacity: int, limit: Callable[[str], int | None] = lambda _: None) -> None:
        self.capacity = capacity
        self._limit = limit
        self._used: dict[str, int] = {}  # only namespaces holding a slot (never 0)
        self._total = 0
        self._waiters: dict[str, deque[asyncio.Future[None]]] = {}  # insertion order: round-robin

    @contextlib.asynccontextmanager
    async def slot(self, namespace: str) -> AsyncIterator[None]:
        """Hold one of the namespace's slots for the duration of the block."""
        await self.acquire(namespace)
        try:
            yield
        finally:
            self.release(namespace)

    def try_acquire(self, namespace: str) -> bool:
        """Take a slot if the namespace may have one now (``acquire`` without the wait); the firer
        tries this first, so a fire that finds a slot free costs no coroutine here."""
        if namespace not in self._waiters and self._may(namespace):
            self._take(namespace)
            return True
        return False

    async def acquire(self, namespace: str) -> None:
        if not self.try_acquire(namespace):
            await self.wait(namespace)

    async def wait(self, namespace: str) -> None:
        """Wait for a slot, first come first served within the namespace (``acquire`` once
        ``try_acquire`` said no: the firer tries first, and waits only when it must)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiters.get(namespace)
        if queue is None:  # not setdefault: that builds a deque on every call
            self._waiters[namespace] = queue = deque()
        queue.append(future)
        if self._total < self.capacity:  # full: no waiter may take one now, the next release wakes
            self._wake()
        try:
            await future  # resolved by _wake, which took the slot for us
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(namespace)  # granted as we were cancelled: give it back
            else:
                self._drop_waiter(namespace, future)
            raise

    def release(self, namespace: str) -> None:
        used = self._used[namespace] - 1
        if used > 0:
            self._used[namespace] = used
        else:
            del self._used[namespace]
        self._total -= 1
        if self._waiters:
            self._wake()

    def share(self) -> int:
        """The fair share of each active namespace now (holding or waiting for a slot)."""
        active = len(self._used)
        if self._waiters:
            active += sum(1 for namespace in self._waiters if namespace not in self._used)
        return max(1, self.capacity // max(1, active))

    def held(self, namespace: str) -> int:
        return self._used.get(namespace, 0)

    def _may(self, namespace: str) -> bool:
        if self._total >= self.capacity:
            return False
        used = self._used.get(namespace, 0)
        limit = self._limit(namespace)
        if limit is not None and used >= limit:
            return False
        waiting = self._waiters
        if not waiting or (len(waiting) == 1 and namespace in waiting):
            return True  # nobody else waits: borrow beyond the share
        return used < self.share()

    def _take(self, namespace: str) -> None:
        self._used[namespace] = self._used.get(namespace, 0) + 1
        self._total += 1

    def _wake(self) -> None:
        """Grant free slots to waiters, one per namespace per round, while any may take one."""
        progress = True
        while progress and self._waiters and self._total < self.capacity:
            progress = False
            for namespace in list(self._waiters):
                queue = self._waiters[namespace]
                while queue and queue[0].done():  # cancelled while waiting
                    queue.popleft()
                if queue and self._may(namespace):
                    self._take(namespace)
                    queue.popleft().set_result(None)
                    progress = True
                    del self._waiters[namespace]
                    if queue:
                        self._waiters[namespace] = queue  # to the end of the round
                elif not queue:
                    del self._waiters[namespace]

    def _drop_waiter(self, namespace: str, future: asyncio.Future[None]) -> None:
        queue = self._waiters.get(namespace)
        if queue is None:
            return
        with contextlib.suppress(ValueError):
            queue.remove(future)
        if not queue:
            del self._waiters[namespace]
        self._wake()
