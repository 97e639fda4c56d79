"""The emulator's own control API under `/_emulator/` (no auth): limits, the fire log, reset.

Documented in README.md. Fault injection has its own module, routes_faults.py.
"""

from __future__ import annotations

from aiohttp import web

from .httpio import json_response, read_json
from .state import emulator_of

routes = web.RouteTableDef()


def _bad(message: str) -> web.Response:
    return json_response({"error": message, "code": "emulator"}, 400)


@routes.get("/_emulator/health")
async def health(request: web.Request) -> web.Response:
    emu = emulator_of(request)
    return json_response({"ok": True, "fires_total": emu.fires.total, "fires_logged": len(emu.fires)})


@routes.get("/_emulator/limits")
async def get_limits(request: web.Request) -> web.Response:
    emu = emulator_of(request)
    return json_response({"default": emu.throttles.defaults.as_json(),
                          "namespaces": emu.throttles.snapshot(emu.identities.namespaces())})


@routes.post("/_emulator/limits")
async def set_limits(request: web.Request) -> web.Response:
    """Body: {"namespace": "guest" (omit for the defaults), "firesPerMinute": N, ..., "resetCounters": bool}.

    `{"namespace": "guest", "clear": true}` drops the namespace's overrides.
    """
    emu = emulator_of(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        return _bad("expected a JSON object")
    namespace = body.pop("namespace", None)
    reset = bool(body.pop("resetCounters", False))
    clear = bool(body.pop("clear", False))
    try:
        if namespace is None:
            limits = emu.throttles.set_defaults(body)
        elif clear:
            emu.throttles.clear_namespace(namespace)
            limits = emu.throttles.limits_for(namespace)
        else:
            limits = emu.throttles.set_namespace(namespace, body)
    except ValueError as e:
        return _bad(str(e))
    if reset:
        emu.throttles.reset_counters(namespace)
    return json_response({"namespace": namespace, "limits": limits.as_json()})


@routes.get("/_emulator/fires")
async def get_fires(request: web.Request) -> web.Response:
    """Query: after=<seq> (exclusive), since=<epoch ms>, trigger=/ns/T, status=N, limit=N, count=true."""
    emu = emulator_of(request)
    try:
        after = int(request.query.get("after", "0"))
        since = int(request.query["since"]) if "since" in request.query else None
        status = int(request.query["status"]) if "status" in request.query else None
        limit = int(request.query["limit"]) if "limit" in request.query else None
    except ValueError:
        return _bad("after, since, status and limit must be integers")
    trigger = request.query.get("trigger")
    records = emu.fires.query(after, since, "/" + trigger.strip("/") if trigger else None, status)
    if request.query.get("count") == "true":
        statuses: dict[str, int] = {}
        for r in records:
            statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
        return json_response({"count": len(records), "by_status": statuses, "total": emu.fires.total})
    if limit is not None:
        records = records[:limit]
    return json_response({"fires": [r.to_json() for r in records],
                          "last_seq": records[-1].seq if records else after, "total": emu.fires.total})


@routes.delete("/_emulator/fires")
async def clear_fires(request: web.Request) -> web.Response:
    return json_response({"cleared": emulator_of(request).fires.clear()})


@routes.post("/_emulator/reset")
async def reset(request: web.Request) -> web.Response:
    """Clears faults, the fire log, throttle counters and activations; `{"entities": true}` also entities."""
    emu = emulator_of(request)
    body = await read_json(request)
    emu.faults.clear()
    emu.fires.clear()
    emu.throttles.reset_counters()
    emu.store.clear_activations()
    if isinstance(body, dict) and body.get("entities"):
        emu.store.clear_entities()
    return json_response({"reset": True})
