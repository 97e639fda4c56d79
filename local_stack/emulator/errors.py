"""Every error the emulator returns: the controller's exact messages, always as {"error", "code"}.

Handlers raise ApiError; the application's middleware turns it into the response. The `code` is
a transaction id (clients only need it to be a non-empty string, see openwhisk-api.md section 1.5).
"""

from __future__ import annotations

import itertools
import json
import os

from aiohttp import web

JSON_CONTENT_TYPE = "application/json; charset=UTF-8"
AUTH_CHALLENGE = {"WWW-Authenticate": 'Basic realm="OpenWhisk secure realm"'}

_tid_prefix = os.urandom(6).hex()
_tid_counter = itertools.count(1)

# pekko-http default messages, used by the controller when it terminates with a bare status code
STATUS_DEFAULT_MESSAGES = {
    400: "The request contains bad syntax or cannot be fulfilled.",
    401: "The supplied authentication is invalid",
    403: "The supplied authentication is not authorized to access this resource.",
    404: "The requested resource does not exist.",
    405: "The requested method is not allowed for this resource.",
    408: "The server timed out waiting for the request.",
    409: "Concurrent modification to resource detected.",
    413: "The request is larger than the server is willing or able to process.",
    429: "Too many requests.",
    500: "There was an internal server error.",
    502: "The server was acting as a gateway or proxy and received an invalid response from the upstream server.",
    503: "The server is currently unavailable (because it is overloaded or down for maintenance).",
    504: "The server was acting as a gateway or proxy and did not receive a timely response "
    "from the upstream server.",
}

INVALID_AUTH = "The supplied authentication is invalid"
MISSING_AUTH = "The resource requires authentication, which was not supplied with the request"
NOT_FOUND = "The requested resource does not exist."
ROUTE_NOT_FOUND = "The requested resource could not be found."
ALREADY_EXISTS = "resource already exists"
CONFLICT = "Concurrent modification to resource detected."
CONFORMANCE = "Resource by this name exists but is not in this collection."
ILLEGAL_NAME = "The name of the entity contains illegal characters."
ILLEGAL_NAMESPACE = "The namespace contains illegal characters."
ILLEGAL_ACTIVATION_ID = "The activation id is not valid."
PARAMETERS_NOT_ALLOWED = "Request defines parameters that are not allowed (e.g., reserved properties)."
BINDING_DOES_NOT_EXIST = "Binding references a package that does not exist."
BINDING_TO_BINDING = "Cannot bind to another package binding."
PACKAGE_CANNOT_BECOME_BINDING = "Resource is a package and cannot be converted into a binding."
NOT_A_PACKAGE = "Cannot bind to a resource that is not a package."
NOT_ALLOWED_ON_BINDING = "Operation not permitted on package binding."
FEED_NOT_VALID = "Feed name is not valid"
RULE_NEEDS_TRIGGER = "Only rules with existing triggers can be activated"
DOCS_WITH_COUNT = "The parameter 'docs' is not permitted with 'count'."
RESPONSE_NOT_READY = "Response not yet ready."
PROPERTY_NOT_FOUND = "Response does not include requested property."
ERROR_PROCESSING = "There was an error processing your request."


def new_tid() -> str:
    return f"{_tid_prefix}{next(_tid_counter):020d}"


def not_authorized(resource: str) -> str:
    return f"The supplied authentication is not authorized to access '{resource}'."


def too_many_requests(count: int, allowed: int) -> str:
    return f"Too many requests in the last minute (count: {count}, allowed: {allowed})."


def too_many_concurrent(count: int, allowed: int) -> str:
    return f"Too many concurrent requests in flight (count: {count}, allowed: {allowed})."


def entity_too_big(size: int, allowed: int) -> str:
    return f"Request larger than allowed: {size} > {allowed} bytes."


def package_name_reserved(name: str) -> str:
    return f"Package name '{name}' is reserved."


def package_not_empty(count: int) -> str:
    noun = "entity" if count == 1 else "entities"
    return f"Package not empty (contains {count} {noun}). Set force param or delete package contents."


def invalid_runtime(kind: str, kinds: list[str]) -> str:
    valid = "', '".join(kinds)
    return f"The specified runtime '{kind}' is not supported by this platform. Valid values are: '{valid}'."


def list_limit_out_of_range(collection: str, value: int, maximum: int) -> str:
    return f"The value '{value}' is not in the range of 0 to {maximum} for {collection}."


def list_skip_out_of_range(collection: str, value: int) -> str:
    return f"The value '{value}' is not greater than or equal to 0 for {collection}."


def not_an_integer(collection: str, value: str) -> str:
    return f"The value '{value}' is not an integer for {collection}."


def invalid_timeout(max_ms: int) -> str:
    return f"Timeout must be number of milliseconds up to {max_ms}."


def inactive_rule(rule: str, action: str) -> str:
    return f"Rule '{rule}' is inactive, action '{action}' was not activated."


def malformed(detail: str) -> str:
    return f"The request content was malformed:\n{detail}"


class ApiError(Exception):
    """A request the controller would refuse; `message` is the exact `error` text."""

    def __init__(self, status: int, message: str | None = None, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.message = message or STATUS_DEFAULT_MESSAGES.get(status, "Error")
        self.headers = headers or {}
        super().__init__(f"{status} {self.message}")


def unauthorized(missing: bool = False) -> ApiError:
    return ApiError(401, MISSING_AUTH if missing else INVALID_AUTH, AUTH_CHALLENGE)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps({"error": message, "code": new_tid()}, separators=(",", ":")).encode()
    all_headers = {"Content-Type": JSON_CONTENT_TYPE}
    if headers:
        all_headers.update(headers)
    return web.Response(status=status, body=body, headers=all_headers)


def api_error_response(error: ApiError) -> web.Response:
    return error_response(error.status, error.message, error.headers)
