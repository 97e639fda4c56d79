"""Fault injection for reliability tests: added latency, forced status codes, dropped connections.

A fault matches requests by scope (`fires`, `invokes`, or `all` for both), optionally by
namespace and by trigger (for fires), and applies with probability `rate`. It may expire after
`duration_s` or after `count` applications, or stay until cleared. When several faults match,
their latencies add up and the first one that forces an outcome (status or disconnect) decides it.
A forced outcome short-circuits the request: nothing is counted against throttles or stored.
"""

from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass, field
from typing import Any

from .errors import STATUS_DEFAULT_MESSAGES

SCOPES = ("fires", "invokes", "all")


class FaultSpecError(ValueError):
    """A fault definition sent to the control API is invalid."""


@dataclass
class Fault:
    id: str
    scope: str = "fires"
    status: int | None = None
    message: str | None = None
    latency_ms: int = 0
    rate: float = 1.0
    disconnect: bool = False
    namespace: str | None = None
    trigger: str | None = None  # "/ns/T"
    expires_at: float | None = None  # monotonic seconds
    remaining: int | None = None
    applied: int = 0
    created_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "scope": self.scope, "status": self.status, "message": self.message,
                "latency_ms": self.latency_ms, "rate": self.rate, "disconnect": self.disconnect,
                "namespace": self.namespace, "trigger": self.trigger,
                "expires_in_s": None if self.expires_at is None else max(0.0, self.expires_at - time.monotonic()),
                "remaining": self.remaining, "applied": self.applied}


@dataclass(frozen=True)
class FaultDecision:
    latency_ms: int
    status: int | None
    message: str | None
    disconnect: bool
    fault_ids: tuple[str, ...]


def parse_fault(spec: object, fault_id: str) -> Fault:
    if not isinstance(spec, dict):
        raise FaultSpecError("a fault must be a JSON object")
    known = {"scope", "status", "message", "latency_ms", "rate", "disconnect", "namespace", "trigger",
             "duration_s", "count"}
    unknown = set(spec) - known
    if unknown:
        raise FaultSpecError(f"unknown fault fields {sorted(unknown)}; known: {sorted(known)}")
    scope = spec.get("scope", "fires")
    if scope not in SCOPES:
        raise FaultSpecError(f"scope must be one of {SCOPES}")
    status = spec.get("status")
    if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
        raise FaultSpecError("status must be an HTTP error status (400..599)")
    latency = spec.get("latency_ms", 0)
    rate = spec.get("rate", 1.0)
    if not isinstance(latency, int | float) or latency < 0:
        raise FaultSpecError("latency_ms must be >= 0")
    if not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise FaultSpecError("rate must be between 0 and 1")
    disconnect = bool(spec.get("disconnect", False))
    if status is None and not latency and not disconnect:
        raise FaultSpecError("a fault needs a status, a latency_ms or disconnect")
    trigger = spec.get("trigger")
    if trigger is not None and (not isinstance(trigger, str) or len(trigger.strip("/").split("/")) != 2):
        raise FaultSpecError("trigger must be a fully qualified name '/namespace/name'")
    duration = spec.get("duration_s")
    count = spec.get("count")
    if count is not None and (not isinstance(count, int) or count < 1):
        raise FaultSpecError("count must be a positive integer")
    return Fault(id=fault_id, scope=scope, status=status, message=spec.get("message"), latency_ms=int(latency),
                 rate=float(rate), disconnect=disconnect, namespace=spec.get("namespace"),
                 trigger=None if trigger is None else "/" + trigger.strip("/"),
                 expires_at=None if duration is None else time.monotonic() + float(duration), remaining=count)


class FaultInjector:
    def __init__(self, seed: int | None = None) -> None:
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._random = random.Random(seed)

    @property
    def active(self) -> bool:
        return bool(self._faults)

    def add(self, specs: list[object]) -> list[Fault]:
        """Adds all the faults, or none of them when one is invalid."""
        faults = [parse_fault(spec, f"f{next(self._ids)}") for spec in specs]
        self._faults.extend(faults)
        return faults

    def list(self) -> list[Fault]:
        self._expire()
        return list(self._faults)

    def remove(self, fault_id: str) -> bool:
        before = len(self._faults)
        self._faults = [f for f in self._faults if f.id != fault_id]
        return len(self._faults) != before

    def clear(self) -> int:
        n = len(self._faults)
        self._faults = []
        return n

    def _expire(self) -> None:
        now = time.monotonic()
        self._faults = [f for f in self._faults
                        if (f.expires_at is None or f.expires_at > now) and (f.remaining is None or f.remaining > 0)]

    def decide(self, scope: str, namespace: str | None, trigger: str | None = None) -> FaultDecision | None:
        """What to do to one request; None when no fault applies (the common, cheap case)."""
        if not self._faults:
            return None
        self._expire()
        latency = 0
        status: int | None = None
        message: str | None = None
        disconnect = False
        ids: list[str] = []
        for fault in self._faults:
            if fault.scope != "all" and fault.scope != scope:
                continue
            if fault.namespace is not None and fault.namespace != namespace:
                continue
            if fault.trigger is not None and fault.trigger != trigger:
                continue
            if fault.rate < 1.0 and self._random.random() >= fault.rate:
                continue
            forces = fault.status is not None or fault.disconnect
            if forces and (status is not None or disconnect):
                continue  # an earlier fault already decided the outcome
            fault.applied += 1
            if fault.remaining is not None:
                fault.remaining -= 1
            ids.append(fault.id)
            latency += fault.latency_ms
            if fault.disconnect:
                disconnect = True
            elif fault.status is not None:
                status = fault.status
                message = fault.message
        if not ids:
            return None
        return FaultDecision(latency, status, message, disconnect, tuple(ids))


def default_message(status: int) -> str:
    return STATUS_DEFAULT_MESSAGES.get(status, "Error")
