"""Packages and bindings: PUT, GET, DELETE, list (openwhisk-api.md section 3)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .entities import (
    Action,
    EntityRef,
    Package,
    bump_patch,
    check_name,
    merge_params,
    now_ms,
    parse_version,
    remove_keys,
    validate_params,
)
from .entitlement import check_package_read, require_owner
from .errors import (
    ALREADY_EXISTS,
    BINDING_DOES_NOT_EXIST,
    BINDING_TO_BINDING,
    NOT_A_PACKAGE,
    NOT_FOUND,
    PACKAGE_CANNOT_BECOME_BINDING,
    ApiError,
    malformed,
    package_name_reserved,
    package_not_empty,
)
from .httpio import authenticate, json_response, list_response, query_bool, read_object, resolve_namespace
from .identities import Identity
from .state import Emulator, emulator_of
from .store import Store

routes = web.RouteTableDef()
BASE = "/api/v1/namespaces/{ns}/packages"


def _target(request: web.Request) -> tuple[Emulator, Identity, str, str]:
    emu = emulator_of(request)
    identity = authenticate(request, emu.identities)
    ns = resolve_namespace(request.match_info["ns"], identity)
    name = check_name(request.match_info["name"])
    return emu, identity, ns, name


def _parse_binding(value: object, identity: Identity) -> EntityRef | None:
    if value is None or value == {}:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("namespace"), str) \
            or not isinstance(value.get("name"), str):
        raise ApiError(400, malformed("'binding' must be {} or {\"namespace\", \"name\"}"))
    namespace = identity.namespace if value["namespace"] in ("_", "/_") else value["namespace"].strip("/")
    return EntityRef(check_name(namespace), check_name(value["name"]))


def _check_binding_target(store: Store, identity: Identity, target: EntityRef) -> None:
    """The referenced package must be readable, exist, and not be a binding itself."""
    try:
        check_package_read(store, identity, target.namespace, target.name)
    except ApiError as e:
        if e.status == 404:
            raise ApiError(400, BINDING_DOES_NOT_EXIST) from e
        if e.status == 409:
            raise ApiError(409, NOT_A_PACKAGE) from e
        raise
    pkg = store.get(target.docid, Package)
    if pkg is None:
        raise ApiError(400, BINDING_DOES_NOT_EXIST)
    if pkg.binding is not None:
        raise ApiError(400, BINDING_TO_BINDING)


def _binding_annotation(annotations: list[dict[str, Any]], binding: EntityRef | None) -> list[dict[str, Any]]:
    out = remove_keys(annotations, {"binding"})
    if binding is not None:
        out.append({"key": "binding", "value": {"namespace": binding.namespace, "name": binding.name}})
    return out


@routes.put(BASE + "/{name}")
async def put_package(request: web.Request) -> web.Response:
    emu, identity, ns, name = _target(request)
    require_owner(identity, ns, f"{ns}/{name}")
    if name == "default":
        raise ApiError(400, package_name_reserved(name))
    body = await read_object(request, emu.config.max_entity_bytes)
    binding = _parse_binding(body.get("binding"), identity)
    if binding is not None:
        _check_binding_target(emu.store, identity, binding)
    parameters = validate_params(body["parameters"], "parameters") if "parameters" in body else None
    annotations = validate_params(body["annotations"], "annotations") if "annotations" in body else None
    version = parse_version(body["version"]) if body.get("version") is not None else None
    publish = body.get("publish")
    if publish is not None and not isinstance(publish, bool):
        raise ApiError(400, malformed("'publish' must be a boolean"))
    existing = emu.store.get(f"{ns}/{name}", Package)
    if existing is not None:
        if not query_bool(request, "overwrite"):
            raise ApiError(409, ALREADY_EXISTS)
        if binding is not None and existing.binding is None:
            raise ApiError(409, PACKAGE_CANNOT_BECOME_BINDING)
        new_binding = binding or existing.binding
        pkg = Package(namespace=ns, name=name, version=version or bump_patch(existing.version),
                      publish=existing.publish if publish is None else publish,
                      parameters=existing.parameters if parameters is None else parameters,
                      annotations=_binding_annotation(existing.annotations if annotations is None else annotations,
                                                      new_binding),
                      binding=new_binding, updated=now_ms())
    else:
        pkg = Package(namespace=ns, name=name, version=version or "0.0.1", publish=bool(publish),
                      parameters=parameters or [], annotations=_binding_annotation(annotations or [], binding),
                      binding=binding)
    emu.store.put(pkg)
    return json_response(pkg.to_json())


def _with_actions(store: Store, shown: Package, holder: Package, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    out = shown.to_json()
    out["parameters"] = parameters
    actions, feeds = [], []
    for action in store.list(Action, holder.path):
        entry = {"name": action.name, "version": action.version, "annotations": action.annotations}
        (feeds if any(a["key"] == "feed" for a in action.annotations) else actions).append(entry)
    out["actions"] = actions
    out["feeds"] = feeds
    return out


@routes.get(BASE + "/{name}")
async def get_package(request: web.Request) -> web.Response:
    emu, identity, ns, name = _target(request)
    check_package_read(emu.store, identity, ns, name)
    pkg = emu.store.get(f"{ns}/{name}", Package)
    if pkg is None:
        raise ApiError(404, NOT_FOUND)
    if pkg.binding is None:
        return json_response(_with_actions(emu.store, pkg, pkg, pkg.parameters))
    target = emu.store.get(pkg.binding.docid, Package)
    if target is None:
        raise ApiError(404, NOT_FOUND)
    return json_response(_with_actions(emu.store, pkg, target, merge_params(target.parameters, pkg.parameters)))


@routes.delete(BASE + "/{name}")
async def delete_package(request: web.Request) -> web.Response:
    emu, identity, ns, name = _target(request)
    require_owner(identity, ns, f"{ns}/{name}")
    pkg = emu.store.get(f"{ns}/{name}", Package)
    if pkg is None:
        raise ApiError(404, NOT_FOUND)
    if pkg.binding is None:
        contents = emu.store.list(Action, pkg.path)
        if contents and not query_bool(request, "force"):
            raise ApiError(409, package_not_empty(len(contents)))
        for action in contents:
            emu.store.delete(action.docid)
    emu.store.delete(pkg.docid)
    return json_response(pkg.to_json())


@routes.get(BASE)
@routes.get(BASE + "/")
async def list_packages(request: web.Request) -> web.Response:
    emu = emulator_of(request)
    identity = authenticate(request, emu.identities)
    ns = resolve_namespace(request.match_info["ns"], identity)
    found = emu.store.list(Package, ns)
    if ns != identity.namespace:
        found = [p for p in found if p.publish and p.binding is None]
    return list_response(request, "packages", [p.summary() for p in found])
