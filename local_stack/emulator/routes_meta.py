"""Info and namespace endpoints: `GET /`, `GET /api/v1`, namespaces and limits (section 2)."""

from __future__ import annotations

from aiohttp import web

from .entitlement import require_owner
from .httpio import authenticate, json_response, resolve_namespace
from .state import emulator_of

routes = web.RouteTableDef()


@routes.get("/")
async def info(request: web.Request) -> web.Response:
    emu = emulator_of(request)
    limits = emu.throttles.defaults
    return json_response({
        "description": "OpenWhisk",
        "support": {"github": "https://github.com/apache/openwhisk/issues", "slack": "http://slack.openwhisk.org"},
        "api_paths": ["/api/v1"],
        "limits": {
            "actions_per_minute": limits.invocations_per_minute,
            "triggers_per_minute": limits.fires_per_minute,
            "concurrent_actions": limits.concurrent_invocations,
            "sequence_length": 50,
            "min_action_duration": 100,
            "max_action_duration": 300000,
            "min_action_memory": 134217728,
            "max_action_memory": 536870912,
            "min_action_logs": 0,
            "max_action_logs": 10485760,
        },
        "runtimes": {"python": [
            {"kind": kind, "image": f"openwhisk/action-python-v{kind.split(':')[1]}:emulated",
             "deprecated": False, "default": kind == emu.config.python_kind, "attached": True,
             "requireMain": False}
            for kind in emu.kinds]},
    })


@routes.get("/api/v1")
@routes.get("/api/v1/")
async def api_info(request: web.Request) -> web.Response:
    return json_response({"description": "OpenWhisk API", "api_version": "1.0.0", "api_version_path": "v1",
                          "build": "emulator", "buildno": "emulator",
                          "swagger_paths": {"ui": "/docs", "api-docs": "/api-docs"}})


@routes.get("/api/v1/namespaces")
@routes.get("/api/v1/namespaces/")
async def namespaces(request: web.Request) -> web.Response:
    identity = authenticate(request, emulator_of(request).identities)
    return json_response([identity.namespace])


@routes.get("/api/v1/namespaces/{ns}/limits")
async def namespace_limits(request: web.Request) -> web.Response:
    emu = emulator_of(request)
    identity = authenticate(request, emu.identities)
    ns = resolve_namespace(request.match_info["ns"], identity)
    require_owner(identity, ns, ns)
    limits = emu.throttles.limits_for(ns)
    return json_response({**limits.as_json(), "maxActionMemory": 536870912, "minActionMemory": 134217728,
                          "maxActionTimeout": 300000, "minActionTimeout": 100, "maxActionLogs": 10485760,
                          "minActionLogs": 0, "maxActionConcurrency": 1, "minActionConcurrency": 1,
                          "maxParameterSize": 1048576, "maxActionInstances": limits.concurrent_invocations})
