"""The OpenWhisk edge: fire a trigger over pooled HTTP connections.

The firer is the only component that talks to the OpenWhisk API. aiohttp was chosen by
measurement (a `requests` session tops out near 1,000 POST/s per process; an asyncio client
sustains several thousand against 20 ms latency). Every library error becomes an `Attempt`
without a status here, so nothing above this module knows about aiohttp.

Redirects are never followed (DESIGN.md section 5): a 3xx comes back as its own `Attempt`, a
permanent failure whose error text names the `Location`, so a payload never leaves for a host
that is not on the allow-list.

Per-fire CPU is the firer's budget (issue 15), so what repeats is built once: the parsed URL of
each trigger (yarl parsing a URL string costs more than the rest of the request set-up) and the
headers of each key, both in bounded caches. The fire timeout is not aiohttp's: its ``total``
timeout arms a timer on the loop for every request and enters a timer context on every read
(about a tenth of the client's CPU per request, measured against a local server); a watchdog
task instead cancels, once per tick, the fires past their deadline, so a fire times out between
``timeout_s`` and ``timeout_s`` plus one tick (a tenth of it, at most a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from functools import lru_cache
from typing import Any, Protocol

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from consumer.outcomes import Attempt
from messaging_lib.topics import trigger_url

_CACHE_SIZE = 4096  # triggers and keys that repeat; a miss costs one parse, never correctness


class TriggerClient(Protocol):
    """What the firer needs of OpenWhisk: one fire, its outcome as an ``Attempt`` (never an
    exception for a failed request). Tests pass a function-backed client."""

    async def fire(self, apihost: str, namespace: str, name: str, api_key: str, payload: bytes) -> Attempt: ...


class HttpTriggerClient:
    """The real ``TriggerClient``: aiohttp with pooled connections; an async context manager."""

    def __init__(self, max_connections: int, timeout_s: float) -> None:
        self._connector_limit = max_connections
        self._timeout_s = timeout_s
        self._tick_s = min(1.0, timeout_s / 10)
        self._session: aiohttp.ClientSession | None = None
        self._deadlines: dict[asyncio.Task[Any], float] = {}  # the tasks of the fires on the wire
        self._expired: dict[asyncio.Task[Any], int] = {}  # cancelled by the watchdog: their cancelling() before
        self._watchdog: asyncio.Task[None] | None = None

    async def __aenter__(self) -> HttpTriggerClient:
        connector = aiohttp.TCPConnector(limit=self._connector_limit, limit_per_host=self._connector_limit,
                                         keepalive_timeout=60)
        # no aiohttp timeout (ClientTimeout() has none): the watchdog times the fires out
        self._session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout())
        self._watchdog = asyncio.ensure_future(self._expire())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._watchdog:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        if self._session:
            await self._session.close()

    async def _expire(self) -> None:
        """Cancel every fire past its deadline, once per tick (as aiohttp's timeout does, by
        cancelling the task; ``fire`` turns that cancellation into a timeout)."""
        while True:
            await asyncio.sleep(self._tick_s)
            now = time.monotonic()
            for task, deadline in list(self._deadlines.items()):
                if deadline <= now and task not in self._expired:
                    self._expired[task] = task.cancelling()
                    task.cancel()

    async def fire(self, apihost: str, namespace: str, name: str, api_key: str, payload: bytes) -> Attempt:
        """POST the payload (a JSON object, already serialized) to the trigger with the owner's key."""
        assert self._session is not None, "use HttpTriggerClient as an async context manager"
        task = asyncio.current_task()
        assert task is not None
        self._deadlines[task] = time.monotonic() + self._timeout_s
        try:
            # never follow a redirect: the next host is not on the allow-list, and a 307/308 would
            # re-send the owner's key and payload there (DESIGN.md section 5: a 3xx is permanent)
            async with self._session.post(_url(apihost, namespace, name), data=payload,
                                          headers=_headers(api_key), allow_redirects=False) as response:
                body = await response.read()
                if 300 <= response.status < 400:
                    where = response.headers.get("Location", "")
                    return Attempt(response.status, f"redirect to {where[:300]!r} not followed")
                return Attempt(response.status, _error_text(response.status, body))
        except TimeoutError:
            return Attempt(None, "timeout")
        except aiohttp.ClientError as e:
            return Attempt(None, f"connection error: {type(e).__name__}")
        except asyncio.CancelledError:
            cancelling = self._expired.pop(task, None)
            if cancelling is not None and task.uncancel() <= cancelling:
                return Attempt(None, "timeout")  # the watchdog's, not another cancel (as asyncio.timeout)
            raise
        finally:
            del self._deadlines[task]
            if self._expired and self._expired.pop(task, None) is not None:
                task.uncancel()  # expired as it finished, and the cancel never reached it


@lru_cache(maxsize=_CACHE_SIZE)
def _url(apihost: str, namespace: str, name: str) -> URL:
    """A trigger's URL, parsed once: the same ``URL`` aiohttp would build from the string."""
    return URL(trigger_url(apihost, namespace, name))


@lru_cache(maxsize=_CACHE_SIZE)
def _headers(api_key: str) -> CIMultiDictProxy[str]:
    """The request headers for one key, built once: keys repeat, and encoding them is per-fire CPU.
    Read-only, and already the multidict aiohttp merges without converting it."""
    user, _, password = api_key.partition(":")
    return CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json",
                                         "Authorization": aiohttp.encode_basic_auth(user, password)}))


def _error_text(status: int, body: bytes) -> str:
    if status < 300:
        return ""
    return body[:500].decode("utf-8", "replace")
