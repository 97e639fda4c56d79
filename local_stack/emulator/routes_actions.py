"""Actions: PUT, GET, DELETE, list, and invoke (openwhisk-api.md sections 4 and 11).

`invoke_action` is also the path a trigger's rules take, so rule-fired activations get the same
throttles, entitlement and parameter checks as a client's POST with the firer's key.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from .entities import (
    DEFAULT_ACTION_LIMITS,
    Action,
    Exec,
    Package,
    Params,
    bump_patch,
    check_name,
    defined_keys,
    has_param,
    is_truthy,
    merge_params,
    now_ms,
    parse_version,
    remove_keys,
    validate_params,
)
from .entitlement import check_package_read, require_owner
from .errors import (
    ALREADY_EXISTS,
    NOT_ALLOWED_ON_BINDING,
    NOT_FOUND,
    PARAMETERS_NOT_ALLOWED,
    ApiError,
    invalid_runtime,
    invalid_timeout,
    malformed,
)
from .faults import FaultDecision
from .httpio import (
    authenticate,
    check_size,
    json_response,
    list_response,
    query_bool,
    read_json,
    read_object,
    resolve_namespace,
)
from .identities import Identity
from .invoker import Invocation, resolve_action, resolve_package
from .routes_faults import apply_fault
from .state import Emulator, emulator_of

routes = web.RouteTableDef()
BASE = "/api/v1/namespaces/{ns}/actions"
ACTIVATION_HEADER = "x-openwhisk-activation-id"
_BASE64 = re.compile(r"\A([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)\Z")


def is_binary_code(code: str) -> bool:
    """The controller's `Exec.isBinaryCode`: non-empty base64 once trimmed."""
    trimmed = code.strip()
    return len(trimmed) > 0 and len(trimmed) % 4 == 0 and _BASE64.match(trimmed) is not None


def _names(request: web.Request, identity: Identity) -> tuple[str, str | None, str]:
    ns = resolve_namespace(request.match_info["ns"], identity)
    pkg = request.match_info.get("pkg")
    return ns, check_name(pkg) if pkg is not None else None, check_name(request.match_info["name"])


def _resource(ns: str, pkg: str | None, name: str) -> str:
    return f"{ns}/{pkg}/{name}" if pkg else f"{ns}/{name}"


def _owned_package(emu: Emulator, ns: str, pkg: str) -> Package:
    """The package an action is written into: it must exist and not be a binding."""
    found = emu.store.get(f"{ns}/{pkg}", Package)
    if found is None:
        raise ApiError(404, NOT_FOUND)
    if found.binding is not None:
        raise ApiError(400, NOT_ALLOWED_ON_BINDING)
    return found


def check_read_or_invoke(emu: Emulator, identity: Identity, ns: str, pkg: str | None, name: str) -> None:
    if pkg is None:
        require_owner(identity, ns, f"{ns}/{name}")
    else:
        check_package_read(emu.store, identity, ns, pkg)


# ---- PUT ---------------------------------------------------------------------------------------

def _parse_exec(emu: Emulator, value: object) -> Exec:
    if not isinstance(value, dict) or not isinstance(value.get("kind"), str):
        raise ApiError(400, malformed("'kind' must be a string defined in 'exec'"))
    kind = emu.resolve_kind(value["kind"])
    if kind is None:
        raise ApiError(400, invalid_runtime(value["kind"].strip().lower(), emu.kinds))
    code = value.get("code")
    if not isinstance(code, str):
        raise ApiError(400, malformed(f"'code' must be a string defined in 'exec' for '{kind}' actions"))
    main = value.get("main")
    if main is not None and not isinstance(main, str):
        raise ApiError(400, malformed(f"if defined, 'main' be a string in 'exec' for '{kind}' actions"))
    return Exec(kind=kind, code=code, binary=is_binary_code(code), main=main)


def _parse_limits(value: object, base: dict[str, Any]) -> dict[str, Any]:
    if value is None:
        return dict(base)
    if not isinstance(value, dict):
        raise ApiError(400, malformed("'limits' must be an object"))
    out = dict(base)
    for key in ("timeout", "memory", "logs", "concurrency"):
        if value.get(key) is not None:
            if not isinstance(value[key], int) or isinstance(value[key], bool) or value[key] < 0:
                raise ApiError(400, malformed(f"limit '{key}' must be a non-negative integer"))
            out[key] = value[key]
    return out


def _amend(annotations: Params, exec_: Exec, create: bool) -> Params:
    out = list(annotations)
    if create and not has_param(out, "provide-api-key"):
        out.append({"key": "provide-api-key", "value": False})
    return merge_params(out, [{"key": "exec", "value": exec_.kind}])


def _updated_action(emu: Emulator, old: Action, body: dict[str, Any]) -> Action:
    exec_ = _parse_exec(emu, body["exec"]) if body.get("exec") is not None else old.exec
    annotations = old.annotations
    deleted = body.get("delAnnotations")
    if isinstance(deleted, list):
        annotations = remove_keys(annotations, {k for k in deleted if isinstance(k, str)})
    if body.get("annotations") is not None:
        annotations = merge_params(annotations, validate_params(body["annotations"], "annotations"))
    return Action(
        namespace=old.namespace, name=old.name, exec=exec_,
        version=parse_version(body["version"]) if body.get("version") is not None else bump_patch(old.version),
        publish=old.publish if body.get("publish") is None else bool(body["publish"]),
        parameters=validate_params(body["parameters"], "parameters") if body.get("parameters") is not None
        else old.parameters,
        annotations=_amend(annotations, exec_, create=False),
        limits=_parse_limits(body.get("limits"), old.limits), updated=now_ms())


def _new_action(emu: Emulator, path: str, name: str, body: dict[str, Any]) -> Action:
    if body.get("exec") is None:
        raise ApiError(400, "exec undefined")
    exec_ = _parse_exec(emu, body["exec"])
    return Action(
        namespace=path, name=name, exec=exec_,
        version=parse_version(body["version"]) if body.get("version") is not None else "0.0.1",
        publish=bool(body.get("publish", False)),
        parameters=validate_params(body.get("parameters"), "parameters"),
        annotations=_amend(validate_params(body.get("annotations"), "annotations"), exec_, create=True),
        limits=_parse_limits(body.get("limits"), DEFAULT_ACTION_LIMITS))


@routes.put(BASE + "/{name}")
@routes.put(BASE + "/{pkg}/{name}")
async def put_action(request: web.Request) -> web.Response:
    emu = emulator_of(request)
    identity = authenticate(request, emu.identities)
    ns, pkg, name = _names(request, identity)
    require_owner(identity, ns, _resource(ns, pkg, name))
    path = _owned_package(emu, ns, pkg).path if pkg else ns
    body = await read_object(request, emu.config.max_entity_bytes)
    existing = emu.store.get(f"{path}/{name}", Action)
    if existing is not None:
        if not query_bool(request, "overwrite"):
            raise ApiError(409, ALREADY_EXISTS)
        action = _updated_action(emu, existing, body)
    else:
        action = _new_action(emu, path, name, body)
    emu.store.put(action)
    return json_response(action.to_json())


# ---- GET, DELETE, lists --------------------------------------------------------------------------

@routes.get(BASE + "/{name}")
@routes.get(BASE + "/{pkg}/{name}")
async def get_action(request: web.Request) -> web.Response:
    emu = emulator_of(request)
    identity = authenticate(request, emu.identities)
    ns, pkg, name = _names(request, identity)
    check_read_or_invoke(emu, identity, ns, pkg, name)
    resolved = resolve_action(emu.store, f"{ns}/{pkg}" if pkg else ns, name)
    return json_response(resolved.action.to_json(query_bool(request, "code", True), resolved.parameters))


@routes.delete(BASE + "/{name}")
@routes.delete(BASE + "/{pkg}/{name}")
async def delete_action(request: web.Request) -> web.Response:
    emu = emulator_of(request)
    identity = authenticate(request, emu.identities)
    ns, pkg, name = _names(request, identity)
    require_owner(identity, ns, _resource(ns, pkg, name))
    path = _owned_package(emu, ns, pkg).path if pkg else ns
    action = emu.store.get(f"{path}/{name}", Action)
    if action is None:
        raise ApiError(404, NOT_FOUND)
    emu.store.delete(action.docid)
    return json_response(action.to_json())


@routes.get(BASE)
@routes.get(BASE + "/")
async def list_actions(request: web.Request) -> web.Response:
    emu = emulator_of(request)
    identity = authenticate(request, emu.identities)
    ns = resolve_namespace(request.match_info["ns"], identity)
    require_owner(identity, ns, ns)
    found = emu.store.list(Action, ns, include_nested=True)
    return list_response(request, "actions", [a.summary() for a in found])


@routes.get(BASE + "/{pkg}/")
async def list_package_actions(request: web.Request) -> web.Response:
    emu = emulator_of(request)
    identity = authenticate(request, emu.identities)
    ns = resolve_namespace(request.match_info["ns"], identity)
    pkg_name = check_name(request.match_info["pkg"])
    check_package_read(emu.store, identity, ns, pkg_name)
    holder, _binding = resolve_package(emu.store, ns, pkg_name)
    return list_response(request, "actions", [a.summary() for a in emu.store.list(Action, holder.path)])


# ---- invoke ------------------------------------------------------------------------------------

def admit_invoke(emu: Emulator, identity: Identity, ns: str, pkg: str | None, name: str) -> None:
    """The checks before anything is loaded: the caller's invoke throttles, then entitlement."""
    emu.throttles.check_invoke(identity.namespace)
    check_read_or_invoke(emu, identity, ns, pkg, name)


async def start_invoke(emu: Emulator, identity: Identity, ns: str, pkg: str | None, name: str,
                       payload: object, wait_ms: int | None, cause: str | None = None) -> Invocation:
    """Resolve the action, check `final`, start the activation as `identity`."""
    if payload is None:
        payload = {}
    if not isinstance(payload, dict | list):
        raise ApiError(400, malformed("expected a JSON object"))
    resolved = resolve_action(emu.store, f"{ns}/{pkg}" if pkg else ns, name)
    final = is_truthy(resolved.action.annotations, "final")
    if final and isinstance(payload, dict) and set(payload) & defined_keys(resolved.parameters):
        raise ApiError(400, PARAMETERS_NOT_ALLOWED)
    return await emu.invoker.invoke(identity, resolved, payload, wait_ms, cause)


def _wait_ms(emu: Emulator, request: web.Request) -> int:
    maximum = emu.config.max_blocking_wait_ms
    raw = request.query.get("timeout")
    if raw is None:
        return maximum
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 < value <= maximum:
        raise ApiError(400, invalid_timeout(maximum))
    return value


@routes.post(BASE + "/{name}")
@routes.post(BASE + "/{pkg}/{name}")
async def post_action(request: web.Request) -> web.Response:
    emu = emulator_of(request)
    identity = authenticate(request, emu.identities)
    ns, pkg, name = _names(request, identity)
    decision: FaultDecision | None = emu.faults.decide("invokes", identity.namespace)
    if decision is not None:
        forced = await apply_fault(request, emu, decision, identity.namespace, _resource(ns, pkg, name))
        if forced is not None:
            return forced
    blocking = query_bool(request, "blocking")
    result_only = query_bool(request, "result")
    wait_ms = _wait_ms(emu, request) if blocking else None
    admit_invoke(emu, identity, ns, pkg, name)
    check_size(request, emu.config.max_payload_bytes)
    payload = await read_json(request, emu.config.max_payload_bytes)
    invocation = await start_invoke(emu, identity, ns, pkg, name, payload, wait_ms)
    headers = {ACTIVATION_HEADER: invocation.activation_id}
    activation = invocation.activation
    if activation is None:
        return json_response({"activationId": invocation.activation_id}, 202, headers)
    if result_only or isinstance(activation.result, list):
        body: Any = activation.result
    else:
        body = activation.to_json()
    if activation.status == "success":
        return json_response(body, 200, headers)
    if activation.status in ("application error", "action developer error"):
        return json_response(body, 502, headers)
    return json_response(body, 500, headers)
