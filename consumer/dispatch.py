"""Per-trigger order without a task per trigger: the queues the firer's workers take fires from.

``toolkit.KeyedQueues`` drains each key's queue with a task of its own; the firer fires thousands
of triggers a second, and a task per queue (created whenever a queue refills, woken per item, one
coroutine per item) was a good part of its per-fire CPU (issue 15). ``TriggerQueues`` keeps the
same order guarantee (one FIFO per key, its head handled before the next item starts) with no
task at all: the owner is told when an item becomes its key's head (``on_head``) and says when
the head has left (``done``). The firer hands a head to a fire slot and a long-lived worker, or to
a task of its own only when it must wait (paced, fenced, a retry's backoff; consumer.firer).

Runs on the firer's one loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class TriggerQueues(Generic[K, T]):
    """One FIFO per key; a key exists only while it has items. ``on_head(item)`` is called when an
    item becomes the head of its key's queue (put into an empty one, or the previous head left);
    it returns True when it dealt with the item at once (skipped it), and the next one becomes
    the head, else the owner calls ``done(key)`` once that head has left."""

    def __init__(self, on_head: Callable[[T], bool]) -> None:
        self._on_head = on_head
        self._queues: dict[K, deque[T]] = {}

    def put(self, key: K, item: T) -> None:
        queue = self._queues.get(key)
        if queue is None:
            self._queues[key] = deque((item,))
            self._start_head(key)
        else:
            queue.append(item)

    def done(self, key: K) -> None:
        """The head of ``key`` left (finished or abandoned): the next item becomes the head."""
        self._queues[key].popleft()
        self._start_head(key)

    def _start_head(self, key: K) -> None:
        """Hand heads over until one is kept (a loop, not recursion: a queue of skipped items may be
        as long as the in-flight window)."""
        queue = self._queues[key]
        while queue and self._on_head(queue[0]):
            queue.popleft()
        if not queue:
            del self._queues[key]

    def clear(self) -> list[T]:
        """Remove every queue and return all their items, heads included (the firer's stop abandons them)."""
        items = [item for queue in self._queues.values() for item in queue]
        self._queues.clear()
        return items

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
        """Keys with a queue."""
        return len(self._queues)

    def __contains__(self, key: object) -> bool:
        return key in self._queues
