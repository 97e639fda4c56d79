"""The routers' read API: the latest subscription records the feed asks for, from the router's table.

The feed's web action (feed.store.RouterStore) asks here instead of reading the whole
subscriptions topic on every READ, UPDATE, PAUSE, UNPAUSE and CREATE, so those cost the same at a
million subscriptions as at a thousand; the contract (path, query, answer, HMAC authentication) is
feed.lookup's. Served on the consumer's HTTP port (consumer.health) by every process that runs the
router role and has the sealing keys; without them the route is not there (404) and the actions
read the topic, as before.

Nothing is kept for the API: the answer is built from what the table holds for the router
(``SubscriptionIndex``: a subscription with its version and status, the grants), each record
encoded again; a status or grant is answered without an offset (the table does not keep it, and
the lifecycle does not use it). A record the table skipped as unreadable is absent here (the
topic read would show it, and the lifecycle would answer 500 instead of 404).

Freshness: the caller names the offset its answer must include (``min_offset``, the topic's end
minus one when it asks); the handler waits, at most ``wait_ms`` capped by MAX_WAIT_MS, for the
router's loop to apply it, then answers 503 with how far it got, and the caller reads the topic.
The handler runs on the router's own loop, so it sees the table between two of the loop's steps,
never half-applied.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from consumer.subscriptions import Live
from feed import grants as feed_grants
from feed import lookup, records
from feed.grants import Grant

MAX_KEYS = 64  # what one request may name (an event needs 2 keys and 1 prefix)
POLL_S = 0.01  # how often a waiting request looks at the table's applied offset


class Table(Protocol):
    """What the API reads of consumer.subscriptions.SubscriptionIndex."""

    applied: int

    def get(self, trigger: str) -> Live | None: ...

    def grants_of(self, namespace: str) -> Iterable[Grant]: ...


class Unanswerable(Exception):
    """A key or prefix this table does not hold (the caller reads the topic instead): 400."""


class TableApi:
    """``GET feed.lookup.PATH`` over ``table``; ``ready``: the router has loaded it and runs."""

    def __init__(self, table: Table, secrets: list[bytes], ready: Callable[[], bool],
                 clock: Callable[[], float] = time.time, max_wait_ms: int = lookup.MAX_WAIT_MS,
                 registry: CollectorRegistry | None = None) -> None:
        self._table, self._secrets, self._ready = table, secrets, ready
        self._clock, self._max_wait_ms = clock, max_wait_ms
        self.waiting = 0  # requests waiting for the table to catch up now
        # by HTTP status: 200 answered; 401, 400, 503 sent the caller to the topic
        self._answers = Counter("subscriptions_api_requests", "Requests to the subscriptions read API, by answer",
                                ["status"], registry=CollectorRegistry() if registry is None else registry)

    def route(self) -> web.RouteDef:
        return web.get(lookup.PATH, self.latest)

    async def latest(self, request: web.Request) -> web.Response:
        response = await self._latest(request)
        self._answers.labels(str(response.status)).inc()
        return response

    async def _latest(self, request: web.Request) -> web.Response:
        signed_by = lookup.authorized(request.headers.get("Authorization"), self._secrets, self._clock(),
                                      request.method, request.raw_path)
        if signed_by is None:
            return web.json_response({"error": "unauthorized"}, status=401)
        response = await self._answer(request)
        body = response.body if isinstance(response.body, bytes) else b""  # json_response: always bytes
        response.headers[lookup.ANSWER_HEADER] = lookup.answer_signature(
            signed_by, request.headers["Authorization"], body)
        return response

    async def _answer(self, request: web.Request) -> web.Response:
        try:
            keys, prefixes = request.query.getall("key", []), request.query.getall("prefix", [])
            min_offset = int(request.query.get("min_offset", "-1"))
            wait_ms = min(max(0, int(request.query.get("wait_ms", "0"))), self._max_wait_ms)
        except ValueError:
            return web.json_response({"error": "min_offset and wait_ms must be whole numbers"}, status=400)
        if len(keys) + len(prefixes) > MAX_KEYS:
            return web.json_response({"error": f"at most {MAX_KEYS} keys and prefixes"}, status=400)
        if not self._ready():
            return web.json_response({"error": "the router is not ready", "applied_offset": self._table.applied},
                                     status=503)
        if not await self._caught_up(min_offset, wait_ms / 1000):
            return web.json_response({"error": "the table has not reached min_offset",
                                      "applied_offset": self._table.applied}, status=503)
        try:
            found = self.lookup(keys, prefixes)
        except Unanswerable as e:
            return web.json_response({"error": str(e)}, status=400)
        return web.json_response(lookup.encode_answer(self._table.applied, found))

    async def _caught_up(self, min_offset: int, wait_s: float) -> bool:
        deadline = time.monotonic() + wait_s
        self.waiting += 1
        try:
            while self._table.applied < min_offset:
                if time.monotonic() >= deadline:
                    return False
                await asyncio.sleep(POLL_S)
            return True
        finally:
            self.waiting -= 1

    def lookup(self, keys: Iterable[str], prefixes: Iterable[str]) -> dict[bytes, tuple[int | None, bytes]]:
        """The latest value of each key (and of every key under each grant prefix) the table holds."""
        found: dict[bytes, tuple[int | None, bytes]] = {}
        for key in keys:
            raw = key.encode("utf-8")
            parsed = records.parse_key(raw)
            if parsed is None:
                raise Unanswerable(f"not a subscription or status key: {key[:100]!r}")
            prefix, trigger = parsed
            live = self._table.get(trigger)
            if live is None:
                continue
            if prefix == records.SUBSCRIPTION_PREFIX:
                found[raw] = (live.version, records.encode_subscription(live.sub))
            elif live.status is not None:
                found[raw] = (None, records.encode_status(live.status))
        for prefix in prefixes:
            for grant in self._table.grants_of(_grant_namespace(prefix)):
                found[grant.key] = (None, feed_grants.encode_grant(grant, 0))
        return found


def _grant_namespace(prefix: str) -> str:
    """The namespace of a ``grant:<ns>:`` prefix (the only prefix the table answers)."""
    rest = prefix.removeprefix(feed_grants.GRANT_PREFIX)
    if rest == prefix or not rest.endswith(":") or ":" in rest[:-1] or len(rest) < 2:
        raise Unanswerable(f"not a grant:<namespace>: prefix: {prefix[:100]!r}")
    return rest[:-1]


def routes(table: Table, ready: Callable[[], bool], sealing_keys: str,
           registry: CollectorRegistry) -> list[web.RouteDef]:
    """The API's route for the consumer's HTTP server; none without sealing keys (no one could ask)."""
    if not sealing_keys.strip():
        return []
    return [TableApi(table, lookup.api_secrets(sealing_keys), ready, registry=registry).route()]
