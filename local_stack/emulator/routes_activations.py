"""Activations: list, get, result and logs; only the owning namespace may read (section 7)."""

from __future__ import annotations

from aiohttp import web

from .entities import ACTIVATION_ID_RE, Activation
from .entitlement import require_owner
from .errors import DOCS_WITH_COUNT, ILLEGAL_ACTIVATION_ID, NOT_FOUND, ApiError
from .httpio import authenticate, json_response, list_window, query_bool, resolve_namespace
from .state import emulator_of

routes = web.RouteTableDef()
BASE = "/api/v1/namespaces/{ns}/activations"


def _epoch_ms(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError as e:
        raise ApiError(400, f"Parameter is not a valid value for epoch seconds: {raw}") from e


@routes.get(BASE)
@routes.get(BASE + "/")
async def list_activations(request: web.Request) -> web.Response:
    emu = emulator_of(request)
    identity = authenticate(request, emu.identities)
    ns = resolve_namespace(request.match_info["ns"], identity)
    require_owner(identity, ns, ns)
    skip, limit = list_window(request, "activations")
    count = query_bool(request, "count")
    docs = query_bool(request, "docs")
    if count and docs:
        raise ApiError(400, DOCS_WITH_COUNT)
    name = request.query.get("name")
    since, upto = _epoch_ms(request, "since"), _epoch_ms(request, "upto")
    found = [a for a in emu.store.list_activations(ns)
             if (name is None or a.filter_name() == name.strip("/"))
             and (since is None or a.start >= since) and (upto is None or a.start <= upto)]
    if count:
        return json_response({"activations": max(0, len(found) - skip)})
    page = found[skip:skip + limit]
    return json_response([a.to_json() if docs else a.summary() for a in page])


def _activation(request: web.Request) -> Activation:
    emu = emulator_of(request)
    identity = authenticate(request, emu.identities)
    ns = resolve_namespace(request.match_info["ns"], identity)
    activation_id = request.match_info["id"]
    if not ACTIVATION_ID_RE.match(activation_id):
        raise ApiError(400, ILLEGAL_ACTIVATION_ID)
    require_owner(identity, ns, f"{ns}/{activation_id}")
    activation = emu.store.get_activation(ns, activation_id)
    if activation is None:
        raise ApiError(404, NOT_FOUND)
    return activation


@routes.get(BASE + "/{id}")
@routes.get(BASE + "/{id}/")
async def get_activation(request: web.Request) -> web.Response:
    return json_response(_activation(request).to_json())


@routes.get(BASE + "/{id}/result")
async def get_result(request: web.Request) -> web.Response:
    return json_response(_activation(request).result_json())


@routes.get(BASE + "/{id}/logs")
async def get_logs(request: web.Request) -> web.Response:
    return json_response({"logs": _activation(request).logs})
