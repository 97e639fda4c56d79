"""Builds the aiohttp application: components, routes, and the one error-shaping middleware."""

from __future__ import annotations

import logging

from aiohttp import web

from local_stack.action_runtime.pool import ActionPool

from . import (
    routes_actions,
    routes_activations,
    routes_control,
    routes_faults,
    routes_meta,
    routes_packages,
    routes_rules,
    routes_triggers,
    routes_web,
)
from .config import EmulatorConfig
from .errors import ROUTE_NOT_FOUND, ApiError, api_error_response, entity_too_big, error_response, unauthorized
from .faults import FaultInjector
from .firelog import FireLog
from .identities import Identities, NamespaceSpec
from .invoker import Invoker
from .state import EMULATOR, Emulator
from .store import Store
from .throttles import Throttles

log = logging.getLogger(__name__)


def build_emulator(config: EmulatorConfig, specs: list[NamespaceSpec], pool: ActionPool | None = None) -> Emulator:
    store = Store(config.activations_per_namespace_max)
    throttles = Throttles(config.default_limits, {s.identity.namespace: s.limits for s in specs if s.limits})
    pool = pool or ActionPool(config.runtime_python, config.api_host, config.max_workers_per_action)
    return Emulator(config=config, identities=Identities([s.identity for s in specs]), store=store,
                    throttles=throttles, faults=FaultInjector(), fires=FireLog(config.fires_log_max),
                    invoker=Invoker(store, throttles, pool))


def _unmatched(request: web.Request, error: web.HTTPException) -> web.Response:
    """No route matched: the controller asks for credentials first under /api/v1, then says 404/405."""
    path = request.path
    if path.startswith("/api/v1/") and not path.startswith("/api/v1/web/"):
        header = request.headers.get("Authorization")
        if header is None or request.app[EMULATOR].identities.from_header(header) is None:
            return api_error_response(unauthorized(missing=header is None))
    if isinstance(error, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(error.allowed_methods))
        return error_response(405, f"HTTP method not allowed, supported methods: {allowed}")
    return error_response(404, ROUTE_NOT_FOUND)


@web.middleware
async def error_middleware(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return api_error_response(error)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as error:
        return _unmatched(request, error)
    except web.HTTPRequestEntityTooLarge:
        emu = request.app[EMULATOR]
        return error_response(413, entity_too_big(request.content_length or 0, emu.config.max_entity_bytes))
    except web.HTTPException as error:
        return error_response(error.status, error.reason)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, "There was an internal server error.")


def build_app(emulator: Emulator) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=emulator.config.max_entity_bytes + 1)
    app[EMULATOR] = emulator
    # the router tries resources in order: the fire path (triggers) goes first
    for module in (routes_triggers, routes_actions, routes_meta, routes_packages, routes_rules,
                   routes_activations, routes_web, routes_faults, routes_control):
        app.router.add_routes(module.routes)

    async def close_invoker(_app: web.Application) -> None:
        await emulator.invoker.close()

    app.on_cleanup.append(close_invoker)
    return app
