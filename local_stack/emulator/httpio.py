"""Request and response plumbing shared by the route modules: auth, namespaces, bodies, queries."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .entities import valid_name
from .errors import (
    ILLEGAL_NAMESPACE,
    JSON_CONTENT_TYPE,
    ApiError,
    entity_too_big,
    list_limit_out_of_range,
    list_skip_out_of_range,
    malformed,
    not_an_integer,
    unauthorized,
)
from .identities import Identities, Identity

MAX_LIST_LIMIT = 200
DEFAULT_LIST_LIMIT = 30
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    all_headers = {"Content-Type": JSON_CONTENT_TYPE}
    if headers:
        all_headers.update(headers)
    return web.Response(status=status, body=dumps(value), headers=all_headers)


def authenticate(request: web.Request, identities: Identities) -> Identity:
    header = request.headers.get("Authorization")
    if header is None:
        raise unauthorized(missing=True)
    identity = identities.from_header(header)
    if identity is None:
        raise unauthorized()
    return identity


def resolve_namespace(segment: str, identity: Identity) -> str:
    if segment == "_":
        return identity.namespace
    if not valid_name(segment):
        raise ApiError(400, ILLEGAL_NAMESPACE)
    return segment


def check_size(request: web.Request, allowed: int) -> None:
    length = request.content_length
    if length is not None and length > allowed:
        raise ApiError(413, entity_too_big(length, allowed))


async def read_json(request: web.Request, allowed: int | None = None) -> Any:
    """The parsed body; None when empty. 413 above `allowed` bytes, 400 when not JSON."""
    if allowed is not None:
        check_size(request, allowed)
    return parse_json(await request.read(), allowed)


def parse_json(raw: bytes, allowed: int | None = None) -> Any:
    """A body already read: None when empty, 413 above `allowed` bytes, 400 when not JSON."""
    if allowed is not None and len(raw) > allowed:
        raise ApiError(413, entity_too_big(len(raw), allowed))
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, malformed(str(e))) from e


async def read_object(request: web.Request, allowed: int | None = None) -> dict[str, Any]:
    body = await read_json(request, allowed)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, malformed("expected a JSON object"))
    return body


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    value = request.query.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ApiError(400, f"The query parameter '{name}' was malformed:\n'{value}' is not a valid Boolean value")


def list_window(request: web.Request, collection: str) -> tuple[int, int]:
    """(skip, limit) with the controller's defaults and range checks."""
    limit = DEFAULT_LIST_LIMIT
    skip = 0
    raw_limit = request.query.get("limit")
    if raw_limit is not None:
        limit = _int(raw_limit, collection)
        if limit == 0:
            limit = MAX_LIST_LIMIT
        elif not 0 < limit <= MAX_LIST_LIMIT:
            raise ApiError(400, list_limit_out_of_range(collection, limit, MAX_LIST_LIMIT))
    raw_skip = request.query.get("skip")
    if raw_skip is not None:
        skip = _int(raw_skip, collection)
        if skip < 0:
            raise ApiError(400, list_skip_out_of_range(collection, skip))
    return skip, limit


def _int(value: str, collection: str) -> int:
    try:
        return int(value)
    except ValueError as e:
        raise ApiError(400, not_an_integer(collection, value)) from e


def lowercase_headers(request: web.Request) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


def list_response(request: web.Request, collection: str, items: list[Any]) -> web.Response:
    """A collection listing with `skip`, `limit` and `count=true` applied; `items` are JSON values."""
    skip, limit = list_window(request, collection)
    if query_bool(request, "count"):
        return json_response({collection: max(0, len(items) - skip)})
    return json_response(items[skip:skip + limit])
