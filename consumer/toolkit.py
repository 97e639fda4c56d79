"""The loop machinery the firer and the router share (DESIGN.md sections 5 and 6).

Both loops own their state on one asyncio loop and run the same four patterns; each lives here
once, so a fix to one (a retry rule, a shutdown race) reaches both:

- ``Supervisor``: spawns the loop's tasks; a task that fails is a bug, so the first failure
  stops the owner (once) and is kept for ``run()`` to re-raise after its drain.
- ``KeyedQueues``: one FIFO per key (a trigger) drained head first by one task, so order per key
  holds while keys run in parallel; a queue and its task exist only while it has items.
- ``Backpressure``: pause at the limit, resume below half of it (hysteresis), so a loop near the
  limit does not flap pause/resume on every poll.
- ``write_until_acknowledged``: the one retry rule for writes whose offsets wait on them
  (exponential backoff, capped), which gives up only when told the work is no longer ours.

Plus two small helpers: ``sleep_while`` (a sleep that ends early when a condition goes false)
and ``hand_over`` (from kafka-python's IO thread to the loop, tolerating a closed loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from consumer.logs import fields

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

Clock = Callable[[], float]


class Supervisor:
    """The tasks of one loop. The first task to fail records ``failure`` and calls ``stop``:
    uncommitted work is read again after the restart, which beats a loop limping on with a
    broken invariant."""

    def __init__(self, name: str, stop: Callable[[], None]) -> None:
        self._log = logging.getLogger(f"consumer.{name}")
        self._name, self._stop = name, stop
        self._tasks: set[asyncio.Task[Any]] = set()
        self.failure: BaseException | None = None

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or (error := task.exception()) is None or self.failure is not None:
            return
        self._log.error(f"{self._name} task failed; stopping", exc_info=error)
        self.failure = error
        self._stop()

    async def cancel_all(self) -> None:
        """Cancel every task and wait for them (their ``finally`` blocks run)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __len__(self) -> int:
        return len(self._tasks)


class KeyedQueues(Generic[K, T]):
    """One queue per key, each drained by one task: ``handle`` is awaited per item, head first,
    and the item leaves the queue only after it returns. When the task is cancelled, the items
    still queued (the one being handled included) go to ``on_cancelled``, so the owner can
    release their bookkeeping."""

    def __init__(self, supervisor: Supervisor, handle: Callable[[T], Awaitable[None]],
                 on_cancelled: Callable[[T], None] | None = None) -> None:
        self._supervisor, self._handle, self._on_cancelled = supervisor, handle, on_cancelled
        self._queues: dict[K, deque[T]] = {}

    def put(self, key: K, item: T) -> None:
        queue = self._queues.get(key)
        if queue is None:
            self._queues[key] = deque([item])
            self._supervisor.spawn(self._drain(key))
        else:
            queue.append(item)

    async def _drain(self, key: K) -> None:
        queue = self._queues[key]
        try:
            while queue:
                await self._handle(queue[0])
                queue.popleft()
        except asyncio.CancelledError:
            if self._on_cancelled is not None:
                for item in queue:
                    self._on_cancelled(item)
            raise
        finally:
            del self._queues[key]

    def keys(self) -> list[K]:
        return list(self._queues)

    def take_tail(self, key: K, movable: Callable[[T], bool]) -> list[T]:
        """Remove and return, in queue order, the items at the end of the key's queue that
        ``movable`` accepts, stopping at the first it refuses; never the head (being handled).
        The firer parks them (consumer.parking): a suffix leaves, so the order of what stays holds."""
        queue = self._queues.get(key)
        taken: list[T] = []
        while queue is not None and len(queue) > 1 and movable(queue[-1]):
            taken.append(queue.pop())
        taken.reverse()
        return taken

    def __len__(self) -> int:
        """Keys with a queue (and so a task)."""
        return len(self._queues)

    def __contains__(self, key: object) -> bool:
        return key in self._queues


class Backpressure:
    """Pause at ``limit`` items in flight, resume once at most half of it are: between the two
    the current state holds."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.paused = False

    def wanted(self, in_flight: int) -> bool:
        return in_flight >= self.limit or (self.paused and in_flight > self.limit // 2)

    async def apply(self, in_flight: int, set_paused: Callable[[bool], Awaitable[None]]) -> bool:
        """Call ``set_paused`` when the state flips (it is recorded only once that returned);
        returns whether it flipped."""
        want = self.wanted(in_flight)
        if want == self.paused:
            return False
        await set_paused(want)
        self.paused = want
        return True


@dataclass(frozen=True)
class RetryRule:
    """The backoff between attempts of a write that must eventually be acknowledged."""

    initial_s: float = 0.1
    max_s: float = 5.0
    factor: float = 2.0

    def next(self, backoff_s: float) -> float:
        return min(self.max_s, backoff_s * self.factor)


WRITE_RETRY = RetryRule()


async def _sleep(seconds: float) -> bool:
    await asyncio.sleep(seconds)
    return True


async def write_until_acknowledged(write: Callable[[], Awaitable[object]], retryable: type[BaseException], *,
                                   what: str, wait: Callable[[float], Awaitable[bool]] = _sleep,
                                   rule: RetryRule = WRITE_RETRY) -> bool:
    """Await ``write()`` until it succeeds: True. A ``retryable`` error is logged and retried
    after a backoff; ``wait(seconds)`` sleeps and returns False when the work is no longer ours
    (its partition was revoked), and then this gives up: False. Other errors propagate (a bug)."""
    log = logging.getLogger("consumer")
    backoff = rule.initial_s
    while True:
        try:
            await write()
            return True
        except retryable as e:
            log.warning("write failed; retrying", extra=fields(topic=what, error=str(e)))
        if not await wait(backoff):
            return False
        backoff = rule.next(backoff)


async def sleep_while(seconds: float, keep: Callable[[], bool], clock: Clock = time.monotonic,
                      step_s: float = 0.1) -> bool:
    """Sleep up to ``seconds``, checking ``keep`` every ``step_s``; returns ``keep()`` at the end,
    so a caller learns at once that what it waited for is no longer its business."""
    deadline = clock() + seconds
    while keep() and (left := deadline - clock()) > 0:
        await asyncio.sleep(min(left, step_s))
    return keep()


async def wait_until(done: Callable[[], bool], timeout_s: float | None, clock: Clock = time.monotonic,
                     step_s: float = 0.05) -> bool:
    """Wait until ``done()`` or the timeout (None: no timeout); returns ``done()``. Used to drain
    in-flight work before a commit, where an event per item would cost more than the polling."""
    deadline = None if timeout_s is None else clock() + timeout_s
    while not done() and (deadline is None or clock() < deadline):
        await asyncio.sleep(step_s)
    return done()


def hand_over(loop: asyncio.AbstractEventLoop, fn: Callable[..., object], *args: Any) -> None:
    """Run ``fn(*args)`` on ``loop`` soon; called from kafka-python's IO thread, which must not
    block. A closed loop means the process is exiting: nothing is left to tell."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn, *args)
