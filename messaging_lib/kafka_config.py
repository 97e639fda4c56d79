"""Kafka client settings: one definition for the actions, the web actions and the consumer.

The consumer reads them from its environment (``KAFKA_BOOTSTRAP_SERVERS``, ...), the actions from
their parameters (the same names lower-cased: ``kafka_bootstrap_servers``, ...). Both routes go
through one validator, so a setting means the same thing everywhere, and a bad one is a
``ConfigError`` naming the variable as the user wrote it. An empty value counts as unset.

``_CLIENT_NAMES`` is the only place that knows kafka-python's keyword names and librdkafka's
property names (confluent-kafka: the router's reader and the producer); ``KafkaSettings.client_kwargs()``
and ``KafkaSettings.librdkafka_config()`` give the settings under them.
Nothing here reads the environment on import or touches the network; ``repr`` masks the password.

Rules: ``bootstrap_servers`` is required (comma-separated ``host[:port]``); SASL protocols need a
username and a password and default to the ``PLAIN`` mechanism; SASL and CA-file settings given
with a protocol that would ignore them are refused, since that is always a mistake.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from .errors import ConfigError

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
DEFAULT_SECURITY_PROTOCOL = "PLAINTEXT"
DEFAULT_SASL_MECHANISM = "PLAIN"
ENV_PREFIX = "KAFKA_"
PARAM_PREFIX = "kafka_"

KAFKA_PYTHON, LIBRDKAFKA = 0, 1
# The one table of the two clients' names for each setting but the bootstrap servers (whose
# value differs in form too): kafka-python's keyword, librdkafka's property.
_CLIENT_NAMES: dict[str, tuple[str, str]] = {
    "security_protocol": ("security_protocol", "security.protocol"),
    "sasl_mechanism": ("sasl_mechanism", "sasl.mechanism"),
    "sasl_username": ("sasl_plain_username", "sasl.username"),
    "sasl_password": ("sasl_plain_password", "sasl.password"),
    "ssl_cafile": ("ssl_cafile", "ssl.ca.location"),
    "client_id": ("client_id", "client.id"),
}

_SERVER_RE = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)(?::([0-9]{1,5}))?")

Namer = Callable[[str], str]


def _text(values: Mapping[str, object], field: str, name: Namer, *, strip: bool = False) -> str | None:
    value = values.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(name(field), "must be a string")
    if strip:
        value = value.strip()
    return value or None


def _servers(values: Mapping[str, object], name: Namer) -> tuple[str, ...]:
    raw = values.get("bootstrap_servers")
    if isinstance(raw, str):
        parts: list[object] = list(raw.split(","))
    elif isinstance(raw, list | tuple):
        parts = list(raw)
    elif raw is None:
        parts = []
    else:
        raise ConfigError(name("bootstrap_servers"), "must be a comma-separated list of host:port")
    if not all(isinstance(part, str) for part in parts):
        raise ConfigError(name("bootstrap_servers"), "must be a list of host:port strings")
    servers = tuple(part.strip() for part in parts if isinstance(part, str) and part.strip())
    if not servers:
        raise ConfigError(name("bootstrap_servers"), "is required: a comma-separated list of host:port")
    for server in servers:
        match = _SERVER_RE.fullmatch(server)
        if match is None or (match.group(1) is not None and not 1 <= int(match.group(1)) <= 65535):
            raise ConfigError(name("bootstrap_servers"), f"{server!r} is not host:port")
    return servers


def _normalized(values: Mapping[str, object], name: Namer) -> dict[str, Any]:
    """Validate raw setting values (keyed by field name) into ``KafkaSettings`` fields."""
    protocol = (_text(values, "security_protocol", name, strip=True) or DEFAULT_SECURITY_PROTOCOL).upper()
    if protocol not in SECURITY_PROTOCOLS:
        raise ConfigError(name("security_protocol"), f"must be one of {', '.join(SECURITY_PROTOCOLS)}")
    mechanism = _text(values, "sasl_mechanism", name, strip=True)
    username = _text(values, "sasl_username", name)
    password = _text(values, "sasl_password", name)
    cafile = _text(values, "ssl_cafile", name, strip=True)
    if protocol.startswith("SASL_"):
        mechanism = (mechanism or DEFAULT_SASL_MECHANISM).upper()
        if mechanism not in SASL_MECHANISMS:
            raise ConfigError(name("sasl_mechanism"), f"must be one of {', '.join(SASL_MECHANISMS)}")
        if username is None:
            raise ConfigError(name("sasl_username"), f"is required with {name('security_protocol')}={protocol}")
        if password is None:
            raise ConfigError(name("sasl_password"), f"is required with {name('security_protocol')}={protocol}")
    else:
        for field, value in (("sasl_mechanism", mechanism), ("sasl_username", username), ("sasl_password", password)):
            if value is not None:
                raise ConfigError(name(field), f"is set, but {name('security_protocol')}={protocol} does not use SASL")
    if cafile is not None and not protocol.endswith("SSL"):
        raise ConfigError(name("ssl_cafile"), f"is set, but {name('security_protocol')}={protocol} does not use TLS")
    return {
        "bootstrap_servers": _servers(values, name),
        "security_protocol": protocol,
        "sasl_mechanism": mechanism,
        "sasl_username": username,
        "sasl_password": password,
        "ssl_cafile": cafile,
        "client_id": _text(values, "client_id", name, strip=True),
    }


@dataclass(frozen=True)
class KafkaSettings:
    """How to reach and authenticate to the Kafka cluster. Validated and normalized when built."""

    bootstrap_servers: tuple[str, ...]
    security_protocol: str = DEFAULT_SECURITY_PROTOCOL
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    client_id: str | None = None

    def __post_init__(self) -> None:
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        for field, value in _normalized(current, str).items():
            object.__setattr__(self, field, value)

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        if shown["sasl_password"] is not None:
            shown["sasl_password"] = "***"
        return f"KafkaSettings({', '.join(f'{key}={value!r}' for key, value in shown.items())})"

    @classmethod
    def from_env(cls, env: Mapping[str, str], prefix: str = ENV_PREFIX) -> "KafkaSettings":
        """Read ``{prefix}BOOTSTRAP_SERVERS``, ``{prefix}SECURITY_PROTOCOL``, ... from ``env``."""
        return cls._from(lambda field: prefix + field.upper(), env)

    @classmethod
    def from_params(cls, params: Mapping[str, object]) -> "KafkaSettings":
        """Read ``kafka_bootstrap_servers``, ... from action parameters (servers may be a list)."""
        return cls._from(lambda field: PARAM_PREFIX + field, params)

    @classmethod
    def _from(cls, name: Namer, source: Mapping[str, object]) -> "KafkaSettings":
        values = {f.name: source.get(name(f.name)) for f in fields(cls)}
        return cls(**_normalized(values, name))

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's ``KafkaProducer``/``KafkaConsumer``/admin client."""
        return {"bootstrap_servers": list(self.bootstrap_servers), **self._named(KAFKA_PYTHON)}

    def librdkafka_config(self) -> dict[str, Any]:
        """The same settings as librdkafka properties (confluent-kafka's ``Consumer``/``Producer``).
        The CA file, when given, replaces the system store as kafka-python's ``ssl_cafile`` does;
        none: the system's CAs."""
        return {"bootstrap.servers": ",".join(self.bootstrap_servers), **self._named(LIBRDKAFKA)}

    def _named(self, client: int) -> dict[str, Any]:
        """The settings given (validation gives the SASL credentials only with a mechanism),
        under one client's names."""
        return {names[client]: getattr(self, setting) for setting, names in _CLIENT_NAMES.items()
                if getattr(self, setting) is not None}
