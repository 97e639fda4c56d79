"""Fault injection: the `/_emulator/faults` control API and how a decided fault shapes a response.

Forced statuses carry the controller's own bodies (401 with its challenge header, 403/404 with
the standard messages, 429 with the throttle text) unless the fault gives a `message`.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from .errors import (
    AUTH_CHALLENGE,
    INVALID_AUTH,
    NOT_FOUND,
    STATUS_DEFAULT_MESSAGES,
    entity_too_big,
    error_response,
    not_authorized,
    too_many_requests,
)
from .faults import FaultDecision, FaultSpecError
from .httpio import json_response, read_json
from .state import Emulator, emulator_of

routes = web.RouteTableDef()


def _forced_body(emu: Emulator, request: web.Request, decision: FaultDecision, namespace: str | None,
                 resource: str, scope: str) -> tuple[str, dict[str, str]]:
    status = decision.status or 500
    if decision.message is not None:
        return decision.message, AUTH_CHALLENGE if status == 401 else {}
    if status == 401:
        return INVALID_AUTH, AUTH_CHALLENGE
    if status == 403:
        return not_authorized(resource), {}
    if status == 404:
        return NOT_FOUND, {}
    if status == 413:
        return entity_too_big(request.content_length or 0, emu.config.max_payload_bytes), {}
    if status == 429:
        limits = emu.throttles.limits_for(namespace or "")
        allowed = limits.fires_per_minute if scope == "fires" else limits.invocations_per_minute
        return too_many_requests(allowed + 1, allowed), {}
    return STATUS_DEFAULT_MESSAGES.get(status, "Error"), {}


async def apply_fault(request: web.Request, emu: Emulator, decision: FaultDecision, namespace: str | None,
                      resource: str, scope: str = "invokes") -> web.StreamResponse | None:
    """Waits the added latency; returns the forced response, or None to go on normally."""
    if decision.latency_ms:
        await asyncio.sleep(decision.latency_ms / 1000)
    if decision.disconnect:
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=503)  # never reaches the client: the connection is gone
    if decision.status is None:
        return None
    message, headers = _forced_body(emu, request, decision, namespace, resource, scope)
    return error_response(decision.status, message, headers)


@routes.get("/_emulator/faults")
async def list_faults(request: web.Request) -> web.Response:
    return json_response({"faults": [f.to_json() for f in emulator_of(request).faults.list()]})


@routes.post("/_emulator/faults")
async def add_fault(request: web.Request) -> web.Response:
    emu = emulator_of(request)
    body = await read_json(request)
    specs = body if isinstance(body, list) else [body]
    try:
        added = emu.faults.add(specs)
    except FaultSpecError as e:
        return json_response({"error": str(e), "code": "emulator"}, 400)
    if isinstance(body, list):
        return json_response({"faults": [f.to_json() for f in added]})
    return json_response(added[0].to_json())


@routes.delete("/_emulator/faults")
async def clear_faults(request: web.Request) -> web.Response:
    return json_response({"cleared": emulator_of(request).faults.clear()})


@routes.delete("/_emulator/faults/{id}")
async def delete_fault(request: web.Request) -> web.Response:
    if not emulator_of(request).faults.remove(request.match_info["id"]):
        return json_response({"error": "no such fault", "code": "emulator"}, 404)
    return json_response({"cleared": 1})
