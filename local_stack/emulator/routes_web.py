"""Web actions: `/api/v1/web/{ns}/{pkg|default}/{action}[.ext][/path]` (openwhisk-api.md section 8).

No key is needed (unless the action says `require-whisk-auth`); the action runs as its owner, on
the owner's throttles. The order is the controller's (WebActions.scala): `verifyWebAction` looks up
the owner and the exported action, then `checkEntitlement(owner, ACTIVATE)`, the throttle check,
which charges one invocation to the owner's per-minute count on every call; only then
`confirmAuthenticated` checks `require-whisk-auth` (401). So a refused anonymous call still counts
against the owner's limit (tests/security/test_tenants.py relies on that order).
Only actions annotated `web-export` are reachable. The result is rendered
by the extension: `.json` returns it as JSON, `.http` (the default) reads `statusCode`, `headers`
and `body` from it, `.text`/`.html`/`.svg` return one of its fields.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from .entities import defined_keys, get_param, has_param, is_truthy
from .errors import (
    ERROR_PROCESSING,
    INVALID_AUTH,
    NOT_FOUND,
    PARAMETERS_NOT_ALLOWED,
    PROPERTY_NOT_FOUND,
    RESPONSE_NOT_READY,
    ApiError,
    malformed,
)
from .httpio import dumps, json_response
from .invoker import resolve_action
from .routes_actions import ACTIVATION_HEADER, is_binary_code
from .state import Emulator, emulator_of

routes = web.RouteTableDef()
EXTENSIONS = (".http", ".json", ".html", ".svg", ".text")
RESERVED = {"__ow_method", "__ow_headers", "__ow_path", "__ow_user", "__ow_query", "__ow_body"}
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH",
    "Access-Control-Allow-Headers": "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent",
}


def _split_extension(segment: str) -> tuple[str, str]:
    for ext in EXTENSIONS:
        if segment.endswith(ext) and len(segment) > len(ext):
            return segment[: -len(ext)], ext
    return segment, ".http"


def _is_json_type(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


def _is_binary_type(content_type: str) -> bool:
    main = content_type.split("/", 1)[0]
    return main in ("image", "audio", "video") or content_type in (
        "application/octet-stream", "application/pdf", "application/zip", "application/gzip")


async def _body_args(request: web.Request, raw_http: bool) -> dict[str, Any]:
    """The request body as action arguments (merged fields, or boxed in __ow_body)."""
    data = await request.read()
    content_type = request.content_type
    if raw_http:
        args: dict[str, Any] = {"__ow_query": request.query_string}
        if not data:
            args["__ow_body"] = ""
        elif _is_binary_type(content_type) or content_type == "application/json":
            args["__ow_body"] = base64.b64encode(data).decode()
        else:
            args["__ow_body"] = data.decode("utf-8", "replace")
        return args
    if not data:
        return {}
    if _is_json_type(content_type):
        try:
            body = json.loads(data)
        except ValueError as e:
            raise ApiError(400, malformed(str(e))) from e
        return body if isinstance(body, dict) else {"__ow_body": body}
    if content_type == "application/x-www-form-urlencoded":
        return dict(parse_qsl(data.decode("utf-8", "replace")))
    if _is_binary_type(content_type):
        return {"__ow_body": base64.b64encode(data).decode()}
    return {"__ow_body": data.decode("utf-8", "replace")}


def _allowed(annotations: list[dict[str, Any]], request: web.Request, authenticated: bool) -> bool:
    if not has_param(annotations, "require-whisk-auth"):
        return True
    required = get_param(annotations, "require-whisk-auth")
    if isinstance(required, bool):
        return authenticated if required else True
    if isinstance(required, str | int | float):
        return request.headers.get("X-Require-Whisk-Auth") == str(required)
    return False


@routes.route("*", "/api/v1/web/{ns}/{pkg}/{rest:.+}")
async def web_action(request: web.Request) -> web.StreamResponse:
    emu = emulator_of(request)
    first, _, tail = request.match_info["rest"].partition("/")
    name, extension = _split_extension(first)
    ns = request.match_info["ns"]
    pkg = request.match_info["pkg"]
    owner = emu.identities.by_namespace(ns)
    if owner is None:
        raise ApiError(404, NOT_FOUND)
    resolved = resolve_action(emu.store, ns if pkg == "default" else f"{ns}/{pkg}", name)
    annotations = resolved.action.annotations
    if not is_truthy(annotations, "web-export"):
        raise ApiError(404, NOT_FOUND)
    emu.throttles.check_invoke(owner.namespace)  # charged before require-whisk-auth, as the controller does
    if request.method == "OPTIONS" and not is_truthy(annotations, "web-custom-options"):
        return web.Response(status=200, headers=CORS)
    header = request.headers.get("Authorization")
    caller = emu.identities.from_header(header) if header else None
    if not _allowed(annotations, request, caller is not None):
        raise ApiError(401, INVALID_AUTH)
    raw_http = is_truthy(annotations, "raw-http")
    query = {} if raw_http else dict(request.query)
    body = await _body_args(request, raw_http)
    if not raw_http:
        protected = RESERVED | (defined_keys(resolved.parameters) if is_truthy(annotations, "final") else set())
        if (set(query) | set(body)) & protected:
            raise ApiError(400, PARAMETERS_NOT_ALLOWED)
    content: dict[str, Any] = {
        "__ow_method": request.method.lower(),
        "__ow_headers": {k.lower(): v for k, v in request.headers.items()},
        "__ow_path": f"/{tail}" if tail else "",
    }
    if caller is not None:
        content["__ow_user"] = caller.namespace
    content.update(query)
    content.update(body)
    invocation = await emu.invoker.invoke(owner, resolved, content, emu.config.max_blocking_wait_ms)
    headers = {ACTIVATION_HEADER: invocation.activation_id}
    activation = invocation.activation
    if activation is None:
        raise ApiError(202, RESPONSE_NOT_READY, headers)
    if activation.status == "success":
        projection = activation.result
    elif activation.status == "application error":
        if not isinstance(activation.result, dict) or "error" not in activation.result:
            raise ApiError(404, PROPERTY_NOT_FOUND, headers)
        projection = activation.result["error"]
    else:
        raise ApiError(400, ERROR_PROCESSING, headers)
    response = _render(emu, extension, projection)
    response.headers.update(headers)
    response.headers.update(CORS)
    return response


def _render(emu: Emulator, extension: str, result: Any) -> web.Response:
    if extension == ".json":
        if isinstance(result, dict | list):
            return json_response(result)
        raise ApiError(400, "Response is not valid 'application/json'.")
    if extension == ".http":
        return _render_http(result)
    field = {".text": "text", ".html": "html", ".svg": "svg"}[extension]
    value = result.get("body", result.get(field)) if isinstance(result, dict) else result
    if extension == ".text":
        if value is None and isinstance(result, dict) and "body" not in result and field not in result:
            raise ApiError(404, PROPERTY_NOT_FOUND)
        text = value if isinstance(value, str) else dumps(value).decode()
        return web.Response(text=text, content_type="text/plain")
    media = "text/html" if extension == ".html" else "image/svg+xml"
    if not isinstance(value, str):
        raise ApiError(400, f"Response is not valid '{media}'.")
    return web.Response(text=value, content_type=media)


def _render_http(result: Any) -> web.Response:
    invalid = ApiError(400, "Response is not valid 'message/http'.")
    if not isinstance(result, dict):
        raise invalid
    raw_headers = result.get("headers", {})
    if not isinstance(raw_headers, dict):
        raise invalid
    headers: dict[str, str] = {}
    for key, value in raw_headers.items():
        if isinstance(value, bool):
            headers[key] = str(value).lower()
        elif isinstance(value, str | int | float):
            headers[key] = str(value)
        else:
            raise invalid
    try:
        code = int(result["statusCode"]) if "statusCode" in result else None
    except (TypeError, ValueError) as e:
        raise invalid from e
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    body = result.get("body")
    if body is None or body == "":
        return web.Response(status=code or 204, headers=headers)
    if not isinstance(body, str):
        return web.Response(status=code or 200, body=dumps(body), headers=headers,
                            content_type=content_type or "application/json")
    media = (content_type or "text/html").split(";")[0].strip().lower()
    if _is_binary_type(media) or (_is_json_type(media) and is_binary_code(body)):
        try:
            data = base64.b64decode(body, validate=True)
        except binascii.Error as e:
            raise ApiError(400, "Response type in header did not match generated content type.") from e
        return web.Response(status=code or 200, body=data, headers={**headers, "Content-Type": content_type or media})
    return web.Response(status=code or 200, body=body.encode(), headers={**headers, "Content-Type":
                                                                           content_type or "text/html; charset=UTF-8"})
