"""Glue between invoke requests and the action runtime: resolving, merging, running, recording.

Resolves an action through its package or binding and merges parameters (package < binding <
action), builds the `/init`+`/run` inputs for the action pool (the `__OW_*` values of
openwhisk-api.md section 11), tracks in-flight activations for the concurrency throttle, and turns
the pool's outcome into a stored activation record. Entitlement and throttle checks stay in the
route handlers, which must run them before anything is loaded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from local_stack.action_runtime.pool import ActionCode, ActionPool, RunRequest, RunResult

from .entities import Action, Activation, EntityRef, Package, Params, is_truthy, merge_params, now_ms
from .errors import NOT_FOUND, ApiError, new_tid
from .identities import Identity
from .store import Store
from .throttles import Throttles

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedAction:
    action: Action  # the stored action; its namespace is the real package path
    parameters: Params  # package < binding < action
    binding: str | None  # "ns/binding" when reached through a binding


@dataclass(frozen=True)
class Invocation:
    activation_id: str
    activation: Activation | None  # None when the caller did not wait or the wait ran out


def resolve_package(store: Store, namespace: str, name: str) -> tuple[Package, Package | None]:
    """(the package holding the actions, the binding used to reach it or None); 404 if missing."""
    pkg = store.get(f"{namespace}/{name}", Package)
    if pkg is None:
        raise ApiError(404, NOT_FOUND)
    if pkg.binding is None:
        return pkg, None
    target = store.get(pkg.binding.docid, Package)
    if target is None:
        raise ApiError(404, NOT_FOUND)
    return target, pkg


def resolve_action(store: Store, path: str, name: str) -> ResolvedAction:
    """The action at `path/name` (path `ns` or `ns/pkg`), with merged parameters; 404 if missing."""
    ref = EntityRef(path, name)
    if ref.package is None:
        action = store.get(ref.docid, Action)
        if action is None:
            raise ApiError(404, NOT_FOUND)
        return ResolvedAction(action, action.parameters, None)
    pkg, binding = resolve_package(store, ref.namespace, ref.package)
    action = store.get(f"{pkg.path}/{name}", Action)
    if action is None:
        raise ApiError(404, NOT_FOUND)
    inherited = merge_params(pkg.parameters, binding.parameters) if binding else pkg.parameters
    return ResolvedAction(action, merge_params(inherited, action.parameters),
                          binding.docid if binding else None)


def _stringify(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


class Invoker:
    def __init__(self, store: Store, throttles: Throttles, pool: ActionPool) -> None:
        self._store = store
        self._throttles = throttles
        self._pool = pool
        self._tasks: set[asyncio.Task[Activation]] = set()

    async def invoke(self, caller: Identity, resolved: ResolvedAction, payload: dict[str, Any] | list[Any],
                     wait_ms: int | None, cause: str | None = None) -> Invocation:
        """Starts an activation as `caller`; waits up to `wait_ms` for it when given (blocking)."""
        activation_id = uuid.uuid4().hex
        self._throttles.activation_started(caller.namespace)
        task = asyncio.create_task(self._run(caller, resolved, payload, activation_id, cause))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if wait_ms is None:
            return Invocation(activation_id, None)
        try:
            activation = await asyncio.wait_for(asyncio.shield(task), wait_ms / 1000)
        except TimeoutError:
            return Invocation(activation_id, None)
        return Invocation(activation_id, activation)

    async def _run(self, caller: Identity, resolved: ResolvedAction, payload: dict[str, Any] | list[Any],
                   activation_id: str, cause: str | None) -> Activation:
        action = resolved.action
        received_ms = now_ms()
        try:
            code, request = self._build(caller, resolved, payload, activation_id)
            try:
                result = await self._pool.run(code, request)
            except Exception as error:  # the pool failed, not the action: a whisk internal error
                log.exception("action pool failed for %s", action.docid)
                stamp = now_ms()
                result = RunResult("whisk internal error", {"error": f"action runtime failure: {error}"}, [],
                                   stamp, stamp, None)
        finally:
            self._throttles.activation_finished(caller.namespace)
        annotations: Params = [
            {"key": "path", "value": action.docid},
            {"key": "waitTime", "value": max(0, result.start_ms - received_ms)},
            {"key": "kind", "value": action.exec.kind},
            {"key": "timeout", "value": False},
            {"key": "limits", "value": action.limits},
        ]
        if result.init_ms is not None:
            annotations.append({"key": "initTime", "value": result.init_ms})
        if resolved.binding:
            annotations.append({"key": "binding", "value": resolved.binding})
        activation = Activation(
            namespace=caller.namespace, name=action.name, version=action.version, subject=caller.subject,
            activation_id=activation_id, start=result.start_ms, end=max(result.end_ms, result.start_ms),
            status=result.status, result=result.result, logs=list(result.logs), annotations=annotations,
            cause=cause)
        self._store.add_activation(activation)
        return activation

    def _build(self, caller: Identity, resolved: ResolvedAction, payload: dict[str, Any] | list[Any],
               activation_id: str) -> tuple[ActionCode, RunRequest]:
        action = resolved.action
        init_params = [p for p in resolved.parameters if p.get("init")]
        init_keys = {p["key"] for p in init_params}
        if isinstance(payload, list):
            params: dict[str, Any] | list[Any] = payload
        else:
            params = {p["key"]: p["value"] for p in resolved.parameters if p["key"] not in init_keys}
            params.update(payload)
        init_env = {p["key"]: _stringify(p["value"]) for p in init_params}
        timeout_ms = int(action.limits.get("timeout", 60000))
        fields = {
            "namespace": caller.namespace,
            "action_name": f"/{action.docid}",
            "action_version": action.version,
            "activation_id": activation_id,
            "transaction_id": new_tid(),
            "deadline": str(now_ms() + timeout_ms),
        }
        if is_truthy(action.annotations, "provide-api-key", default=True):
            fields["api_key"] = caller.auth
        key = f"/{action.docid}@{action.version}:{action.updated}"
        if init_env:
            key += "#" + uuid.uuid5(uuid.NAMESPACE_OID, json.dumps(init_env, sort_keys=True)).hex[:12]
        code = ActionCode(key=key, kind=action.exec.kind, code=action.exec.code, binary=action.exec.binary,
                          main=action.exec.main or "main")
        return code, RunRequest(params=params, activation=fields, init_env=init_env, timeout_ms=timeout_ms)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._pool.close()
