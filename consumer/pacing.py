"""Per-namespace pacing after 429s: fire a throttled namespace at what OpenWhisk allows it
(DESIGN.md section 5, *Retry* and *Fairness*).

OpenWhisk throttles per namespace in fixed one-minute windows, counts every check (rejected
requests too) and answers 429 without a Retry-After, but its bodies state the limit
(``docs/openwhisk-api.md`` §9.3):

- ``Too many requests in the last minute (count: N, allowed: M)``: the namespace gets a token
  bucket at M per minute (a little under it, so a fixed minute never sees more than M even with
  the one-token burst); its slots are taken at the rate in force when the fire goes out, never
  booked far ahead at an old rate;
- ``Too many concurrent requests in flight (count: N, allowed: M)``: the namespace's concurrent
  fires are capped at M (``concurrency``; the firer enforces it);
- any other 429 (no body, a proxy's): adaptive pacing: the rate halves per 429 (down to a floor)
  and grows a tenth per success, and also doubles per ``recovery_doubling_s`` without a 429, so
  after the throttle ends the namespace is back to full speed within seconds (from the floor of
  0.25/s to unpaced in about 11 doublings) instead of minutes.

A per-minute 429 that this firer's own fires do not explain (it sent fewer than
``explained_fraction`` of the allowance in that window, by its clock: the limit was hit by others,
or the 429 came from a throttle that ends before the window does, e.g. a proxy's or an injected
burst) does not commit the namespace to the whole window: while it holds, one fire (a probe) goes
per ``probe_interval_s``; a probe that passes lifts the hold (pacing goes on at the stated
allowance), one refused costs one more 429 in a window that is over its count anyway, so the next
window's allowance is untouched. A 429 that our own fires explain holds to the window's end
without probes: against OpenWhisk's windows nothing would pass before then.

A namespace is forgotten (unpaced) once it went ``forget_after_s`` without a 429 and without
having to wait for a token (its demand is below its allowance) or, adaptively, once its rate is
above ``unpace_above_per_s``: only paced namespaces hold state. Pure: the clock is passed in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

_EPSILON = 1e-6
_RATE = re.compile(r"Too many requests in the last minute \(count: (\d+), allowed: (\d+)\)")
_CONCURRENT = re.compile(r"Too many concurrent requests in flight \(count: (\d+), allowed: (\d+)\)")


class LimitKind(Enum):
    PER_MINUTE = "per-minute"
    CONCURRENT = "concurrent"


@dataclass(frozen=True)
class Limit:
    """A limit stated by a 429 body."""

    kind: LimitKind
    allowed: int


def parse_limit(body: str) -> Limit | None:
    """The limit a 429 body states, or None when it states none (or a nonsensical one)."""
    for kind, pattern in ((LimitKind.PER_MINUTE, _RATE), (LimitKind.CONCURRENT, _CONCURRENT)):
        if (match := pattern.search(body)) is not None:
            allowed = int(match.group(2))
            return Limit(kind, allowed) if allowed > 0 else None
    return None


@dataclass(frozen=True)
class PacingPolicy:
    start_rate_per_s: float = 20.0  # first body-less 429 of an unpaced namespace
    min_rate_per_s: float = 0.25
    unpace_above_per_s: float = 500.0
    decrease: float = 0.5
    increase: float = 1.1
    recovery_doubling_s: float = 1.0  # adaptive: the rate doubles per this long without a 429
    allowance_margin: float = 0.95  # a stated per-minute allowance is paced at this fraction of it
    forget_after_s: float = 120.0  # two whole windows without a 429 or a wait: the limit is not in the way
    explained_fraction: float = 0.25  # a per-minute 429 after fewer own fires in its window than this part: probe
    probe_interval_s: float = 5.0  # an unexplained hold: one probe per this long
    probe_answer_s: float = 1.0  # waiters come back this long after a probe went out (it lifts the hold if it passes)


@dataclass
class _Pace:
    rate_per_s: float
    stated: bool  # the rate comes from a 429 body (a per-minute allowance), not adaptation
    tokens: float
    updated: float  # when tokens (and an adaptive rate) were last brought up to date
    last_429: float
    last_wait: float  # the last time a fire had to wait for a token
    waiting: int = 0  # fires told to wait and not yet back
    concurrency: int | None = None  # a stated concurrent-fires cap
    probe_at: float = float("inf")  # an unexplained hold: the next probe may go then (inf: no probes)
    probe_out: float | None = None  # when the probe in flight went out

    @property
    def burst(self) -> float:
        """One token: a fixed minute then sees at most the allowance (paced under it) plus one."""
        return 1.0


class Pacer:
    def __init__(self, policy: PacingPolicy = PacingPolicy()) -> None:
        self.policy = policy
        self._paced: dict[str, _Pace] = {}
        self._window: int | None = None  # the current throttle window (epoch minute) ...
        self._fires: dict[str, int] = {}  # ... and each namespace's fires in it, refused ones too

    # --- what the firer asks before a fire ---

    def reserve(self, namespace: str, now: float, waited: bool = False) -> float:
        """Seconds to wait before this namespace may fire (0 when unpaced, and then the token is
        taken). A positive wait holds a place in line behind those already waiting; the caller
        sleeps it and asks again with ``waited=True`` (or calls ``arrived`` if it gives up), so its
        slot is taken at the rate in force then (a rate that recovered meanwhile is not held back
        by waits computed at the old one), and a caller back a little early keeps its place."""
        pace = self._paced.get(namespace)
        if pace is None:
            return 0.0
        if waited and pace.waiting > 0:
            pace.waiting -= 1
        self._refill(pace, now)
        if pace.updated > now and pace.probe_at != float("inf"):
            return self._probe_or_wait(pace, now)
        if pace.tokens >= 1.0 - _EPSILON:  # a wait computed to the token may land a rounding short
            pace.tokens = max(0.0, pace.tokens - 1.0)
            return 0.0
        pace.waiting += 1
        pace.last_wait = now
        ahead = 0 if waited else pace.waiting - 1  # back for its token: first in line
        return max(0.0, pace.updated - now) + (ahead + 1.0 - pace.tokens) / pace.rate_per_s

    def _probe_or_wait(self, pace: _Pace, now: float) -> float:
        """An unexplained hold: 0 for the probe when one is due, else the wait until the hold may
        be lifted (a probe's answer, the next probe, or the window's end), spaced by the place in
        line at the stated rate (nobody went during the hold, so those back keep no earlier place)."""
        p = self.policy
        if pace.probe_out is not None and now - pace.probe_out >= p.probe_answer_s:
            pace.probe_out = None  # no answer in time (a timeout, a 5xx): the next probe goes at probe_at
        if pace.probe_out is None and now >= pace.probe_at:
            pace.probe_out, pace.probe_at = now, now + p.probe_interval_s
            return 0.0
        pace.waiting += 1
        pace.last_wait = now
        resume = pace.probe_out + p.probe_answer_s if pace.probe_out is not None else pace.probe_at
        return max(0.0, min(resume, pace.updated) - now) + (pace.waiting - pace.tokens) / pace.rate_per_s

    def counted(self, namespace: str, window: int) -> None:
        """A fire is going out in throttle window ``window`` (the epoch minute, as OpenWhisk counts):
        our own count tells whether a later per-minute 429 is explained by our fires."""
        if window != self._window:
            self._window, self._fires = window, {}
        self._fires[namespace] = self._fires.get(namespace, 0) + 1

    def arrived(self, namespace: str) -> None:
        """A fire told to wait gives up its place (its partition was revoked)."""
        if (pace := self._paced.get(namespace)) is not None and pace.waiting > 0:
            pace.waiting -= 1

    def concurrency(self, namespace: str) -> int | None:
        """The stated cap on this namespace's concurrent fires, if OpenWhisk stated one."""
        pace = self._paced.get(namespace)
        return pace.concurrency if pace is not None else None

    # --- what the firer reports after a fire ---

    def throttled(self, namespace: str, now: float, body: str = "", window_left_s: float = 0.0,
                  window: int | None = None) -> None:
        """A 429; ``body`` is its text, whose stated limit (if any) sets the pace. ``window_left_s``:
        how long the controller's current one-minute window still runs (OpenWhisk counts in epoch
        minutes, refused requests too): after a per-minute 429 nothing passes before it ends, so
        the namespace holds until then instead of collecting a 429 per try. ``window``: the window
        the refused fire went out in (see ``counted``); when our own fires there do not explain the
        429, the hold is probed (module docstring); None: explained."""
        p = self.policy
        limit = parse_limit(body)
        pace = self._paced.get(namespace)
        first = pace is None
        if pace is None:
            pace = self._paced[namespace] = _Pace(p.start_rate_per_s, False, 0.0, now, now, now)
        else:
            self._refill(pace, now)
        pace.last_429 = now
        pace.tokens = 0.0  # the controller refused this minute's next request: nothing in hand
        if limit is not None and limit.kind is LimitKind.PER_MINUTE:
            pace.rate_per_s = limit.allowed * p.allowance_margin / 60.0
            pace.stated = True
            pace.updated = max(pace.updated, now + window_left_s)  # tokens accrue from the next window
            own = self._fires.get(namespace, 0) if window is not None and window == self._window else 0
            explained = window is None or own >= limit.allowed * p.explained_fraction
            pace.probe_at, pace.probe_out = (float("inf") if explained else now + p.probe_interval_s), None
        elif limit is not None and limit.kind is LimitKind.CONCURRENT:
            pace.concurrency = limit.allowed
            if not pace.stated:  # concurrency alone: the rate is not the problem
                pace.rate_per_s = max(pace.rate_per_s, p.start_rate_per_s)
        elif not pace.stated and not first:
            pace.rate_per_s = max(p.min_rate_per_s, pace.rate_per_s * p.decrease)

    def succeeded(self, namespace: str, now: float | None = None) -> None:
        """A 2xx. Adaptive pacing speeds up; a stated allowance stays (it is what OpenWhisk allows)."""
        pace = self._paced.get(namespace)
        if pace is None:
            return
        if now is not None:
            self._refill(pace, now)
            if pace.probe_out is not None and pace.updated > now:  # the probe passed: the throttle ended early
                pace.updated, pace.tokens = now, 0.0
                pace.probe_out, pace.probe_at = None, float("inf")
        if not pace.stated:
            pace.rate_per_s *= self.policy.increase
        self._unpace_if_done(namespace, pace, now)

    # --- state ---

    def _refill(self, pace: _Pace, now: float) -> None:
        elapsed = max(0.0, now - pace.updated)
        if not pace.stated and elapsed > 0:
            since_429 = now - pace.last_429
            grown = min(since_429, elapsed) / self.policy.recovery_doubling_s
            pace.rate_per_s = min(pace.rate_per_s * 2.0 ** grown, self.policy.unpace_above_per_s * 2)
        pace.tokens = min(pace.burst, pace.tokens + elapsed * pace.rate_per_s)
        pace.updated = max(pace.updated, now)  # a hold (updated ahead of now) stays until it ends

    def _unpace_if_done(self, namespace: str, pace: _Pace, now: float | None) -> None:
        p = self.policy
        recovered = not pace.stated and pace.rate_per_s > p.unpace_above_per_s and pace.concurrency is None
        idle = now is not None and not pace.waiting and now - max(pace.last_429, pace.last_wait) > p.forget_after_s
        if recovered or idle:
            del self._paced[namespace]

    def expire(self, now: float) -> list[str]:
        """Forget the namespaces whose limits are no longer in the way (see the module docstring);
        returns them, so the firer can log that their throttling ended."""
        ended = []
        for namespace, pace in list(self._paced.items()):
            self._refill(pace, now)
            self._unpace_if_done(namespace, pace, now)
            if namespace not in self._paced:
                ended.append(namespace)
        return ended

    def fires_within(self, namespace: str, now: float, seconds: float) -> int | None:
        """How many fires this namespace's pace lets it make in the next ``seconds`` (None:
        unpaced), by the rate in force now: none before a hold ends (a probe aside). Read only."""
        pace = self._paced.get(namespace)
        if pace is None:
            return None
        if pace.updated > now:  # a hold: no token until it ends
            return int(max(0.0, now + seconds - pace.updated) * pace.rate_per_s)
        tokens = min(pace.burst, pace.tokens + (now - pace.updated) * pace.rate_per_s)
        return int(tokens + seconds * pace.rate_per_s + _EPSILON)

    def rate(self, namespace: str) -> float | None:
        pace = self._paced.get(namespace)
        return pace.rate_per_s if pace else None

    def __contains__(self, namespace: object) -> bool:
        return namespace in self._paced

    def __len__(self) -> int:
        return len(self._paced)
