"""Triggers: PUT, GET, DELETE, list, and fire (openwhisk-api.md sections 5 and 9).

Firing is the hot path (benchmarks push thousands of fires per second), so it does the minimum:
one dict lookup for the key, the throttle counter, one dict lookup for the trigger. Every fire,
whatever its outcome, is appended to the fire log for `GET /_emulator/fires`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .entities import (
    Activation,
    Trigger,
    bump_patch,
    check_name,
    get_param,
    has_param,
    now_ms,
    params_to_dict,
    parse_version,
    valid_feed_name,
    valid_name,
    validate_params,
)
from .entitlement import require_owner
from .errors import (
    ALREADY_EXISTS,
    CONFORMANCE,
    FEED_NOT_VALID,
    ILLEGAL_NAME,
    ILLEGAL_NAMESPACE,
    NOT_FOUND,
    ApiError,
    api_error_response,
    inactive_rule,
    malformed,
    not_authorized,
    unauthorized,
)
from .firelog import pack_headers
from .httpio import (
    authenticate,
    check_size,
    json_response,
    list_response,
    parse_json,
    query_bool,
    read_object,
    resolve_namespace,
)
from .identities import Identity
from .routes_actions import ACTIVATION_HEADER, admit_invoke, start_invoke
from .routes_faults import apply_fault
from .state import Emulator, emulator_of

routes = web.RouteTableDef()
BASE = "/api/v1/namespaces/{ns}/triggers"
NO_CONTENT = 204


def _target(request: web.Request) -> tuple[Emulator, Identity, str, str]:
    emu = emulator_of(request)
    identity = authenticate(request, emu.identities)
    ns = resolve_namespace(request.match_info["ns"], identity)
    name = check_name(request.match_info["name"])
    require_owner(identity, ns, f"{ns}/{name}")
    return emu, identity, ns, name


@routes.put(BASE + "/{name}")
async def put_trigger(request: web.Request) -> web.Response:
    emu, _identity, ns, name = _target(request)
    body = await read_object(request, emu.config.max_entity_bytes)
    existing = emu.store.get(f"{ns}/{name}", Trigger)
    parameters = validate_params(body["parameters"], "parameters") if body.get("parameters") is not None else None
    annotations = validate_params(body["annotations"], "annotations") if body.get("annotations") is not None \
        else None
    limits = body.get("limits") if isinstance(body.get("limits"), dict) else None
    version = parse_version(body["version"]) if body.get("version") is not None else None
    publish = body.get("publish")
    if existing is not None:
        if not query_bool(request, "overwrite"):
            raise ApiError(409, ALREADY_EXISTS)
        trigger = Trigger(namespace=ns, name=name, version=version or bump_patch(existing.version),
                          publish=existing.publish if publish is None else bool(publish),
                          parameters=existing.parameters if parameters is None else parameters,
                          annotations=existing.annotations if annotations is None else annotations,
                          limits=existing.limits if limits is None else limits, rules=existing.rules,
                          updated=now_ms())
    else:
        annotations = annotations or []
        if has_param(annotations, "feed") and not valid_feed_name(get_param(annotations, "feed")):
            raise ApiError(400, FEED_NOT_VALID)
        trigger = Trigger(namespace=ns, name=name, version=version or "0.0.1", publish=bool(publish),
                          parameters=parameters or [], annotations=annotations, limits=limits or {})
    emu.store.put(trigger)
    return json_response(trigger.to_json())


@routes.get(BASE + "/{name}")
async def get_trigger(request: web.Request) -> web.Response:
    emu, _identity, ns, name = _target(request)
    trigger = emu.store.get(f"{ns}/{name}", Trigger)
    if trigger is None:
        raise ApiError(404, NOT_FOUND)
    return json_response(trigger.to_json())


@routes.delete(BASE + "/{name}")
async def delete_trigger(request: web.Request) -> web.Response:
    emu, _identity, ns, name = _target(request)
    trigger = emu.store.get(f"{ns}/{name}", Trigger)
    if trigger is None:
        raise ApiError(404, NOT_FOUND)
    emu.store.delete(trigger.docid)
    return json_response(trigger.to_json())


@routes.get(BASE)
@routes.get(BASE + "/")
async def list_triggers(request: web.Request) -> web.Response:
    emu = emulator_of(request)
    identity = authenticate(request, emu.identities)
    ns = resolve_namespace(request.match_info["ns"], identity)
    require_owner(identity, ns, ns)
    return list_response(request, "triggers", [t.summary() for t in emu.store.list(Trigger, ns)])


# ---- fire ---------------------------------------------------------------------------------------

@dataclass
class _Fire:
    """What one fire request produced, for the fire log."""

    identity: Identity | None = None
    body: bytes | None = None
    activation_id: str | None = None
    faults: tuple[str, ...] = ()


@routes.post(BASE + "/{name}")
async def fire_trigger(request: web.Request) -> web.StreamResponse:
    emu = emulator_of(request)
    received_ms = now_ms()
    segment = request.match_info["ns"]
    name = request.match_info["name"]
    fire = _Fire()
    try:
        response = await _checked_fire(emu, request, fire, segment, name)
    except ApiError as error:
        response = api_error_response(error)
    if response.status == 413:
        fire.body = None  # never keep an oversized body
    elif fire.body is None:
        fire.body = await _body_for_log(request)
    ns = fire.identity.namespace if fire.identity is not None and segment == "_" else segment
    emu.fires.append(received_ms, f"/{ns}/{name}", fire.identity.namespace if fire.identity else None,
                     response.status, fire.body, pack_headers(request.raw_headers), fire.activation_id, fire.faults)
    return response


async def _body_for_log(request: web.Request) -> bytes | None:
    """The body of a fire refused before it was read, best effort (the log shows what was sent)."""
    try:
        return await request.read()
    except Exception:  # a body that cannot be read (too large, connection gone) is simply not shown
        return None


async def _checked_fire(emu: Emulator, request: web.Request, fire: _Fire, segment: str,
                        name: str) -> web.StreamResponse:
    header = request.headers.get("Authorization")
    identity = emu.identities.from_header(header) if header is not None else None
    if identity is None:
        raise unauthorized(missing=header is None)
    fire.identity = identity
    ns = identity.namespace if segment == "_" else segment
    if emu.faults.active:
        decision = emu.faults.decide("fires", identity.namespace, f"/{ns}/{name}")
        if decision is not None:
            fire.faults = decision.fault_ids
            forced = await apply_fault(request, emu, decision, identity.namespace, f"{ns}/{name}", "fires")
            if forced is not None:
                return forced
    return await _fire(emu, request, fire, identity, ns, name)


async def _fire(emu: Emulator, request: web.Request, fire: _Fire, identity: Identity, ns: str,
                name: str) -> web.Response:
    """The controller's order: throttle, entitlement, size, body, trigger lookup, rules."""
    emu.throttles.check_fire(identity.namespace)
    if not valid_name(ns):
        raise ApiError(400, ILLEGAL_NAMESPACE)
    if not valid_name(name):
        raise ApiError(400, ILLEGAL_NAME)
    if ns != identity.namespace:
        raise ApiError(403, not_authorized(f"{ns}/{name}"))
    check_size(request, emu.config.max_payload_bytes)
    fire.body = await request.read()
    payload = parse_json(fire.body, emu.config.max_payload_bytes)
    if payload is not None and not isinstance(payload, dict):
        raise ApiError(400, malformed("expected a JSON object"))
    trigger = emu.store.get_trigger_fast(f"{ns}/{name}")
    if trigger is None:
        raise ApiError(404, NOT_FOUND)
    if not isinstance(trigger, Trigger):
        raise ApiError(409, CONFORMANCE)
    if not trigger.has_active_rule():
        # Triggers.scala `activate`: no active rule -> `complete(NoContent)`, no activation record, no
        # activation-id header (tests/local_stack/test_emulator_no_rule.py)
        return web.Response(status=NO_CONTENT)
    activation_id = uuid.uuid4().hex
    args = params_to_dict(trigger.parameters)
    args["__ow_headers"] = {k.lower(): v for k, v in request.headers.items()}
    args.update(payload or {})
    logs = [await _activate_rule(emu, identity, rule_name, trigger, args) for rule_name in list(trigger.rules or {})]
    emu.store.add_activation(Activation(
        namespace=identity.namespace, name=trigger.name, version=trigger.version, subject=identity.subject,
        activation_id=activation_id, start=now_ms(), end=0, status="success",
        result=payload if payload is not None else {}, logs=logs))
    fire.activation_id = activation_id
    return json_response({"activationId": activation_id}, 202, {ACTIVATION_HEADER: activation_id})


async def _activate_rule(emu: Emulator, identity: Identity, rule_name: str, trigger: Trigger,
                         args: dict[str, Any]) -> str:
    """Invokes one rule's action non-blocking as the firer; returns the trigger activation's log line."""
    link = (trigger.rules or {})[rule_name]
    action = link.action
    entry: dict[str, Any]
    if link.status != "active":
        entry = {"statusCode": 1, "success": False, "error": inactive_rule(rule_name, str(action))}
    else:
        try:
            admit_invoke(emu, identity, action.namespace, action.package, action.name)
            invocation = await start_invoke(emu, identity, action.namespace, action.package, action.name,
                                            dict(args), None)
            entry = {"statusCode": 0, "success": True, "activationId": invocation.activation_id}
        except ApiError as error:
            entry = {"statusCode": 3 if error.status >= 500 else 1, "success": False, "error": error.message}
    entry["rule"] = rule_name
    entry["action"] = str(action)
    return json.dumps(entry, separators=(",", ":"))
