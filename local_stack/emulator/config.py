"""The emulator's settings: one frozen object built once by the entry point and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MAX_PAYLOAD_BYTES = 1_048_576  # the controller's activation entity limit (1 MiB)
DEFAULT_PYTHON_KIND = "python:3.11"


@dataclass(frozen=True)
class ThrottleLimits:
    """Per-namespace throttle limits, named as in `GET /api/v1/namespaces/{ns}/limits`."""

    fires_per_minute: int = 60
    invocations_per_minute: int = 60
    concurrent_invocations: int = 30

    def as_json(self) -> dict[str, int]:
        return {
            "firesPerMinute": self.fires_per_minute,
            "invocationsPerMinute": self.invocations_per_minute,
            "concurrentInvocations": self.concurrent_invocations,
        }

    def updated(self, changes: dict[str, object]) -> ThrottleLimits:
        """A copy with the camelCase keys of `changes` applied; unknown keys raise ValueError."""
        names = {"firesPerMinute": "fires_per_minute", "invocationsPerMinute": "invocations_per_minute",
                 "concurrentInvocations": "concurrent_invocations"}
        values = {f: getattr(self, f) for f in names.values()}
        for key, value in changes.items():
            if key not in names:
                raise ValueError(f"unknown limit '{key}', expected one of {sorted(names)}")
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"limit '{key}' must be a non-negative integer")
            values[names[key]] = value
        return ThrottleLimits(**values)


@dataclass(frozen=True)
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 3233
    runtime_python: str = "python3"
    namespaces_file: Path | None = None
    default_limits: ThrottleLimits = field(default_factory=ThrottleLimits)
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    max_entity_bytes: int = 64 * 1024 * 1024  # PUT bodies (zipped actions); the controller allows 48 MiB code
    max_blocking_wait_ms: int = 60_000  # controller `max-wait-for-blocking-activation`
    fires_log_max: int = 200_000
    activations_per_namespace_max: int = 100_000
    max_workers_per_action: int = 4
    python_kind: str = DEFAULT_PYTHON_KIND
    access_log: bool = False
    public_url: str | None = None  # what actions see as __OW_API_HOST; default http://host:port

    @property
    def api_host(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"
