"""The Kafka topics of a deployment: their specs, and creating, checking and deleting them.

An existing topic is never changed: it is checked against its spec and a topic that breaks the
contract (the subscriptions topic must be compacted with exactly one partition, the shape shared
with the router in messaging_lib.topics) is refused with the command that fixes it. Kafka settings
come from the consumer's own KAFKA_* variables (messaging_lib.kafka_config); every failure is one
DeployError sentence, a refused SASL login told apart from an unreachable cluster.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError, UnknownTopicOrPartitionError

from deploy.errors import DeployError, until
from messaging_lib import topics
from messaging_lib.errors import ConfigError
from messaging_lib.kafka_config import KafkaSettings

DAY_MS = 24 * 3600 * 1000
HOUR_MS = 3600 * 1000
CONNECT_TIMEOUT_MS = 10_000
DELETE_TIMEOUT_S = 30


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]
    required: dict[str, str]  # settings the system is wrong without (checked on existing topics)
    purpose: str
    exact_partitions: bool = False  # the count is part of the contract, not a capacity


def topic_specs(*, trigger_messages_topic: str, subscriptions_topic: str, dead_letter_topic: str,
                partitions: int, retention_hours: int, dead_letter_partitions: int,
                dead_letter_retention_days: int, dead_letter_max_message_bytes: int) -> list[TopicSpec]:
    """The four topics of a deployment, in the order they are created. The park topic has as many
    partitions as the trigger-messages topic (the firer that owns partition p reads park partition p)."""
    return [
        TopicSpec(trigger_messages_topic, partitions,
                  {"cleanup.policy": "delete", "retention.ms": str(retention_hours * HOUR_MS)}, {},
                  "trigger messages (envelopes) for the firers"),
        TopicSpec(topics.parked_topic(trigger_messages_topic), partitions,
                  {"cleanup.policy": "delete", "retention.ms": str(retention_hours * HOUR_MS)}, {},
                  "trigger messages parked by the firers while their namespace is throttled (consumer/parking.py)"),
        TopicSpec(subscriptions_topic, topics.SUBSCRIPTIONS_TOPIC_PARTITIONS,
                  topics.SUBSCRIPTIONS_TOPIC_CONFIG, {"cleanup.policy": "compact"},
                  "feed subscriptions, compacted, one partition for one order: the routers' only state",
                  exact_partitions=True),
        TopicSpec(dead_letter_topic, dead_letter_partitions,
                  {"cleanup.policy": "delete", "retention.ms": str(dead_letter_retention_days * DAY_MS),
                   "max.message.bytes": str(dead_letter_max_message_bytes)}, {},
                  "dead letters, kept for inspection and replay"),
    ]


def contract_problem(spec: TopicSpec, partitions: int, config: dict[str, str]) -> str | None:
    """Why an existing topic with this partition count and config breaks its spec, with the fix;
    None if it does not. A required value matches one item of a comma list ('compact,delete')."""
    if spec.exact_partitions and partitions != spec.partitions:
        return (f"topic {spec.name} has {partitions} partitions but must have exactly {spec.partitions}: delete it "
                "(its subscriptions go with it) and deploy again")
    wrong = {k: v for k, v in spec.required.items() if v not in config.get(k, "").split(",")}
    if not wrong:
        return None
    return (f"topic {spec.name} exists but has "
            + ", ".join(f"{k}={config.get(k)!r} (needs {v})" for k, v in wrong.items())
            + f"; fix it: kafka-configs.sh --alter --entity-type topics --entity-name {spec.name} "
            + " ".join(f"--add-config {k}={v}" for k, v in wrong.items()))


def existing_note(spec: TopicSpec, partitions: int) -> str:
    """The line said about an existing topic that keeps its spec (fewer partitions are only noted)."""
    note = "" if partitions >= spec.partitions else (
        f"; note: {partitions} partitions, fewer than the {spec.partitions} asked for (not changed: adding "
        "partitions moves keys, so do it with kafka-topics.sh --alter when the consumers are idle)")
    return f"topic {spec.name} exists ({partitions} partitions), left as it is{note}"


class _KafkaLog(logging.Handler):
    """Keeps kafka-python's log lines (instead of printing them): a refused SASL login shows only
    there, the exception being a plain 'cannot bootstrap'."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def login_refused(self) -> bool:
        return any("Authentication failed" in line or "SaslAuthenticationFailed" in line for line in self.lines)


def _connect_failure(settings: KafkaSettings, error: KafkaError, kafka_log: _KafkaLog) -> DeployError:
    """The sentence for an admin client that could not connect: a refused login if the log says so."""
    servers = ",".join(settings.bootstrap_servers)
    if kafka_log.login_refused():
        return DeployError(f"Kafka at {servers} refused the SASL login of '{settings.sasl_username}' "
                           f"({settings.sasl_mechanism}): check --kafka-sasl-username and the password "
                           "(KAFKA_SASL_PASSWORD)")
    hint = (f", the SASL user (--kafka-sasl-username {settings.sasl_username}) and the password "
            "(KAFKA_SASL_PASSWORD)" if settings.sasl_mechanism else "")
    return DeployError(f"Kafka at {servers} is unreachable ({settings.security_protocol}, "
                       f"{type(error).__name__}): check --kafka-bootstrap (KAFKA_BOOTSTRAP_SERVERS){hint}, and that "
                       "the brokers are running")


def _connect(settings: KafkaSettings) -> KafkaAdminClient:
    """An admin client, within 10 s; the log lines of a failure are kept for the error message."""
    connect_timeout = ("bootstrap_timeout_ms" if "bootstrap_timeout_ms" in KafkaAdminClient.DEFAULT_CONFIG
                       else "api_version_auto_timeout_ms")  # kafka-python 3, else 2
    kafka_log, logger = _KafkaLog(), logging.getLogger("kafka")
    logger.addHandler(kafka_log)
    logger.propagate = False
    try:
        return KafkaAdminClient(**settings.client_kwargs(), client_id="openwhisk-messaging-deploy",
                                request_timeout_ms=30_000, **{connect_timeout: CONNECT_TIMEOUT_MS})
    except KafkaError as e:
        raise _connect_failure(settings, e, kafka_log) from None
    finally:
        logger.removeHandler(kafka_log)


@contextlib.contextmanager
def kafka_admin() -> Iterator[KafkaAdminClient]:
    """An admin client for the cluster of the KAFKA_* settings, closed after; a Kafka error inside
    the block becomes one DeployError sentence."""
    try:
        settings = KafkaSettings.from_env(os.environ)
    except ConfigError as e:
        raise DeployError(f"Kafka settings: {e}") from None
    servers = ",".join(settings.bootstrap_servers)
    admin = _connect(settings)
    try:
        yield admin
    except KafkaError as e:
        raise DeployError(f"Kafka at {servers} refused: {type(e).__name__}: {e}") from None
    finally:
        admin.close()


def _replication(admin: KafkaAdminClient, wanted: int) -> int:
    """The replication factor to create with: `wanted`, or min(3, brokers) for 0."""
    brokers = len(admin.describe_cluster()["brokers"])
    if wanted > brokers:
        raise DeployError(f"--replication-factor {wanted} needs {wanted} brokers; the cluster has {brokers}")
    return wanted or min(3, brokers)


def topic_config(admin: KafkaAdminClient, topic: str) -> dict[str, str]:
    """Every setting of a topic, defaults included."""
    resource = ConfigResource(ConfigResourceType.TOPIC, topic)
    try:
        result = admin.describe_configs([resource], config_filter="all")  # kafka-python 3
    except TypeError:
        result = admin.describe_configs([resource])  # kafka-python 2: all, as tuples
    if isinstance(result, dict):
        return {name: entry["value"] for name, entry in result["topic"][topic].items()}
    return {entry[0]: entry[1] for entry in result[0].resources[0][4]}


def _create(admin: KafkaAdminClient, spec: TopicSpec, replicas: int, out: Callable[[str], None]) -> bool:
    """Create the topic of spec; False if someone else created it meanwhile (then it is checked
    like any existing topic). Its name goes to stdout at once: undeploy deletes only those."""
    try:
        admin.create_topics([NewTopic(spec.name, spec.partitions, replicas, topic_configs=spec.config)])
    except TopicAlreadyExistsError:
        return False
    print(spec.name, flush=True)
    out(f"created topic {spec.name}: {spec.partitions} partitions, replication {replicas}, "
        + ", ".join(f"{k}={v}" for k, v in spec.config.items()) + f" ({spec.purpose})")
    return True


def _check_existing(admin: KafkaAdminClient, spec: TopicSpec, out: Callable[[str], None]) -> str | None:
    """Check an existing topic against its spec: the problem, or None (and a line said about it)."""
    partitions = len(admin.describe_topics([spec.name])[0]["partitions"])
    problem = contract_problem(spec, partitions, topic_config(admin, spec.name))
    if problem is None:
        out(existing_note(spec, partitions))
    return problem


def ensure_topics(specs: Sequence[TopicSpec], replication_factor: int, out: Callable[[str], None]) -> None:
    """Create the missing topics; check the existing ones (never changes an existing topic)."""
    with kafka_admin() as admin:
        replicas = _replication(admin, replication_factor)
        existing = set(admin.list_topics())
        problems = []
        for spec in specs:
            if spec.name not in existing and _create(admin, spec, replicas, out):
                continue
            problem = _check_existing(admin, spec, out)
            if problem is not None:
                problems.append(problem)
        if problems:
            raise DeployError("\n".join(problems))


def create_topic(name: str, partitions: int, out: Callable[[str], None], replication_factor: int = 0) -> None:
    """One plain topic with the broker's defaults (the demo's, or `./deploy.sh topic create`), unless
    it exists: an existing topic is never changed, only described."""
    if partitions < 1:
        raise DeployError(f"--partitions {partitions}: a topic needs at least one partition")
    with kafka_admin() as admin:
        if name not in set(admin.list_topics()):
            replicas = _replication(admin, replication_factor)
            try:
                admin.create_topics([NewTopic(name, partitions, replicas)])
            except TopicAlreadyExistsError:
                pass  # made meanwhile by someone else: described below like any existing topic
            else:
                out(f"created topic {name}: {_partitions(partitions)}, replication {replicas}")
                return
        found = len(admin.describe_topics([name])[0]["partitions"])
        note = "" if found == partitions else f" (not {partitions}: an existing topic is never changed)"
        out(f"topic {name} exists with {_partitions(found)}{note}, left as it is")


def _partitions(count: int) -> str:
    return f"{count} partition{'' if count == 1 else 's'}"


def list_topics() -> list[tuple[str, int]]:
    """(name, partitions) of every topic but Kafka's internal ones (`__consumer_offsets`, ...), sorted."""
    with kafka_admin() as admin:
        names = sorted(n for n in admin.list_topics() if not n.startswith("__"))
        if not names:
            return []
        described = {t.get("name", t.get("topic")): len(t["partitions"])  # kafka-python 3 | 2
                     for t in admin.describe_topics(names)}
        return [(name, described.get(name, 0)) for name in names]


def delete_topics(names: Sequence[str], out: Callable[[str], None]) -> None:
    """Delete those of `names` that exist, and wait until the cluster no longer lists them."""
    with kafka_admin() as admin:
        present = [n for n in names if n in set(admin.list_topics())]
        for name in present:
            with contextlib.suppress(UnknownTopicOrPartitionError):
                admin.delete_topics([name])
            out(f"deleted topic {name}")
        for name in sorted(set(names) - set(present)):
            out(f"topic {name} does not exist (nothing to delete)")
        until(lambda: not set(present) & set(admin.list_topics()), DELETE_TIMEOUT_S,
              f"topics still listed {DELETE_TIMEOUT_S}s after deletion")
