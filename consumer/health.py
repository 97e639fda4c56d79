"""/healthz, /readyz and /metrics on one small aiohttp server.

Liveness: the process answers and every role's loop polled Kafka recently (a wedged loop turns
it red, so the orchestrator restarts the pod). Readiness: every role has started (the router
only after reading its subscriptions to the end) and none is stopping; the firer besides holds a
valid group membership and knows its group coordinator, so /readyz is false while Kafka is
unreachable or the firer was fenced, and true again as soon as it has rejoined (``Firer.ready``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

STALE_POLL_S = 60.0


@dataclass(frozen=True)
class RoleProbe:
    name: str
    ready: Callable[[], bool]
    last_poll: Callable[[], float]  # time.monotonic() of the loop's last poll


def app(probes: Sequence[RoleProbe], registry: CollectorRegistry,
        routes: Sequence[web.RouteDef] = ()) -> web.Application:
    """``routes``: more on the same port (the routers' read API, consumer.table_api)."""
    async def healthz(_: web.Request) -> web.Response:
        now = time.monotonic()
        stale = [p.name for p in probes if p.ready() and now - p.last_poll() > STALE_POLL_S]
        if stale:
            return web.json_response({"status": "stale", "roles": stale}, status=503)
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        roles = {p.name: p.ready() for p in probes}
        return web.json_response({"ready": all(roles.values()), "roles": roles},
                                 status=200 if all(roles.values()) else 503)

    async def metrics(_: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    application = web.Application()
    application.add_routes([web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics)])
    application.add_routes(routes)
    return application


async def serve(application: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
