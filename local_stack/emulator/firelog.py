"""The record of every trigger fire the emulator received, for tests and benchmarks to inspect.

Bounded (oldest entries drop out) and cheap to append to and to keep: a record holds the raw body
bytes the request already had and its headers packed into one bytes object (authorization
redacted); parsing and JSON rendering happen only when the control API asks.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class FireRecord:
    seq: int
    time_ms: int
    trigger: str  # "/ns/T" (namespace as resolved; `_` stays `_` when the caller was not authenticated)
    namespace: str | None  # the firer's namespace, None when authentication failed
    status: int
    body: bytes | None  # None when the body was not read (a 413)
    headers: bytes  # "name: value" lines, see pack_headers
    activation_id: str | None
    faults: tuple[str, ...]

    def payload(self) -> Any:
        """The body as JSON when it parses, else as text; None when empty or not read."""
        if not self.body or not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return self.body.decode("utf-8", "replace")

    def header_dict(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in self.headers.split(b"\n"):
            name, _, value = line.partition(b": ")
            if name:
                out[name.decode("latin-1").lower()] = value.decode("latin-1")
        return out

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "time_ms": self.time_ms, "trigger": self.trigger, "namespace": self.namespace,
                "status": self.status, "payload": self.payload(), "headers": self.header_dict(),
                "activationId": self.activation_id, "faults": list(self.faults)}


def pack_headers(raw_headers: tuple[tuple[bytes, bytes], ...]) -> bytes:
    """Request headers as one bytes object, the authorization value replaced by `<redacted>`."""
    return b"\n".join(name + b": " + (b"<redacted>" if name.lower() == b"authorization" else value)
                      for name, value in raw_headers)


class FireLog:
    def __init__(self, maxlen: int) -> None:
        self._records: deque[FireRecord] = deque(maxlen=maxlen)
        self._seq = itertools.count(1)
        self.total = 0

    def append(self, time_ms: int, trigger: str, namespace: str | None, status: int, body: bytes | None,
               headers: bytes, activation_id: str | None, faults: tuple[str, ...] = ()) -> None:
        self._records.append(FireRecord(next(self._seq), time_ms, trigger, namespace, status, body, headers,
                                        activation_id, faults))
        self.total += 1

    def clear(self) -> int:
        n = len(self._records)
        self._records.clear()
        return n

    def query(self, after_seq: int = 0, since_ms: int | None = None, trigger: str | None = None,
              status: int | None = None) -> list[FireRecord]:
        out = []
        for r in self._records:
            if r.seq <= after_seq:
                continue
            if since_ms is not None and r.time_ms < since_ms:
                continue
            if trigger is not None and r.trigger != trigger:
                continue
            if status is not None and r.status != status:
                continue
            out.append(r)
        return out

    def __len__(self) -> int:
        return len(self._records)
