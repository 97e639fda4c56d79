"""The Kafka ACLs of a deployment, the pure part: which bindings, and the kafka-acls.sh commands that
create them (applying them to a real broker with an authorizer is in tests/security/test_kafka_acls.py)."""

from __future__ import annotations

import dataclasses
import shlex

import pytest

from consumer.settings import Settings
from deploy import tool
from deploy.acls import AclBinding, deployment_acls, kafka_acls_commands, principal, principal_list, to_kafka

TOPICS = {"trigger_messages_topic": "tm", "subscriptions_topic": "subs", "dead_letter_topic": "dl"}
BINDINGS = deployment_acls(**TOPICS, service_principal="service", producer_principals=["User:producer", "User:p2"],
                           consumer_groups=["firer-g", "router-g"])


def _of(who: str, bindings: list[AclBinding] = BINDINGS) -> set[tuple[str, str, str, str]]:
    return {(b.operation, b.resource_type, b.resource_name, b.pattern_type) for b in bindings if b.principal == who}


def test_the_service_reads_writes_describes_and_may_create_its_four_topics_and_uses_its_groups() -> None:
    topic_ops = {"READ", "WRITE", "DESCRIBE", "CREATE", "DESCRIBE_CONFIGS"}
    assert _of("User:service") == {
        *((op, "TOPIC", t, "LITERAL") for t in ("tm", "tm-parked", "subs", "dl") for op in topic_ops),
        *((op, "GROUP", g, "LITERAL") for g in ("firer-g", "router-g") for op in ("READ", "DESCRIBE")),
    }


def test_an_external_producer_may_only_write_and_describe_the_trigger_messages_topic() -> None:
    expected = {("WRITE", "TOPIC", "tm", "LITERAL"), ("DESCRIBE", "TOPIC", "tm", "LITERAL")}
    assert _of("User:producer") == _of("User:p2") == expected


def test_nobody_but_the_service_reads_anything_and_nothing_is_a_wildcard() -> None:
    readers = {b.principal for b in BINDINGS if b.operation in {"READ", "ALL"}}
    assert readers == {"User:service"}
    assert {b.principal for b in BINDINGS} == {"User:service", "User:producer", "User:p2"}
    assert all("*" not in b.principal and "*" not in b.resource_name for b in BINDINGS)
    assert {b.host for b in BINDINGS} == {"*"}  # any host, but only for these named principals


def test_no_binding_is_repeated_and_the_service_comes_first() -> None:
    assert len(BINDINGS) == len(set(BINDINGS)) == 5 * 4 + 2 * 2 + 2 * 2
    assert BINDINGS[0].principal == "User:service"
    again = deployment_acls(**TOPICS, service_principal="User:service", producer_principals=["producer", "producer"],
                            consumer_groups=["g", "g"])
    assert len(again) == len(set(again)) == 5 * 4 + 2 + 2


def test_routed_topic_prefixes_are_prefixed_reads_for_the_service_only() -> None:
    bindings = deployment_acls(**TOPICS, service_principal="service", producer_principals=[],
                               consumer_groups=["g"], routed_topic_prefixes=["tenants."])
    assert {b for b in bindings if b.pattern_type == "PREFIXED"} == {
        AclBinding("User:service", "READ", "TOPIC", "tenants.", "PREFIXED"),
        AclBinding("User:service", "DESCRIBE", "TOPIC", "tenants.", "PREFIXED"),
    }


@pytest.mark.parametrize("name, expected", [("service", "User:service"), (" User:svc ", "User:svc"),
                                            ("Group:ops", "Group:ops")])
def test_a_bare_name_is_a_user_principal(name: str, expected: str) -> None:
    assert principal(name) == expected


@pytest.mark.parametrize("name", ["*", "User:*", "", "User:", ":x", "User:a*"])
def test_wildcard_and_empty_principals_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="wildcards are never granted"):
        principal(name)


def test_producer_principals_come_repeated_or_as_comma_lists() -> None:
    assert principal_list(["a,User:b", "c", " a ", ""]) == ["User:a", "User:b", "User:c"]


@pytest.mark.parametrize("field", ["trigger_messages_topic", "subscriptions_topic", "dead_letter_topic"])
def test_a_wildcard_topic_is_refused(field: str) -> None:
    with pytest.raises(ValueError, match="wildcards are never granted"):
        deployment_acls(**{**TOPICS, field: "*"}, service_principal="s", producer_principals=[], consumer_groups=["g"])


def test_a_wildcard_group_or_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="consumer group"):
        deployment_acls(**TOPICS, service_principal="s", producer_principals=[], consumer_groups=["*"])
    with pytest.raises(ValueError, match="routed topic prefix"):
        deployment_acls(**TOPICS, service_principal="s", producer_principals=[], consumer_groups=["g"],
                        routed_topic_prefixes=[""])


def test_the_commands_group_operations_per_principal_and_resource() -> None:
    commands = kafka_acls_commands(BINDINGS, "k1:9092,k2:9092", "admin.properties")
    assert len(commands) == 4 + 2 + 2  # four topics and two groups for the service, one topic per producer
    assert commands[0] == ("kafka-acls.sh --bootstrap-server k1:9092,k2:9092 --command-config admin.properties --add "
                           "--allow-principal User:service --allow-host '*' --operation Read --operation Write "
                           "--operation Describe --operation Create --operation DescribeConfigs --topic tm "
                           "--resource-pattern-type literal")
    assert commands[1].endswith("--topic tm-parked --resource-pattern-type literal")
    assert commands[4].endswith("--operation Read --operation Describe --group firer-g --resource-pattern-type literal")
    assert commands[-1].endswith("--allow-principal User:p2 --allow-host '*' --operation Write --operation Describe "
                                 "--topic tm --resource-pattern-type literal")


def test_the_commands_quote_what_a_shell_would_split() -> None:
    bindings = deployment_acls(trigger_messages_topic="tm", subscriptions_topic="subs", dead_letter_topic="dl",
                               service_principal="User:CN=svc,O=Org", producer_principals=[], consumer_groups=["g"])
    words = shlex.split(kafka_acls_commands(bindings, "k:9092")[0])
    assert words[words.index("--allow-principal") + 1] == "User:CN=svc,O=Org"


def test_each_binding_converts_to_a_kafka_python_allow_acl() -> None:
    acl = to_kafka(AclBinding("User:service", "DESCRIBE_CONFIGS", "TOPIC", "tenants.", "PREFIXED"))
    assert (acl.principal, acl.host, acl.operation.name, acl.permission_type.name) == (
        "User:service", "*", "DESCRIBE_CONFIGS", "ALLOW")
    pattern = acl.resource_pattern
    assert (pattern.resource_type.name, pattern.resource_name, pattern.pattern_type.name) == (
        "TOPIC", "tenants.", "PREFIXED")


def test_the_tool_defaults_to_the_consumers_own_group_names() -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    assert (defaults["firer_group"], defaults["router_group"]) == (tool.DEFAULT_FIRER_GROUP, tool.DEFAULT_ROUTER_GROUP)
