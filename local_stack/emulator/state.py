"""The emulator's shared state: one object holding every component, reachable from each request."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from .config import EmulatorConfig
from .faults import FaultInjector
from .firelog import FireLog
from .identities import Identities
from .invoker import Invoker
from .store import Store
from .throttles import Throttles


@dataclass
class Emulator:
    config: EmulatorConfig
    identities: Identities
    store: Store
    throttles: Throttles
    faults: FaultInjector
    fires: FireLog
    invoker: Invoker

    @property
    def kinds(self) -> list[str]:
        """Runtime kinds accepted on PUT, besides `<family>:default`."""
        return [self.config.python_kind]

    def resolve_kind(self, kind: str) -> str | None:
        kind = kind.strip().lower()
        if kind == "python:default":
            return self.config.python_kind
        return kind if kind in self.kinds else None


EMULATOR = web.AppKey("emulator", Emulator)


def emulator_of(request: web.Request) -> Emulator:
    return request.app[EMULATOR]
