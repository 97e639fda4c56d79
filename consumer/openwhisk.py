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
headers of each key, both in bounded caches.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Protocol

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
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HttpTriggerClient:
        connector = aiohttp.TCPConnector(limit=self._connector_limit, limit_per_host=self._connector_limit,
                                         keepalive_timeout=60)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session:
            await self._session.close()

    async def fire(self, apihost: str, namespace: str, name: str, api_key: str, payload: bytes) -> Attempt:
        """POST the payload (a JSON object, already serialized) to the trigger with the owner's key."""
        assert self._session is not None, "use HttpTriggerClient as an async context manager"
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
