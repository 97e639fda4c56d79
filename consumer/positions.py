"""Where each subscription reads, per partition, when one consumer group reads for all of them.

The router reads a subscribed topic once, with one position per partition, for every
subscription on it. Each subscription segment (feed.records) receives the
records at offsets in ``[lower bound, stop)`` of each partition. Pure logic, no I/O; one
``PartitionState`` per assigned partition, owned by the router's loop.

**Joining.** A segment is *joined* on a partition once the router has decided where it starts
there. If its start is at or after the position (the next offset to read), it simply starts
there. If the group has already read past its start (``earliest``, a timestamp, UNPAUSE, or a
topic the group read before), the partition is **rewound** to the start and a *catch-up window*
opens: below ``window_end`` (the position before the rewind), only the catching segments get the
re-read records, each from its own lower bound, so no other subscription sees them twice.
Records at or after ``window_end`` go to everyone; the window closes once the committed offset
passes it.

**Durability.** This state rides along with the committed offset, as its metadata (compact
JSON): ``t``, the subscriptions-topic offset through which segments were joined, and the window.
After a restart or a rebalance, the new owner reads it back: segments with an origin at or below
``t`` were joined (and catch up per the window), later ones are joined now, against the
committed offset. So a catch-up survives crashes without any store besides Kafka. At most
``MAX_CATCHING`` segments catch up on one partition at once (the metadata must stay within the
broker's ``offset.metadata.max.bytes``, 4096 by default); more wait, *deferred*, until the window
closes, and receive nothing meanwhile.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

META_VERSION = 1
MAX_CATCHING = 100


@dataclass(frozen=True)
class SegmentStart:
    """A live segment as one partition sees it."""

    origin: int
    start: int


@dataclass
class PartitionState:
    joined_through: int
    window_end: int | None = None
    catching: dict[int, int] = field(default_factory=dict)  # origin -> lower bound
    deferred: set[int] = field(default_factory=set)

    def copy(self) -> PartitionState:
        return PartitionState(self.joined_through, self.window_end, dict(self.catching), set(self.deferred))

    def lower_bound(self, origin: int, start: int) -> int | None:
        """The first offset the segment receives here; None while it is not joined."""
        if origin in self.deferred or origin > self.joined_through:
            return None
        if origin in self.catching:
            return self.catching[origin]
        if self.window_end is not None:
            return max(start, self.window_end)
        return start

    def delivers(self, origin: int, start: int, stop: int | None, offset: int) -> bool:
        bound = self.lower_bound(origin, start)
        return bound is not None and bound <= offset and (stop is None or offset < stop)


def join(state: PartitionState, position: int, live: Sequence[SegmentStart], table_offset: int) -> int | None:
    """Join the live segments not joined yet (origin above ``joined_through``, or deferred).

    ``position`` is the next offset the partition will read; every record before it has been
    routed. Mutates ``state``; returns the offset to rewind to, or None.
    """
    live_origins = {s.origin for s in live}
    for origin in [o for o in state.catching if o <= table_offset and o not in live_origins]:
        del state.catching[origin]  # deleted meanwhile
    state.deferred &= live_origins
    new = sorted((s for s in live if s.origin > state.joined_through or s.origin in state.deferred),
                 key=lambda s: s.origin)
    rewind = None
    for segment in new:
        state.deferred.discard(segment.origin)
        behind = segment.start < position
        inside = state.window_end is not None and segment.start < state.window_end
        if not behind and not inside:
            continue  # nothing at or after its start was read yet: its start is its bound
        if state.window_end is not None and len(state.catching) >= MAX_CATCHING:
            state.deferred.add(segment.origin)
            continue
        if behind:
            # everyone joined has [.., position) already: the window covers it, catching ones skip it
            state.window_end = position if state.window_end is None else max(state.window_end, position)
            for origin, bound in state.catching.items():
                state.catching[origin] = max(bound, position)
            position = rewind = segment.start
        state.catching[segment.origin] = segment.start
    state.joined_through = max(state.joined_through, table_offset)
    return rewind


def settle(state: PartitionState, committable: int) -> bool:
    """Close the window once everything below its end is done; True if deferred segments wait."""
    if state.window_end is not None and committable >= state.window_end:
        state.window_end, state.catching = None, {}
    return bool(state.deferred) and state.window_end is None


def initial(committed: tuple[int, str] | None, live: Sequence[SegmentStart],
            table_offset: int) -> tuple[PartitionState, int | None]:
    """State and position of a partition just assigned; position None means "the end"."""
    if committed is None:
        state = PartitionState(joined_through=table_offset)
        return state, min((s.start for s in live), default=None)
    offset, metadata = committed
    state = decode(metadata) or PartitionState(joined_through=-1)  # unknown: every segment is new
    rewind = join(state, offset, live, table_offset)
    position = offset if rewind is None else rewind
    if state.window_end is None and not state.deferred and live:
        position = max(position, min(s.start for s in live))  # nobody wants what lies before
    return state, position


def encode(state: PartitionState, committable: int) -> str:
    """The commit metadata for ``committable``."""
    through = min(state.deferred) - 1 if state.deferred else state.joined_through
    content: dict[str, object] = {"v": META_VERSION, "t": through}
    if state.window_end is not None and committable < state.window_end:
        content["w"] = state.window_end
        content["c"] = [[origin, bound] for origin, bound in sorted(state.catching.items())]
    return json.dumps(content, separators=(",", ":"))


def decode(metadata: str | None) -> PartitionState | None:
    """The state committed with an offset; None if absent or not ours."""
    try:
        content = json.loads(metadata or "")
        if not isinstance(content, dict) or content.get("v") != META_VERSION:
            return None
        state = PartitionState(joined_through=int(content["t"]))
        if "w" in content:
            state.window_end = int(content["w"])
            state.catching = {int(origin): int(bound) for origin, bound in content["c"]}
        return state
    except (ValueError, TypeError, KeyError):
        return None
