"""Adaptive per-namespace pacing after 429s (DESIGN.md section 5).

OpenWhisk throttles fires per namespace in fixed one-minute windows and answers 429 without a
Retry-After. A namespace that gets a 429 is paced: its rate halves on every 429 and grows by a
tenth on every success until it is fast enough to be unpaced again, so one throttled namespace
neither hammers the controller nor slows the others. Only paced namespaces hold state. The clock
is passed in, so tests control time.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Pace:
    rate_per_s: float
    next_at: float


@dataclass(frozen=True)
class PacingPolicy:
    start_rate_per_s: float = 20.0  # first 429 of an unpaced namespace
    min_rate_per_s: float = 0.25
    unpace_above_per_s: float = 500.0
    decrease: float = 0.5
    increase: float = 1.1


class Pacer:
    def __init__(self, policy: PacingPolicy = PacingPolicy()) -> None:
        self.policy = policy
        self._paced: dict[str, _Pace] = {}

    def reserve(self, namespace: str, now: float) -> float:
        """Seconds to wait before this namespace may fire (0 when unpaced); reserves the slot."""
        pace = self._paced.get(namespace)
        if pace is None:
            return 0.0
        at = max(now, pace.next_at)
        pace.next_at = at + 1.0 / pace.rate_per_s
        return at - now

    def throttled(self, namespace: str, now: float) -> None:
        p = self.policy
        pace = self._paced.get(namespace)
        if pace is None:
            self._paced[namespace] = _Pace(p.start_rate_per_s, now + 1.0 / p.start_rate_per_s)
            return
        pace.rate_per_s = max(p.min_rate_per_s, pace.rate_per_s * p.decrease)
        pace.next_at = max(pace.next_at, now + 1.0 / pace.rate_per_s)

    def succeeded(self, namespace: str) -> None:
        pace = self._paced.get(namespace)
        if pace is None:
            return
        pace.rate_per_s *= self.policy.increase
        if pace.rate_per_s > self.policy.unpace_above_per_s:
            del self._paced[namespace]

    def rate(self, namespace: str) -> float | None:
        pace = self._paced.get(namespace)
        return pace.rate_per_s if pace else None

    def __len__(self) -> int:
        return len(self._paced)
