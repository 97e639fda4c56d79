"""Who may subscribe to which topic: the operator's topic policy (DESIGN.md section 6), and its command.

The service is shared by every namespace, so a trigger may only be subscribed to a topic the
operator granted to its namespace. Two sources grant, and nothing else does:

* the **prefix rule** (off by default): the pattern ``topic_prefix_pattern``, e.g. ``{namespace}.``,
  lets namespace ``ns`` read every topic named ``ns.*``;
* **explicit grants**, kept as records of the compacted subscriptions topic (so the service stays
  stateless) under their own key prefix::

      grant:<ns>:<topic>     namespace ns may read that one topic
      grant:<ns>:<prefix>*   namespace ns may read every topic whose name starts with <prefix>

  (``*`` cannot occur in a Kafka topic name, so the two kinds never collide); a tombstone revokes.
  Values are compact JSON with a format version, like every record of that topic (feed.records).

Whatever the policy says, the service's own topics (trigger messages, subscriptions, dead
letters: their configured names) and every ``__*`` topic (Kafka's internal ones) are never
subscribable: reading them would hand a tenant every other tenant's envelopes and credentials,
or crash the consumer group.

``refusal`` is the one decision, pure: the feed's CREATE and UPDATE answer its text (403), READ
shows a subscription it refuses as disabled, and the router calls it (through ``still_allowed``)
on every subscription record it reads and again when a grant is revoked.

The operator's command (``./deploy.sh grant ...`` runs it)::

    python -m feed.grants add    --namespace NS --topic T [--prefix]
    python -m feed.grants revoke --namespace NS --topic T [--prefix]
    python -m feed.grants list   [--namespace NS]

It writes with the deployment's Kafka settings: the environment (``KAFKA_*``,
``SUBSCRIPTIONS_TOPIC``, ...) first, then the settings deploy.sh kept in ``--state-dir``
(default ``$MESSAGING_STATE_DIR``; else, when the environment names no brokers, ``.cache/local``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from feed.options import record_int
from messaging_lib import topics
from messaging_lib.envelope import check_namespace
from messaging_lib.errors import BadMessage, ConfigError, RecordError

GRANT_PREFIX = "grant:"
PREFIX_MARK = "*"
FORMAT_VERSION = 1
NAMESPACE_PLACEHOLDER = "{namespace}"
# A legal Kafka topic name (kafka.common.internals.Topic): 1-249 of [a-zA-Z0-9._-].
_TOPIC_RE = re.compile(r"[A-Za-z0-9._-]{1,249}")
_PREFIX_RE = re.compile(r"[A-Za-z0-9._-]{0,249}")
# The action parameters (bound on messagingWeb) and environment variables the policy is read from.
PATTERN_PARAM = "topic_prefix_pattern"
SERVICE_TOPIC_PARAMS = {"trigger_messages_topic": topics.TRIGGER_MESSAGES_TOPIC,
                        "subscriptions_topic": topics.SUBSCRIPTIONS_TOPIC,
                        "dead_letter_topic": topics.DEAD_LETTER_TOPIC}
GRANT_COMMAND = "./deploy.sh grant add --namespace {namespace} --topic {topic}"
REVOKED = "Disabled: no grant covers this subscription's topic any more."


# --- grants and their records -------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """Namespace ``namespace`` may read ``topic`` (or, with ``prefix``, every topic starting with it)."""

    namespace: str
    topic: str
    prefix: bool = False

    def __post_init__(self) -> None:
        try:
            check_namespace(self.namespace)
        except BadMessage as e:
            raise RecordError(f"grant: {e.detail}") from None
        pattern = _PREFIX_RE if self.prefix else _TOPIC_RE
        if not isinstance(self.topic, str) or not pattern.fullmatch(self.topic):
            raise RecordError(f"grant: {self.topic!r} is not a Kafka topic name{' prefix' if self.prefix else ''}")

    def covers(self, namespace: str, topic: str) -> bool:
        if namespace != self.namespace:
            return False
        return topic.startswith(self.topic) if self.prefix else topic == self.topic

    @property
    def key(self) -> bytes:
        return grant_key(self.namespace, self.topic, self.prefix)

    def __str__(self) -> str:
        return f"{self.namespace}\t{self.topic}{PREFIX_MARK if self.prefix else ''}"


def grant_key(namespace: str, topic: str, prefix: bool = False) -> bytes:
    return f"{GRANT_PREFIX}{namespace}:{topic}{PREFIX_MARK if prefix else ''}".encode()


def namespace_key_prefix(namespace: str | None = None) -> bytes:
    """The key prefix of every grant (of one namespace, given one)."""
    return (GRANT_PREFIX + ("" if namespace is None else f"{namespace}:")).encode()


def is_grant_key(key: bytes | None) -> bool:
    return key is not None and key.startswith(GRANT_PREFIX.encode())


def parse_grant_key(key: bytes | None) -> Grant:
    """The grant a ``grant:`` key names. ``RecordError`` for anything else."""
    try:
        text = (key or b"").decode("utf-8")
    except UnicodeDecodeError:
        raise RecordError("a grant key is not UTF-8") from None
    if not text.startswith(GRANT_PREFIX) or ":" not in text[len(GRANT_PREFIX):]:
        raise RecordError("not a grant:<namespace>:<topic> key")
    namespace, _, topic = text[len(GRANT_PREFIX):].partition(":")
    prefix = topic.endswith(PREFIX_MARK)
    return Grant(namespace, topic[:-1] if prefix else topic, prefix)


def encode_grant(grant: Grant, added_ms: int) -> bytes:
    value = {"v": FORMAT_VERSION, "namespace": grant.namespace, "topic": grant.topic, "prefix": grant.prefix,
             "added_ms": added_ms}
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def decode_grant(key: bytes | None, value: bytes) -> Grant:
    """The grant of a ``grant:`` record; its value must agree with its key. Raises only ``RecordError``."""
    grant = parse_grant_key(key)
    try:
        content = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise RecordError("the grant value is not UTF-8 JSON") from None
    if not isinstance(content, dict) or content.get("v") != FORMAT_VERSION:
        raise RecordError("the grant value is not a version 1 grant")
    record_int(content.get("added_ms"), "added_ms")
    if (content.get("namespace"), content.get("topic"), content.get("prefix")) != (
            grant.namespace, grant.topic, grant.prefix):
        raise RecordError("the grant value does not match its key")
    return grant


def grants_from(found: Mapping[bytes, tuple[int, bytes | None]]) -> list[Grant]:
    """The live grants among the latest records of ``grant:`` keys (tombstones and bad records skipped)."""
    live = []
    for key, (_, value) in found.items():
        if value is None or not is_grant_key(key):
            continue
        try:
            live.append(decode_grant(key, value))
        except RecordError:
            continue  # a malformed record grants nothing
    return live


# --- the policy ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopicPolicy:
    """The operator's policy. ``prefix_pattern`` None: the prefix rule is off (the default)."""

    service_topics: frozenset[str] = field(default_factory=lambda: frozenset(SERVICE_TOPIC_PARAMS.values()))
    prefix_pattern: str | None = None

    @classmethod
    def from_settings(cls, values: Mapping[str, object]) -> TopicPolicy:
        """From the web action's bound parameters (or lower-cased settings): ``topic_prefix_pattern``
        and the three service topic names; an empty value is unset (wskdeploy binds unset as '')."""
        named = {_setting(values, name) or default for name, default in SERVICE_TOPIC_PARAMS.items()}
        pattern = _setting(values, PATTERN_PARAM)
        if pattern is not None and NAMESPACE_PLACEHOLDER not in pattern:
            raise ConfigError(PATTERN_PARAM, f"must contain {NAMESPACE_PLACEHOLDER}, e.g. {{namespace}}.")
        return cls(frozenset(named), pattern)

    def prefix_of(self, namespace: str) -> str | None:
        """The topic prefix the prefix rule gives ``namespace`` (None when the rule is off)."""
        return None if self.prefix_pattern is None else self.prefix_pattern.replace(NAMESPACE_PLACEHOLDER, namespace)

    def never_subscribable(self, topic: str) -> str | None:
        """Why ``topic`` can never be subscribed to, or None."""
        if topic.startswith("__"):
            return (f"The topic {topic} cannot be subscribed to: topics whose names start with __ are Kafka's "
                    "internal topics.")
        if topic in self.service_topics:
            return f"The topic {topic} cannot be subscribed to: it is one of the messaging service's own topics."
        return None


def refusal(policy: TopicPolicy, namespace: str, topic: str, grants: Iterable[Grant]) -> str | None:
    """None when ``namespace`` may subscribe to ``topic``; else why not (the exact text answered)."""
    never = policy.never_subscribable(topic)
    if never is not None:
        return never
    own = policy.prefix_of(namespace)
    if own is not None and topic.startswith(own):
        return None
    if any(grant.covers(namespace, topic) for grant in grants):
        return None
    return not_granted(policy, namespace, topic)


def not_granted(policy: TopicPolicy, namespace: str, topic: str) -> str:
    text = (f"The topic {topic} is not granted to the namespace {namespace}. Ask the operator of the messaging "
            f"service for a grant ({GRANT_COMMAND.format(namespace=namespace, topic=topic)})")
    own = policy.prefix_of(namespace)
    return f"{text}, or use a topic whose name starts with {own}" if own else f"{text}."


def still_allowed(policy: TopicPolicy, trigger_fqn: str, topic: str, grants: Iterable[Grant]) -> str | None:
    """For the router: None while the subscription of ``trigger_fqn`` to ``topic`` is allowed, else
    the reason to disable it with (a revoked grant, a service or internal topic, a bad trigger name)."""
    namespace = trigger_fqn.strip("/").split("/")[0] if trigger_fqn.count("/") == 2 else ""
    try:
        check_namespace(namespace)
    except BadMessage as e:
        return f"The subscription's trigger {trigger_fqn!r} is not valid: {e.detail}"
    if policy.never_subscribable(topic) is not None:
        return policy.never_subscribable(topic)
    reason = refusal(policy, namespace, topic, grants)
    return None if reason is None else f"{REVOKED} {reason}"


def _setting(values: Mapping[str, object], name: str) -> str | None:
    value = values.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(name, "must be a string")
    return value.strip() or None


if __name__ == "__main__":  # the operator's command: its Kafka side lives in feed.grant_command
    import sys

    from feed.grant_command import main

    sys.exit(main(sys.argv[1:]))
