"""The consumer's settings: one frozen object, built once from flags and the environment.

12-factor: every setting is an environment variable (upper case, e.g. MAX_IN_FLIGHT) with a flag
of the same name (--max-in-flight); a flag wins over the environment, which wins over the
default. `python -m consumer --help` lists them all with their defaults. Secrets are masked in
repr, so logging the settings is safe.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any

from messaging_lib import topics
from messaging_lib.credentials import parse_key_list, parse_legacy_cutoff
from messaging_lib.errors import ConfigError
from messaging_lib.kafka_config import KafkaSettings

SECRET = {"secret": True}
EVENT_LOOPS = ("uvloop", "asyncio")


# kafka-python backs off reconnecting exponentially up to 30 s by default: after a broker outage of
# 15 s its next attempt could come 13 s after the broker was back (measured: fires resumed 12.4 s
# late). Capped at 1 s, a consumer is back within about a second, for one connection attempt a
# second per broker while it is down.
RECONNECT_BACKOFF_MAX_MS = 1000

@dataclass(frozen=True)
class Settings:
    roles: str = field(default="firer", metadata={"help": "comma-separated roles to run: firer, router"})
    openwhisk_apihost: str = field(default="http://127.0.0.1:3233",
                                   metadata={"help": "OpenWhisk API host for envelopes without owapihost"})
    openwhisk_apihost_allowlist: str = field(
        default="", metadata={"help": "comma-separated API hosts envelopes may name (default: OPENWHISK_APIHOST)"})
    sealing_keys: str = field(default="", metadata={"help": "comma-separated Fernet keys; the first seals, all open",
                                                    **SECRET})
    trigger_messages_topic: str = field(default=topics.TRIGGER_MESSAGES_TOPIC,
                                        metadata={"help": "topic of trigger messages (envelopes)"})
    dead_letter_topic: str = field(default=topics.DEAD_LETTER_TOPIC, metadata={"help": "dead-letter topic"})
    subscriptions_topic: str = field(default=topics.SUBSCRIPTIONS_TOPIC,
                                     metadata={"help": "compacted, one-partition topic of feed subscriptions"})
    firer_group: str = field(default="openwhisk-trigger-firer", metadata={"help": "consumer group of the firers"})
    router_group: str = field(default="openwhisk-trigger-router",
                              metadata={"help": "consumer group of the routers (reads the subscribed topics)"})
    router_max_in_flight: int = field(default=50_000,
                                      metadata={"help": "records routed but not acknowledged before pausing"})
    router_max_poll_records: int = field(default=2000, metadata={"help": "records the router takes per poll"})
    max_in_flight: int = field(default=2000, metadata={"help": "messages taken but not finished before pausing"})
    max_concurrent_fires: int = field(default=128, metadata={"help": "HTTP requests to OpenWhisk at once"})
    max_payload_bytes: int = field(default=900_000,
                                   metadata={"help": "largest fire payload: envelopes accepted, router batches built"})
    fire_timeout_s: float = field(default=30.0, metadata={"help": "timeout of one fire request"})
    retry_initial_backoff_s: float = field(default=0.2, metadata={"help": "first retry backoff"})
    retry_max_backoff_s: float = field(default=30.0, metadata={"help": "longest retry backoff"})
    retry_max_age_s: float = field(default=900.0, metadata={"help": "retry a message this long, then dead-letter"})
    commit_interval_s: float = field(
        default=0.1, metadata={"help": "the router: how often its finished offsets are committed (a crash "
                                       "repeats about one interval)"})
    firer_commit_interval_s: float = field(
        default=0.02, metadata={"help": "the firer: least time between two commits (one in flight, the next "
                                        "as soon as it is answered); a crash repeats about this plus a round "
                                        "trip of fires; 0: as fast as the broker answers"})
    shutdown_timeout_s: float = field(default=30.0, metadata={"help": "on SIGTERM, drain this long, then stop"})
    kafka_session_timeout_ms: int = field(
        default=10_000, metadata={"help": "a member silent this long is dead and its partitions move (takeover time)"})
    kafka_heartbeat_interval_ms: int = field(
        default=1_000, metadata={"help": "heartbeat period (at most a third of the session timeout)"})
    kafka_max_poll_interval_ms: int = field(
        default=300_000, metadata={"help": "longest wait for a rebalance (the rebalance timeout)"})
    kafka_request_timeout_ms: int = field(
        default=15_000, metadata={"help": "a Kafka request without answer this long fails and is retried"})
    consumer_instance_id: str = field(
        default="", metadata={"help": "static group membership (e.g. the pod name): a restart within the "
                                      "session timeout rebalances nothing; empty: dynamic membership"})
    http_port: int = field(default=8080, metadata={"help": "port of /healthz, /readyz and /metrics"})
    http_host: str = field(default="0.0.0.0", metadata={"help": "address of the health and metrics server"})
    log_level: str = field(default="INFO", metadata={"help": "DEBUG, INFO, WARNING or ERROR"})
    event_loop: str = field(
        default="uvloop", metadata={"help": "uvloop (less CPU per fire; asyncio's own loop where uvloop is not "
                                            "installed) or asyncio"})
    kafka: KafkaSettings = field(default_factory=lambda: KafkaSettings(bootstrap_servers=("127.0.0.1:9092",)),
                                 metadata={"help": "from KAFKA_* variables, see below"})
    topic_prefix_pattern: str = field(
        default="", metadata={"help": "topic policy's prefix rule, e.g. '{namespace}.' (namespace ns reads ns.*); "
                                      "empty: off, explicit grants only (feed.grants)"})
    legacy_credentials_until: str = field(
        default="", metadata={"help": "ISO 8601 time from which credentials sealed without an expiry are refused "
                                      "(empty: accepted)"})

    def __post_init__(self) -> None:
        if not self.role_set or not self.role_set <= {"firer", "router"}:
            raise ConfigError("ROLES", f"must name firer and/or router, got {self.roles!r}")
        # required by both roles (the firer opens credentials, the router re-seals them), each a Fernet key
        parse_key_list(self.sealing_keys, "SEALING_KEYS")
        parse_legacy_cutoff(self.legacy_credentials_until, "LEGACY_CREDENTIALS_UNTIL")
        for name in ("max_in_flight", "max_concurrent_fires", "max_payload_bytes", "router_max_in_flight",
                     "router_max_poll_records", "kafka_session_timeout_ms", "kafka_heartbeat_interval_ms",
                     "kafka_max_poll_interval_ms", "kafka_request_timeout_ms"):
            if getattr(self, name) <= 0:
                raise ConfigError(name.upper(), "must be positive")
        if self.event_loop not in EVENT_LOOPS:
            raise ConfigError("EVENT_LOOP", f"must be one of {', '.join(EVENT_LOOPS)}, got {self.event_loop!r}")
        if self.firer_commit_interval_s < 0:
            raise ConfigError("FIRER_COMMIT_INTERVAL_S", "must not be negative")
        if self.kafka_heartbeat_interval_ms * 3 > self.kafka_session_timeout_ms:
            raise ConfigError("KAFKA_HEARTBEAT_INTERVAL_MS", "must be at most a third of KAFKA_SESSION_TIMEOUT_MS")

    @property
    def role_set(self) -> set[str]:
        return {r.strip() for r in self.roles.split(",") if r.strip()}

    @cached_property
    def allowed_apihosts(self) -> frozenset[str]:
        """Parsed once (the firer checks every message against it)."""
        listed = [h.strip().rstrip("/") for h in self.openwhisk_apihost_allowlist.split(",") if h.strip()]
        return frozenset(listed or [self.openwhisk_apihost.rstrip("/")])

    def membership(self, role: str) -> dict[str, object]:
        """kafka-python's group settings for one role's consumer. The instance id gets the role
        as suffix: the firer and the router of one pod are two members of two groups."""
        config: dict[str, object] = {
            "session_timeout_ms": self.kafka_session_timeout_ms,
            "heartbeat_interval_ms": self.kafka_heartbeat_interval_ms,
            "max_poll_interval_ms": self.kafka_max_poll_interval_ms,
            "request_timeout_ms": self.kafka_request_timeout_ms,
            "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
        }
        if self.consumer_instance_id:
            config["group_instance_id"] = f"{self.consumer_instance_id}-{role}"
        return config

    @property
    def sealing_key_list(self) -> list[str]:
        return parse_key_list(self.sealing_keys, "SEALING_KEYS")

    def __repr__(self) -> str:
        def show(f: dataclasses.Field) -> str:
            value = getattr(self, f.name)
            return "***" if f.metadata.get("secret") and value else repr(value)
        shown = ", ".join(f"{f.name}={show(f)}" for f in fields(self))
        return f"Settings({shown})"


def _plain_fields() -> list[dataclasses.Field]:
    return [f for f in fields(Settings) if f.name != "kafka"]


def _env_name(f: dataclasses.Field) -> str:
    return f.name.upper()


def _flag(f: dataclasses.Field) -> str:
    return "--" + f.name.replace("_", "-")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m consumer",
        description="Stateless OpenWhisk trigger consumer. Every flag is also an environment variable.",
        epilog="Kafka: KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:9092), KAFKA_SECURITY_PROTOCOL, "
               "KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_SSL_CAFILE, KAFKA_CLIENT_ID.",
    )
    for f in _plain_fields():
        shown = "(secret)" if f.metadata.get("secret") else repr(f.default)
        p.add_argument(_flag(f), dest=f.name, default=None, metavar=_env_name(f),
                       help=f"{f.metadata['help']} [env {_env_name(f)}, default {shown}]")
    return p


def load(argv: Sequence[str] | None, env: Mapping[str, str]) -> Settings:
    """Flags over environment over defaults; any bad value is a ConfigError naming it."""
    args = vars(parser().parse_args(argv))
    values: dict[str, Any] = {}  # each checked by Settings itself
    for f in _plain_fields():
        raw = args.get(f.name)
        if raw is None:
            raw = env.get(_env_name(f))
        if raw is None:
            continue
        try:
            convert: Callable[[str], object] = type(f.default)  # str, int, float: the default's type parses
            values[f.name] = convert(raw)
        except ValueError:
            raise ConfigError(_env_name(f), f"must be a {type(f.default).__name__}") from None
    own = {_env_name(f) for f in _plain_fields()}
    kafka_env = {k: v for k, v in env.items() if k.startswith("KAFKA_") and k not in own}
    if kafka_env:
        values["kafka"] = KafkaSettings.from_env(kafka_env)
    return Settings(**values)
