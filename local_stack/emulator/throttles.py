"""Per-namespace throttles with the controller's exact semantics (openwhisk-api.md section 9.3).

* Rate limits (fires, invocations) use fixed one-minute windows: the counter resets when the epoch
  minute (`now_ms // 60000`) changes. Every check increments the counter, including checks that
  are then refused; a check is refused when the counter is above the limit.
* The concurrency limit counts activations in flight in the namespace; a new one is refused when
  that count has reached the limit (the controller's `count < allowed`, message with the count).
The clock is injected so tests can control time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .config import ThrottleLimits
from .errors import ApiError, too_many_concurrent, too_many_requests


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class _Window:
    minute: int = -1
    count: int = 0

    def hit(self, minute: int) -> int:
        if minute != self.minute:
            self.minute = minute
            self.count = 0
        self.count += 1
        return self.count

    def current(self, minute: int) -> int:
        return self.count if minute == self.minute else 0


@dataclass
class _NamespaceState:
    limits: ThrottleLimits
    fires: _Window
    invocations: _Window
    in_flight: int = 0


class Throttles:
    def __init__(self, defaults: ThrottleLimits, overrides: dict[str, dict[str, int]] | None = None,
                 clock_ms: Callable[[], int] = _wall_ms) -> None:
        self._defaults = defaults
        self._overrides: dict[str, dict[str, int]] = {ns: dict(o) for ns, o in (overrides or {}).items()}
        self._state: dict[str, _NamespaceState] = {}
        self._clock_ms = clock_ms

    @property
    def defaults(self) -> ThrottleLimits:
        return self._defaults

    def limits_for(self, namespace: str) -> ThrottleLimits:
        return self._defaults.updated(self._overrides.get(namespace, {}))

    def _ns(self, namespace: str) -> _NamespaceState:
        state = self._state.get(namespace)
        if state is None:
            state = _NamespaceState(self.limits_for(namespace), _Window(), _Window())
            self._state[namespace] = state
        return state

    # ---- checks ----

    def check_fire(self, namespace: str) -> None:
        state = self._ns(namespace)
        count = state.fires.hit(self._clock_ms() // 60000)
        allowed = state.limits.fires_per_minute
        if count > allowed:
            raise ApiError(429, too_many_requests(count, allowed))

    def check_invoke(self, namespace: str) -> None:
        """Rate first, then concurrency, as the controller's entitlement does."""
        state = self._ns(namespace)
        count = state.invocations.hit(self._clock_ms() // 60000)
        allowed = state.limits.invocations_per_minute
        if count > allowed:
            raise ApiError(429, too_many_requests(count, allowed))
        concurrent_allowed = state.limits.concurrent_invocations
        if state.in_flight >= concurrent_allowed:
            raise ApiError(429, too_many_concurrent(state.in_flight, concurrent_allowed))

    def activation_started(self, namespace: str) -> None:
        self._ns(namespace).in_flight += 1

    def activation_finished(self, namespace: str) -> None:
        state = self._ns(namespace)
        state.in_flight = max(0, state.in_flight - 1)

    # ---- control ----

    def set_defaults(self, changes: dict[str, object]) -> ThrottleLimits:
        self._defaults = self._defaults.updated(changes)
        self._refresh()
        return self._defaults

    def set_namespace(self, namespace: str, changes: dict[str, object]) -> ThrottleLimits:
        merged = {**self._overrides.get(namespace, {}), **changes}
        self._defaults.updated(merged)  # validates
        self._overrides[namespace] = merged  # type: ignore[assignment]
        self._refresh()
        return self.limits_for(namespace)

    def clear_namespace(self, namespace: str) -> None:
        self._overrides.pop(namespace, None)
        self._refresh()

    def reset_counters(self, namespace: str | None = None) -> None:
        for ns, state in self._state.items():
            if namespace is None or ns == namespace:
                state.fires = _Window()
                state.invocations = _Window()

    def _refresh(self) -> None:
        for ns, state in self._state.items():
            state.limits = self.limits_for(ns)

    def snapshot(self, namespaces: list[str]) -> dict[str, object]:
        minute = self._clock_ms() // 60000
        out: dict[str, object] = {}
        for ns in sorted(set(namespaces) | set(self._state)):
            state = self._state.get(ns)
            out[ns] = {
                "limits": self.limits_for(ns).as_json(),
                "overrides": self._overrides.get(ns, {}),
                "firesThisMinute": state.fires.current(minute) if state else 0,
                "invocationsThisMinute": state.invocations.current(minute) if state else 0,
                "inFlight": state.in_flight if state else 0,
            }
        return out
