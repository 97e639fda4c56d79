"""Rules: PUT, GET, enable/disable (POST), DELETE, list (openwhisk-api.md section 6).

A rule's status lives in its trigger's `rules` map, as in the controller: a rule whose trigger is
gone reads as inactive.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .entities import (
    EntityRef,
    Rule,
    RuleLink,
    Trigger,
    bump_patch,
    check_name,
    now_ms,
    parse_ref,
    parse_version,
    validate_params,
)
from .entitlement import require_owner
from .errors import ALREADY_EXISTS, NOT_FOUND, RULE_NEEDS_TRIGGER, ApiError, malformed
from .httpio import authenticate, json_response, list_response, query_bool, read_object, resolve_namespace
from .identities import Identity
from .invoker import resolve_action
from .routes_actions import check_read_or_invoke
from .state import Emulator, emulator_of

routes = web.RouteTableDef()
BASE = "/api/v1/namespaces/{ns}/rules"
STATES = ("active", "inactive")


def _target(request: web.Request) -> tuple[Emulator, Identity, str, str]:
    emu = emulator_of(request)
    identity = authenticate(request, emu.identities)
    ns = resolve_namespace(request.match_info["ns"], identity)
    name = check_name(request.match_info["name"])
    require_owner(identity, ns, f"{ns}/{name}")
    return emu, identity, ns, name


def _status(emu: Emulator, rule: Rule) -> str:
    trigger = emu.store.get(rule.trigger.docid, Trigger)
    link = (trigger.rules or {}).get(rule.docid) if trigger else None
    return link.status if link else "inactive"


def _check_references(emu: Emulator, identity: Identity, trigger: EntityRef, action: EntityRef) -> Trigger:
    """READ entitlement on both references, then both must exist (400 naming the missing one)."""
    require_owner(identity, trigger.namespace, str(trigger))
    check_read_or_invoke(emu, identity, action.namespace, action.package, action.name)
    found = emu.store.get(trigger.docid, Trigger)
    if found is None:
        raise ApiError(400, f"trigger {trigger.with_slash} does not exist")
    try:
        resolve_action(emu.store, action.path, action.name)
    except ApiError as e:
        raise ApiError(400, f"action {action.with_slash} does not exist") from e
    return found


def _link(trigger: Trigger, rule_name: str, link: RuleLink) -> None:
    rules = dict(trigger.rules or {})
    rules[rule_name] = link
    trigger.rules = rules


def _unlink(trigger: Trigger, rule_name: str) -> None:
    rules = dict(trigger.rules or {})
    rules.pop(rule_name, None)
    trigger.rules = rules


@routes.put(BASE + "/{name}")
async def put_rule(request: web.Request) -> web.Response:
    emu, identity, ns, name = _target(request)
    body = await read_object(request, emu.config.max_entity_bytes)
    trigger_ref = parse_ref(body["trigger"], identity.namespace) if body.get("trigger") is not None else None
    action_ref = parse_ref(body["action"], identity.namespace) if body.get("action") is not None else None
    annotations = validate_params(body["annotations"], "annotations") if body.get("annotations") is not None \
        else None
    version = parse_version(body["version"]) if body.get("version") is not None else None
    rule_id = f"{ns}/{name}"
    existing = emu.store.get(rule_id, Rule)
    if existing is not None and not query_bool(request, "overwrite"):
        raise ApiError(409, ALREADY_EXISTS)
    if existing is None:
        if trigger_ref is None or action_ref is None:
            raise ApiError(400, "rule requires a valid trigger and a valid action")
        trigger = _check_references(emu, identity, trigger_ref, action_ref)
        rule = Rule(namespace=ns, name=name, trigger=trigger_ref, action=action_ref, version=version or "0.0.1",
                    publish=bool(body.get("publish", False)), annotations=annotations or [])
        status = "active"
    else:
        status = _status(emu, existing)
        new_trigger_ref = trigger_ref or existing.trigger
        new_action_ref = action_ref or existing.action
        trigger = _check_references(emu, identity, new_trigger_ref, new_action_ref)
        if new_trigger_ref != existing.trigger:
            old_trigger = emu.store.get(existing.trigger.docid, Trigger)
            if old_trigger is not None:
                _unlink(old_trigger, rule_id)
        rule = Rule(namespace=ns, name=name, trigger=new_trigger_ref, action=new_action_ref,
                    version=version or bump_patch(existing.version),
                    publish=existing.publish if body.get("publish") is None else bool(body["publish"]),
                    annotations=existing.annotations if annotations is None else annotations, updated=now_ms())
    _link(trigger, rule_id, RuleLink(rule.action, status))
    emu.store.put(rule)
    return json_response(rule.to_json(status))


@routes.get(BASE + "/{name}")
async def get_rule(request: web.Request) -> web.Response:
    emu, _identity, ns, name = _target(request)
    rule = emu.store.get(f"{ns}/{name}", Rule)
    if rule is None:
        raise ApiError(404, NOT_FOUND)
    return json_response(rule.to_json(_status(emu, rule)))


def _requested_state(body: dict[str, Any]) -> str:
    state = body.get("status")
    if not isinstance(state, str):
        raise ApiError(400, malformed("Object is missing required member 'status'"))
    if state not in STATES:
        raise ApiError(400, malformed(f"'{state}' is not a recognized rule state, must be one of "
                                      "['active', 'inactive']"))
    return state


@routes.post(BASE + "/{name}")
async def set_rule_state(request: web.Request) -> web.Response:
    emu, _identity, ns, name = _target(request)
    state = _requested_state(await read_object(request, emu.config.max_entity_bytes))
    rule = emu.store.get(f"{ns}/{name}", Rule)
    if rule is None:
        raise ApiError(404, NOT_FOUND)
    trigger = emu.store.get(rule.trigger.docid, Trigger)
    if trigger is None:
        raise ApiError(404, RULE_NEEDS_TRIGGER)
    _link(trigger, rule.docid, RuleLink(rule.action, state))
    emu.store.changed()
    return web.Response(status=200, text="OK")


@routes.delete(BASE + "/{name}")
async def delete_rule(request: web.Request) -> web.Response:
    emu, _identity, ns, name = _target(request)
    rule = emu.store.get(f"{ns}/{name}", Rule)
    if rule is None:
        raise ApiError(404, NOT_FOUND)
    trigger = emu.store.get(rule.trigger.docid, Trigger)
    if trigger is not None:
        _unlink(trigger, rule.docid)
    emu.store.delete(rule.docid)
    return json_response(rule.to_json("inactive"))


@routes.get(BASE)
@routes.get(BASE + "/")
async def list_rules(request: web.Request) -> web.Response:
    emu = emulator_of(request)
    identity = authenticate(request, emu.identities)
    ns = resolve_namespace(request.match_info["ns"], identity)
    require_owner(identity, ns, ns)
    return list_response(request, "rules", [r.to_json() for r in emu.store.list(Rule, ns)])
