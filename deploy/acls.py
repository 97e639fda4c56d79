"""The Kafka ACLs of a deployment: which principal may do what, created or printed as commands.

A sealed credential in an envelope is a bearer secret (DESIGN.md section 4), so the service's four
topics (trigger messages, its park topic, subscriptions, dead letters) are the service's alone: its principal reads,
writes, describes and may create them and uses its consumer groups (firer, router); external
producers may only write (and describe) the trigger-messages topic; nobody else is granted anything
on them. No binding here names a wildcard principal or topic: with an authorizer that denies what no
ACL allows (`allow.everyone.if.no.acl.found=false`, the default), what is not listed is refused.

`deployment_acls` is pure (tested without Kafka). `apply_acls` creates the bindings with the admin
client of the KAFKA_* settings; where the cluster cannot take them (no authorizer) or the deploy's
principal may not (no ALTER on the cluster), it prints the exact `kafka-acls.sh` commands for an
operator to run instead, one per line on stdout, and says why on the progress output.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)
from kafka.errors import ClusterAuthorizationFailedError, SecurityDisabledError

from deploy.errors import DeployError
from deploy.topics import kafka_admin
from messaging_lib.topics import parked_topic

# What each role does on its resources. READ, WRITE and the rest imply DESCRIBE in Kafka; it is listed
# anyway so the bindings (and the printed commands) say exactly what the role needs.
SERVICE_TOPIC_OPERATIONS = ("READ", "WRITE", "DESCRIBE", "CREATE", "DESCRIBE_CONFIGS")  # configs: deploy's check
SERVICE_GROUP_OPERATIONS = ("READ", "DESCRIBE")  # join, fetch and commit offsets
ROUTED_TOPIC_OPERATIONS = ("READ", "DESCRIBE")  # the router reads the subscribed topics
PRODUCER_TOPIC_OPERATIONS = ("WRITE", "DESCRIBE")
READING_OPERATIONS = frozenset({"READ", "ALL"})  # an ALLOW of these on a service topic lets its holder read

# kafka-acls.sh spells operations in CamelCase.
_CLI_OPERATION = {"READ": "Read", "WRITE": "Write", "DESCRIBE": "Describe", "CREATE": "Create",
                  "DESCRIBE_CONFIGS": "DescribeConfigs", "ALL": "All"}


class Outcome(Enum):
    """What apply_acls did."""

    CREATED = "created"
    PRINTED_NO_AUTHORIZER = "printed: the cluster has no authorizer"
    PRINTED_NOT_ALLOWED = "printed: the deploy's principal may not create ACLs"


@dataclass(frozen=True, order=True)
class AclBinding:
    """One ALLOW rule: `principal` may do `operation` on the resource (a literal name or a prefix)."""

    principal: str  # "User:service"
    operation: str  # a key of _CLI_OPERATION
    resource_type: str  # "TOPIC" | "GROUP"
    resource_name: str
    pattern_type: str = "LITERAL"  # or "PREFIXED"
    host: str = "*"


def principal(name: str) -> str:
    """`User:name` for a bare name; a `Type:name` principal as it is. Wildcards and empty names are
    refused: a grant to everyone is exactly what these ACLs exist to prevent."""
    name = name.strip()
    kind, sep, who = name.partition(":")
    if not sep:
        kind, who = "User", name
    if not kind or not who or "*" in who:
        raise ValueError(f"principal {name!r} is not a named principal (User:NAME); wildcards are never granted")
    return f"{kind}:{who}"


def principal_list(values: Iterable[str]) -> list[str]:
    """Principals from repeated and comma-separated values, in order, without repeats."""
    names = [part for value in values for part in value.split(",") if part.strip()]
    return list(dict.fromkeys(principal(name) for name in names))


def _checked_name(kind: str, name: str) -> str:
    if not name or "*" in name:
        raise ValueError(f"{kind} {name!r}: a name is required and wildcards are never granted")
    return name


def _bindings(who: str, operations: Sequence[str], resource_type: str, names: Iterable[str],
              pattern_type: str = "LITERAL") -> list[AclBinding]:
    return [AclBinding(who, op, resource_type, name, pattern_type) for name in names for op in operations]


def deployment_acls(*, trigger_messages_topic: str, subscriptions_topic: str, dead_letter_topic: str,
                    service_principal: str, producer_principals: Sequence[str], consumer_groups: Sequence[str],
                    routed_topic_prefixes: Sequence[str] = ()) -> list[AclBinding]:
    """The ALLOW bindings of a deployment, service first, without repeats.

    service_principal: the consumer's, the web actions' and deploy's Kafka principal.
    producer_principals: external producers; WRITE on the trigger-messages topic, nothing else.
    consumer_groups: the service's groups (firer, router).
    routed_topic_prefixes: topics the router may read for feeds (PREFIXED READ for the service); leave
        empty where the operator grants them otherwise.
    """
    service = principal(service_principal)
    topics = [_checked_name("topic", t) for t in (trigger_messages_topic, parked_topic(trigger_messages_topic),
                                                  subscriptions_topic, dead_letter_topic)]
    groups = [_checked_name("consumer group", g) for g in consumer_groups]
    prefixes = [_checked_name("routed topic prefix", p) for p in routed_topic_prefixes]
    producers = [principal(p) for p in producer_principals]
    bindings = [
        *_bindings(service, SERVICE_TOPIC_OPERATIONS, "TOPIC", topics),
        *_bindings(service, SERVICE_GROUP_OPERATIONS, "GROUP", groups),
        *_bindings(service, ROUTED_TOPIC_OPERATIONS, "TOPIC", prefixes, "PREFIXED"),
        *(b for p in producers for b in _bindings(p, PRODUCER_TOPIC_OPERATIONS, "TOPIC", [trigger_messages_topic])),
    ]
    return list(dict.fromkeys(bindings))


def kafka_acls_commands(bindings: Sequence[AclBinding], bootstrap: str,
                        command_config: str = "admin-client.properties") -> list[str]:
    """The `kafka-acls.sh --add` commands that create `bindings`: one per principal and resource,
    its operations as repeated --operation flags, in the order of `bindings`. `command_config` is
    the client properties file of a principal allowed to create ACLs (a super user)."""
    grouped: dict[tuple[str, str, str, str, str], list[str]] = {}
    for b in bindings:
        grouped.setdefault((b.principal, b.resource_type, b.resource_name, b.pattern_type, b.host), []).append(
            b.operation)
    commands = []
    for (who, resource_type, name, pattern_type, host), operations in grouped.items():
        words = ["kafka-acls.sh", "--bootstrap-server", bootstrap, "--command-config", command_config, "--add",
                 "--allow-principal", who, "--allow-host", host]
        for op in operations:
            words += ["--operation", _CLI_OPERATION[op]]
        words += [f"--{resource_type.lower()}", name, "--resource-pattern-type", pattern_type.lower()]
        commands.append(shlex.join(words))
    return commands


# --- the edge: kafka-python's admin client ---

def to_kafka(binding: AclBinding) -> ACL:
    """The kafka-python ACL of a binding."""
    return ACL(binding.principal, binding.host, ACLOperation[binding.operation], ACLPermissionType.ALLOW,
               ResourcePattern(ResourceType[binding.resource_type], binding.resource_name,
                               ACLResourcePatternType[binding.pattern_type]))


def foreign_readers(admin: KafkaAdminClient, topics: Sequence[str], service_principal: str) -> list[str]:
    """Lines naming every ALLOW that lets someone other than the service read one of its topics,
    whether it names the topic, a prefix of it or a wildcard (such ACLs are never created here, but an
    operator may have added them)."""
    found = []
    for topic in topics:
        acl_filter = ACLFilter(None, None, ACLOperation.ANY, ACLPermissionType.ALLOW,
                               ResourcePatternFilter(ResourceType.TOPIC, topic, ACLResourcePatternType.MATCH))
        acls, _ = admin.describe_acls(acl_filter)
        for acl in acls:
            if acl.principal != service_principal and acl.operation.name in READING_OPERATIONS:
                pattern = acl.resource_pattern
                found.append(f"{acl.principal} is allowed {acl.operation.name} on topic {topic} (by the "
                             f"{pattern.pattern_type.name.lower()} ACL on {pattern.resource_name!r})")
    return found


def _create(bindings: Sequence[AclBinding], service_principal: str,
            service_topics: Sequence[str]) -> tuple[Outcome, list[str]]:
    """Create the bindings; the outcome, and the lines of foreign readers found after."""
    with kafka_admin() as admin:
        failed = set(admin.create_acls([to_kafka(b) for b in bindings])["failed"])
        if not failed:
            return Outcome.CREATED, foreign_readers(admin, service_topics, service_principal)
    if failed <= {SecurityDisabledError}:
        return Outcome.PRINTED_NO_AUTHORIZER, []
    if failed <= {SecurityDisabledError, ClusterAuthorizationFailedError}:
        return Outcome.PRINTED_NOT_ALLOWED, []
    names = ", ".join(sorted(e.__name__ for e in failed))
    raise DeployError(f"Kafka refused to create the ACLs ({names}): create them as a super user with "
                      "kafka-acls.sh (README, section Security)")


def apply_acls(bindings: Sequence[AclBinding], out: Callable[[str], None], *, service_principal: str,
               service_topics: Sequence[str], emit: Callable[[str], None] = print) -> Outcome:
    """Create `bindings` in the cluster of the KAFKA_* settings, or `emit` the kafka-acls.sh commands
    that do (no authorizer, or the deploy's principal may not create ACLs). Bindings that exist
    already are left as they are (creating one twice is a no-op in Kafka). After creating, warn about
    any ACL that lets another principal read the service's topics."""
    if not bindings:
        return Outcome.CREATED
    outcome, readers = _create(bindings, principal(service_principal), service_topics)
    if outcome is Outcome.CREATED:
        principals = sorted({b.principal for b in bindings})
        out(f"{len(bindings)} ACLs in place for {', '.join(principals)}")
        for line in readers:
            out(f"warning: {line}: the service's topics carry sealed credentials, so nobody else should read "
                "them; remove that ACL with kafka-acls.sh --remove")
        return outcome
    user = os.environ.get("KAFKA_SASL_USERNAME") or "the deploy's principal"
    why = ("the cluster has no authorizer (authorizer.class.name is not set), so ACLs cannot be created"
           if outcome is Outcome.PRINTED_NO_AUTHORIZER else
           f"'{user}' may not create ACLs (that needs ALTER on the cluster, e.g. a super user)")
    out(f"Kafka ACLs not created: {why}; with an authorizer, a super user creates them with these commands "
        "(admin-client.properties: that user's client settings):")
    for command in kafka_acls_commands(bindings, os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "BROKERS")):
        emit(command)
    return outcome
