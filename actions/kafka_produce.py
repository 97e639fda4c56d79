"""messaging/kafkaProduce: publish one raw message to the caller's own Kafka.

Parity with the Apache package's kafkaProduce and messageHubProduce (same parameters, same success
and error texts where those were right), without their defects: binary keys and values really are
sent as bytes, booleans accept "true" as well as true, a timeout names Kafka rather than "Message
Hub", and a producer is kept warm per connection setting instead of opening short-lived
connections for every message (the reason the old actions were deprecated).

The caller names their own brokers and credentials, so this action needs none of the operator's
secrets and no web action: it runs entirely in the caller's activation. Runs in the python:3.11
runtime (kafka-python 2.0.2); connection settings go through messaging_lib.kafka_config, like
everything else that talks to Kafka.

Parameters: brokers (array or comma-separated host:port; kafka_brokers_sasl is accepted as an
alias), topic, value, and optionally key, base64DecodeValue, base64DecodeKey, headers (an object
of strings), securityProtocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), saslMechanism (PLAIN,
SCRAM-SHA-256, SCRAM-SHA-512), user and password. With user and password but no
securityProtocol, SASL_SSL with PLAIN is used, as messageHubProduce did.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError, NoBrokersAvailable

from actions.common import ActionError, time_left_s
from feed.errors import FeedError, kafka_error
from feed.options import parse_bool
from messaging_lib.errors import ConfigError
from messaging_lib.kafka_config import KafkaSettings

REQUIRED = ("brokers", "topic", "value")
MAX_CACHED_PRODUCERS = 10
CONNECT_TIMEOUT_S = 10.0  # finding the brokers (and authenticating) on first use
METADATA_TIMEOUT_S = 10.0  # waiting for the topic's partitions: an unknown topic fails here
NO_DEADLINE_S = 59.0  # outside OpenWhisk (no __OW_DEADLINE): a minute minus the safety margin
# KafkaSettings field -> the parameter the caller wrote, for error messages
PARAMETER_OF = {"bootstrap_servers": "brokers", "security_protocol": "securityProtocol",
                "sasl_mechanism": "saslMechanism", "sasl_username": "user", "sasl_password": "password"}

_producers: OrderedDict[KafkaSettings, KafkaProducer] = OrderedDict()


def main(params: dict) -> dict:
    """The answer, or `{"error": text}` of what the caller did wrong or what went wrong."""
    try:
        return produce(params)
    except FeedError as e:
        return {"error": str(e)}


def produce(params: dict) -> dict:
    given = {"brokers": _brokers(params), "topic": params.get("topic"), "value": params.get("value")}
    missing = [name for name in REQUIRED if given[name] is None]
    if missing:
        raise ActionError(f"You must supply all of the following parameters: {', '.join(REQUIRED)} "
                          f"(missing: {', '.join(missing)})")
    topic = params["topic"]
    if not isinstance(topic, str) or not topic:
        raise ActionError("parameter 'topic' must be a non-empty string")
    value = _payload(params["value"], "value", _flag(params, "base64DecodeValue"))
    key = None if params.get("key") is None else _payload(params["key"], "key", _flag(params, "base64DecodeKey"))
    headers = _headers(params.get("headers"))
    settings = connection_settings(params)
    producer = _producer(settings)
    try:
        sent = producer.send(topic, value=value, key=key, headers=headers).get(timeout=time_left_s(NO_DEADLINE_S))
    except KafkaTimeoutError:
        _forget(settings)
        raise ActionError(f"Timed out communicating with Kafka: topic '{topic}' did not become available at "
                          f"{','.join(settings.bootstrap_servers)}. It probably does not exist (create it "
                          "first), or the brokers are overloaded.") from None
    except KafkaError as e:
        _forget(settings)
        raise kafka_error(e, "Kafka did not accept the message", detail=True) from None
    return {"success": True, "topic": sent.topic, "partition": sent.partition, "offset": sent.offset,
            "message": f"Successfully sent message to {sent.topic}:{sent.partition} at offset {sent.offset}"}


def _brokers(params: dict) -> object:
    value = params.get("brokers")
    return params.get("kafka_brokers_sasl") if value is None else value


def connection_settings(params: dict) -> KafkaSettings:
    """The caller's connection parameters as validated KafkaSettings (errors name the parameter)."""
    user, password = params.get("user"), params.get("password")
    protocol = params.get("securityProtocol")
    if protocol is None and (user is not None or password is not None):
        protocol = "SASL_SSL"  # messageHubProduce's only mode
    try:
        # the caller's values as given: KafkaSettings validates them (and names the bad one)
        given: dict[str, Any] = {"bootstrap_servers": _brokers(params), "security_protocol": protocol,
                                 "sasl_mechanism": params.get("saslMechanism"), "sasl_username": user,
                                 "sasl_password": password}
        return KafkaSettings(**given)
    except ConfigError as e:
        raise ActionError(_in_parameter_names(f"parameter '{e.variable}' {e.detail}")) from None


def _in_parameter_names(text: str) -> str:
    for field_name, parameter in PARAMETER_OF.items():
        text = text.replace(field_name, parameter)
    return text


def _flag(params: dict, name: str) -> bool:
    parsed = parse_bool(params.get(name, False))
    if parsed is None:
        raise ActionError(f"parameter '{name}' must be true or false")
    return parsed


def _payload(raw: Any, name: str, base64_encoded: bool) -> bytes:
    """Text as UTF-8; other JSON values as compact JSON; with base64 decoding, the exact bytes."""
    if base64_encoded:
        if not isinstance(raw, str):
            raise ActionError(f"{name} parameter is not Base64 encoded")
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise ActionError(f"{name} parameter is not Base64 encoded") from None
    if isinstance(raw, str):
        return raw.encode("utf-8")
    return json.dumps(raw, separators=(",", ":")).encode("utf-8")


def _headers(raw: Any) -> list[tuple[str, bytes]]:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise ActionError("parameter 'headers' must be an object of header names to string values")
    return [(str(name), (value if isinstance(value, str) else json.dumps(value)).encode("utf-8"))
            for name, value in raw.items()]


def _producer(settings: KafkaSettings) -> KafkaProducer:
    """The warm producer for these settings, or a new one (the least recently used is closed)."""
    if settings in _producers:
        _producers.move_to_end(settings)
        return _producers[settings]
    connect_s = min(CONNECT_TIMEOUT_S, time_left_s(NO_DEADLINE_S))
    with _auth_failures() as auth_failed:
        try:
            producer = KafkaProducer(**settings.client_kwargs(), acks="all", linger_ms=0,
                                     api_version_auto_timeout_ms=int(connect_s * 1000),
                                     max_block_ms=int(min(METADATA_TIMEOUT_S, time_left_s(NO_DEADLINE_S)) * 1000))
        except NoBrokersAvailable:
            if auth_failed.seen:
                raise ActionError(f"Authentication failed: the brokers closed the connection during SASL "
                                  f"{settings.sasl_mechanism} authentication; check user and password") from None
            raise ActionError("No brokers available. Check that your supplied brokers are correct and available: "
                              f"{','.join(settings.bootstrap_servers)} ({settings.security_protocol})") from None
        except KafkaError as e:
            raise kafka_error(e, "Could not connect to Kafka", detail=True) from None
    _producers[settings] = producer
    while len(_producers) > MAX_CACHED_PRODUCERS:
        _, oldest = _producers.popitem(last=False)
        oldest.close(timeout=1)
    return producer


def _forget(settings: KafkaSettings) -> None:
    """Drop a producer that failed, so the next activation connects afresh."""
    producer = _producers.pop(settings, None)
    if producer is not None:
        producer.close(timeout=0)


class _AuthFailureSeen(logging.Handler):
    """kafka-python reports a refused SASL login only as a log line of a connection in the
    authenticating state, and then as NoBrokersAvailable; this notices the log line."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen = False

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "<authenticating>" in text or "Authentication failed" in text:
            self.seen = True


@contextmanager
def _auth_failures() -> Iterator[_AuthFailureSeen]:
    handler = _AuthFailureSeen()
    logger = logging.getLogger("kafka.conn")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
