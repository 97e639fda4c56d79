"""What the private web actions share: parameter checks, the caller's key check against the
OpenWhisk API, and clients cached across warm activations.

The web actions are reached over the web-action URL (only the `messaging` forwarders know the
`require-whisk-auth` secret, and the controller checks it), so they trust nothing the caller says
about itself: the caller's `authKey` must be able to read the trigger (or list the namespace) it
asks for, which only the owner of that namespace can.

**Strict interface.** Each web action names the parameters it documents; anything else is refused
with a 400 naming it (`check_interface`): the operator's settings are bound on messagingWeb, and
the actions are `final`, so the controller refuses a caller's value for them; a setting that is
not bound (e.g. `kafka_client_id`) or any other name is the caller's, and is refused. The clients
kept warm across activations are keyed by those bound settings only, and the caches are bounded
(`MAX_CACHED`), the least recently used client closed.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from kafka import KafkaProducer

from actions.common import ActionError, time_left_s
from feed.errors import FeedError
from messaging_lib import envelope
from messaging_lib.credentials import Sealer
from messaging_lib.errors import BadMessage, ConfigError
from messaging_lib.kafka_config import KafkaSettings
from messaging_lib.topics import trigger_url

# The operator's settings, bound on messagingWeb by manifest.yaml (all of them, so all are final).
SETTINGS = frozenset({
    "sealing_keys", "kafka_bootstrap_servers", "kafka_security_protocol", "kafka_sasl_mechanism",
    "kafka_sasl_username", "kafka_sasl_password", "trigger_messages_topic", "subscriptions_topic",
    "dead_letter_topic", "topic_prefix_pattern", "max_payload_bytes", "produce_credential_ttl_s",
    "token_max_ttl_s", "external_kafka_bootstrap_servers", "subscriptions_api_url",
})
FORWARDED = frozenset({"authKey", "callerNamespace"})  # added by the public forwarders (actions/forward.py)
PLATFORM = frozenset({"__ow_method", "__ow_headers", "__ow_path", "__ow_user"})  # set by the controller only
MAX_CACHED = 4  # warm clients per kind: one deployment needs one; bounded whatever happens

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_session = requests.Session()
_producers: OrderedDict[KafkaSettings, KafkaProducer] = OrderedDict()
_sealers: OrderedDict[str, Sealer] = OrderedDict()


def respond(handler: Callable[[dict], dict], params: dict) -> dict:
    """Run a web action's handler and shape its HTTP answer (web actions are reached as `.http`:
    the result's statusCode and body are the response). ActionError is a kind of FeedError."""
    try:
        return {"statusCode": 200, "body": handler(params)}
    except FeedError as e:
        return {"statusCode": e.status, "body": {"error": str(e)}}


def check_interface(params: dict, documented: Collection[str], action: str) -> None:
    """400 naming every parameter that is not ``documented`` for ``action``, not an operator
    setting, not added by the forwarder and not the platform's."""
    unknown = sorted(set(params) - set(documented) - SETTINGS - FORWARDED - PLATFORM)
    if unknown:
        raise ActionError(f"unknown parameters: {', '.join(unknown)} ({action} accepts "
                          f"{', '.join(sorted(documented))})", 400)


def cached(cache: OrderedDict[K, V], key: K, make: Callable[[], V], close: Callable[[V], None]) -> V:
    """The value kept for ``key``, or a new one; beyond MAX_CACHED the least recently used is closed."""
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = cache[key] = make()
    while len(cache) > MAX_CACHED:
        _, oldest = cache.popitem(last=False)
        close(oldest)
    return value


def close_client(client: Any) -> None:
    """Close an evicted kafka-python client without waiting long (its activation has moved on)."""
    try:
        client.close(timeout=1)
    except TypeError:
        client.close()


def seconds(params: dict, name: str, default: int) -> int:
    """A bound whole number of seconds (an empty binding: ``default``)."""
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ActionError(f"the messaging service is misconfigured: {name} must be a whole number", 503) from None
    if number < 1:
        raise ActionError(f"the messaging service is misconfigured: {name} must be at least 1", 503)
    return number


@dataclass(frozen=True)
class Caller:
    api_key: str
    namespace: str  # the caller's namespace, as the platform reported it to the public action


def caller(params: dict) -> Caller:
    key = params.get("authKey")
    if not isinstance(key, str) or ":" not in key:
        raise ActionError("missing the caller's API key: call this through the public messaging package")
    return Caller(key, str(params.get("callerNamespace") or ""))


def trigger_param(params: dict, who: Caller, name: str = "trigger") -> tuple[str, str]:
    """`T`, `/_/T` or `/ns/T` -> (namespace, trigger); `_` and a missing namespace are the caller's."""
    raw = params.get(name)
    if raw is None or raw == "":
        raise ActionError(f"missing parameter '{name}': the trigger to fire, e.g. -p {name} myTrigger")
    if not isinstance(raw, str):
        raise ActionError(f"parameter '{name}' must be a string, got {type(raw).__name__}")
    try:
        namespace, trigger = envelope.parse_trigger_name(raw, who.namespace or None)
    except BadMessage as e:
        raise ActionError(f"parameter '{name}' is not a valid trigger name: {e.detail}") from None
    return namespace, trigger


def apihost() -> str:
    return os.environ["__OW_API_HOST"].rstrip("/")


def check_trigger_access(who: Caller, namespace: str, trigger: str) -> None:
    """GET the trigger with the caller's key: only its owner can."""
    status = _get(trigger_url(apihost(), namespace, trigger), who)
    if status == 200:
        return
    fqn = f"/{namespace}/{trigger}"
    raise ActionError({
        401: "The supplied authentication is invalid",
        403: f"you are not authorized for the trigger {fqn}",
        404: f"the trigger {fqn} does not exist; create it first (wsk trigger create {trigger})",
    }.get(status, f"could not check the trigger {fqn}: OpenWhisk answered {status}"),
        status if status in (401, 403, 404) else 502)


def check_namespace_access(who: Caller, namespace: str) -> None:
    """The key's namespace list must hold the namespace (for a whole-namespace credential)."""
    try:
        response = _session.get(f"{apihost()}/api/v1/namespaces", auth=_auth(who), timeout=time_left_s())
    except requests.RequestException as e:
        raise ActionError(f"OpenWhisk is unreachable: {type(e).__name__}", 502) from None
    if response.status_code == 401:
        raise ActionError("The supplied authentication is invalid", 401)
    if response.status_code != 200 or namespace not in (response.json() or []):
        raise ActionError(f"you are not authorized for the namespace {namespace}", 403)


def _get(url: str, who: Caller) -> int:
    try:
        return _session.get(url, auth=_auth(who), timeout=time_left_s()).status_code
    except requests.RequestException as e:
        raise ActionError(f"OpenWhisk is unreachable: {type(e).__name__}", 502) from None


def _auth(who: Caller) -> tuple[str, str]:
    user, _, password = who.api_key.partition(":")
    return user, password


def sealer(params: dict) -> Sealer:
    keys = params.get("sealing_keys")
    if not isinstance(keys, str) or not keys.strip():
        raise ActionError("the messaging service is not configured: sealing_keys is missing (ask the operator)",
                          503)
    return cached(_sealers, keys, lambda: Sealer([k.strip() for k in keys.split(",") if k.strip()]),
                  lambda _: None)


def kafka_settings(params: dict) -> KafkaSettings:
    """The service's Kafka settings, from the package binding."""
    try:
        return KafkaSettings.from_params(params)
    except ConfigError as e:
        raise ActionError(f"the messaging service is misconfigured: {e}", 503) from None


def producer(params: dict) -> KafkaProducer:
    """One producer per Kafka configuration (the bound settings), kept warm, at most MAX_CACHED."""
    settings = kafka_settings(params)
    return cached(_producers, settings, lambda: KafkaProducer(**settings.client_kwargs(), acks="all", linger_ms=0,
                                                              max_request_size=2 * 1024 * 1024), close_client)


def topic(params: dict, name: str, default: str) -> str:
    value = params.get(name) or default
    if not isinstance(value, str):
        raise ActionError(f"the messaging service is misconfigured: {name} must be a string", 503)
    return value
