"""Kafka ACLs for real (issue 11, deliverable 4): against a broker with KRaft's StandardAuthorizer,
the ACLs that `python -m deploy.tool acls` creates let the service principal read and write its four
topics and commit in its groups, let an external producer write envelopes to the trigger-messages
topic and nothing more (it cannot read them back), and leave a tenant only what it is granted.
Where the ACLs cannot be created (no authorizer, or a principal without the right), the step prints
the exact kafka-acls.sh commands instead."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import (
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePatternFilter,
    ResourceType,
)
from kafka.errors import GroupAuthorizationFailedError, KafkaError, TopicAuthorizationFailedError, for_code

from deploy import acls
from messaging_lib.credentials import Sealer, generate_key
from messaging_lib.envelope import new_envelope, record_key, structured_headers, to_structured
from tests.fixtures.kafka import AclKafkaHandle, KafkaHandle
from tests.fixtures.tools import REPO_ROOT

DEADLINE_S = 60.0
OW_KEY = f"{uuid.uuid4()}:{'T' * 64}"  # OpenWhisk's key shape; no key of any deployment


@dataclass(frozen=True)
class Deployment:
    """The names of one deployment on the ACL broker (unique per deployment, so tests never share)."""

    trigger_messages: str
    subscriptions: str
    dead_letters: str
    firer_group: str
    router_group: str

    @classmethod
    def fresh(cls) -> Deployment:
        tag = uuid.uuid4().hex[:8]
        return cls(f"tm-{tag}", f"subs-{tag}", f"dl-{tag}", f"firer-{tag}", f"router-{tag}")

    @property
    def parked(self) -> str:
        return f"{self.trigger_messages}-parked"

    @property
    def topics(self) -> tuple[str, str, str, str]:
        """The service's topics, in the order ``deploy.tool topics`` creates them."""
        return (self.trigger_messages, self.parked, self.subscriptions, self.dead_letters)

    def topic_flags(self) -> list[str]:
        return ["--trigger-messages-topic", self.trigger_messages, "--subscriptions-topic", self.subscriptions,
                "--dead-letter-topic", self.dead_letters]

    def acl_flags(self) -> list[str]:
        return [*self.topic_flags(), "--firer-group", self.firer_group, "--router-group", self.router_group]


def run_tool(kafka_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m deploy.tool ARGS` with exactly these KAFKA_* settings (none inherited)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")} | kafka_env
    return subprocess.run([sys.executable, "-m", "deploy.tool", *args], capture_output=True, text=True, env=env,
                          cwd=REPO_ROOT, timeout=120)


@pytest.fixture(scope="module")
def deployment(acl_kafka: AclKafkaHandle) -> Deployment:
    """A deployment as an operator makes it: the ACLs created by a super user for the service and
    the external producer, then the topics created by the service itself (its CREATE grant)."""
    names = Deployment.fresh()
    done = run_tool(acl_kafka.env(acl_kafka.super_user), "acls", *names.acl_flags(),
                    "--kafka-service-principal", "service", "--kafka-producer-principal", "User:producer")
    assert done.returncode == 0, done.stderr
    assert "26 ACLs in place for User:producer, User:service" in done.stderr  # 5 x 4 topics, 2 x 2 groups, 2
    assert "warning" not in done.stderr and done.stdout == ""
    created = run_tool(acl_kafka.env("service"), "topics", *names.topic_flags(), "--partitions", "1",
                       "--dead-letter-partitions", "1")
    assert created.returncode == 0, created.stderr
    assert created.stdout.split() == list(names.topics)
    return names


def _client(acl_kafka: AclKafkaHandle, user: str, factory: Callable[..., object], *args: object,
            **kwargs: object) -> object:
    return factory(*args, **acl_kafka.client_kwargs(user), **kwargs)


def producer(acl_kafka: AclKafkaHandle, user: str) -> KafkaProducer:
    return _client(acl_kafka, user, KafkaProducer, max_block_ms=15_000)  # type: ignore[return-value]


def reader(acl_kafka: AclKafkaHandle, user: str, topic: str, group: str | None) -> KafkaConsumer:
    """A consumer of `topic` as `user`: in `group` (subscribe), or with no group (assign, partition 0)."""
    if group is None:
        consumer = _client(acl_kafka, user, KafkaConsumer, group_id=None, enable_auto_commit=False,
                           auto_offset_reset="earliest")
        consumer.assign([TopicPartition(topic, 0)])  # type: ignore[attr-defined]
        return consumer  # type: ignore[return-value]
    return _client(acl_kafka, user, KafkaConsumer, topic, group_id=group,  # type: ignore[return-value]
                   enable_auto_commit=False, auto_offset_reset="earliest")


def poll_until(consumer: KafkaConsumer, enough: Callable[[list], bool] = bool) -> list:
    """Records of the consumer until `enough` of them arrived (by default one; a generous deadline)."""
    records: list = []
    deadline = time.monotonic() + DEADLINE_S
    while not enough(records):
        assert time.monotonic() < deadline, f"still not enough records within {DEADLINE_S:.0f}s: {records}"
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    return records


def refused(consumer: KafkaConsumer) -> KafkaError:
    """The authorization error that polling raises (never a record): the broker refused the read."""
    deadline = time.monotonic() + DEADLINE_S
    try:
        while time.monotonic() < deadline:
            try:
                got = consumer.poll(timeout_ms=500)
            except (TopicAuthorizationFailedError, GroupAuthorizationFailedError) as e:
                return e
            assert not got, f"the read was allowed: {got}"
        raise AssertionError(f"no authorization error within {DEADLINE_S:.0f}s")
    finally:
        consumer.close()


def metadata_error(acl_kafka: AclKafkaHandle, user: str, topic: str) -> type[KafkaError]:
    """The error the broker answers `user`'s metadata request for `topic` with: without DESCRIBE the
    topic is not even shown, so a client cannot find its leader to fetch from."""
    admin = acl_kafka.admin(user)
    try:
        return for_code(admin.describe_topics([topic])[0]["error_code"])
    finally:
        admin.close()


def sealed_envelope(trigger: str = "/alice/T1") -> tuple[bytes, bytes]:
    envelope = new_envelope(source="tests/security", trigger=trigger,
                            credential=Sealer([generate_key()]).seal(OW_KEY, [trigger]), data={"n": 1})
    return record_key(envelope), to_structured(envelope)


def send(kafka_producer: KafkaProducer, topic: str, key: bytes, value: bytes) -> int:
    try:
        return kafka_producer.send(topic, key=key, value=value, headers=structured_headers()).get(timeout=30).offset
    finally:
        kafka_producer.close()


# --- the external producer ---

def test_an_external_producer_writes_an_envelope_but_cannot_read_it_back(acl_kafka: AclKafkaHandle,
                                                                        deployment: Deployment) -> None:
    key, value = sealed_envelope()
    assert send(producer(acl_kafka, "producer"), deployment.trigger_messages, key, value) >= 0
    in_group = refused(reader(acl_kafka, "producer", deployment.trigger_messages, deployment.firer_group))
    assert isinstance(in_group, GroupAuthorizationFailedError)
    own_group = refused(reader(acl_kafka, "producer", deployment.trigger_messages, "producer-own-group"))
    assert isinstance(own_group, GroupAuthorizationFailedError)
    without_group = refused(reader(acl_kafka, "producer", deployment.trigger_messages, None))
    assert isinstance(without_group, TopicAuthorizationFailedError)
    assert deployment.trigger_messages in str(without_group)


@pytest.mark.parametrize("which", ["parked", "subscriptions", "dead_letters"])
def test_an_external_producer_can_neither_read_nor_write_the_other_service_topics(
        acl_kafka: AclKafkaHandle, deployment: Deployment, which: str) -> None:
    topic = getattr(deployment, which)
    assert metadata_error(acl_kafka, "producer", topic) is TopicAuthorizationFailedError
    assert isinstance(refused(reader(acl_kafka, "producer", topic, "producer-own-group")),
                      GroupAuthorizationFailedError)
    with pytest.raises(TopicAuthorizationFailedError):
        send(producer(acl_kafka, "producer"), topic, b"/alice/T1", b"{}")


# --- the service ---

def test_the_service_reads_and_writes_its_four_topics_and_commits_in_its_groups(
        acl_kafka: AclKafkaHandle, deployment: Deployment) -> None:
    key, value = sealed_envelope("/bob/T2")
    send(producer(acl_kafka, "producer"), deployment.trigger_messages, key, value)
    for topic in deployment.topics:
        send(producer(acl_kafka, "service"), topic, b"from-the-service", b"{}")
    for group in (deployment.firer_group, deployment.router_group):
        for topic in deployment.topics:
            consumer = reader(acl_kafka, "service", topic, group)
            try:
                records = poll_until(consumer)
                consumer.commit()
                partition = TopicPartition(topic, 0)
                assert consumer.committed(partition) == consumer.position(partition) > records[0].offset
            finally:
                consumer.close()
    consumer = reader(acl_kafka, "service", deployment.trigger_messages, None)
    try:
        poll_until(consumer, lambda records: any(r.key == b"/bob/T2" for r in records))
    finally:
        consumer.close()


def test_the_service_cannot_use_a_group_that_is_not_its_own(acl_kafka: AclKafkaHandle,
                                                             deployment: Deployment) -> None:
    consumer = reader(acl_kafka, "service", deployment.trigger_messages, "someone-elses-group")
    assert isinstance(refused(consumer), GroupAuthorizationFailedError)


# --- a tenant ---

def test_a_tenant_reads_only_the_topic_it_is_granted(acl_kafka: AclKafkaHandle, deployment: Deployment) -> None:
    own, other = acl_kafka.create_topic("alice.orders"), acl_kafka.create_topic("bob.orders")
    group = f"alice-{uuid.uuid4().hex[:6]}"
    grants = [acls.AclBinding("User:tenant", op, kind, name) for op in ("READ", "DESCRIBE")
              for kind, name in (("TOPIC", own), ("GROUP", group))]
    admin = acl_kafka.admin()
    try:
        assert admin.create_acls([acls.to_kafka(g) for g in grants])["failed"] == []
    finally:
        admin.close()
    send(producer(acl_kafka, acl_kafka.super_user), own, b"k", b"an order")
    consumer = reader(acl_kafka, "tenant", own, group)
    try:
        assert [r.value for r in poll_until(consumer)] == [b"an order"]
        consumer.commit()
    finally:
        consumer.close()
    for topic in (*deployment.topics, other):  # not shown, so no fetch can be sent (kafka-python does not
        # raise for a subscribed topic it may not see: its consumer just gets no partition of it)
        assert metadata_error(acl_kafka, "tenant", topic) is TopicAuthorizationFailedError
        assert isinstance(refused(reader(acl_kafka, "tenant", topic, deployment.router_group)),
                          GroupAuthorizationFailedError)
    with pytest.raises(TopicAuthorizationFailedError):  # not an external producer either
        send(producer(acl_kafka, "tenant"), deployment.trigger_messages, *sealed_envelope())


def test_plaintext_clients_are_anonymous_and_see_nothing(acl_kafka: AclKafkaHandle, deployment: Deployment) -> None:
    admin = KafkaAdminClient(bootstrap_servers=acl_kafka.state.bootstrap, client_id="tests-anonymous")
    try:
        assert set(admin.list_topics()) & set(deployment.topics) == set()
    finally:
        admin.close()


# --- where the ACLs cannot be created ---

def _printed_commands(done: subprocess.CompletedProcess[str], names: Deployment, bootstrap: str) -> None:
    assert done.returncode == 0, done.stderr
    bindings = acls.deployment_acls(trigger_messages_topic=names.trigger_messages,
                                    subscriptions_topic=names.subscriptions, dead_letter_topic=names.dead_letters,
                                    service_principal="service", producer_principals=["producer"],
                                    consumer_groups=[names.firer_group, names.router_group])
    assert done.stdout.splitlines() == acls.kafka_acls_commands(bindings, bootstrap)


def test_a_principal_that_may_not_create_acls_gets_the_commands(acl_kafka: AclKafkaHandle) -> None:
    names = Deployment.fresh()
    done = run_tool(acl_kafka.env("service"), "acls", *names.acl_flags(), "--kafka-producer-principal", "producer")
    _printed_commands(done, names, acl_kafka.sasl_bootstrap)
    assert "Kafka ACLs not created: 'service' may not create ACLs (that needs ALTER on the cluster" in done.stderr
    admin = acl_kafka.admin()
    try:
        nothing_created = ACLFilter(None, None, ACLOperation.ANY, ACLPermissionType.ANY,
                                    ResourcePatternFilter(ResourceType.TOPIC, names.trigger_messages,
                                                          ACLResourcePatternType.ANY))
        assert admin.describe_acls(nothing_created)[0] == []
    finally:
        admin.close()


def test_a_cluster_without_an_authorizer_gets_the_commands(kafka: KafkaHandle) -> None:
    names = Deployment.fresh()
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka.sasl_bootstrap, "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
           "KAFKA_SASL_USERNAME": kafka.state.sasl_user, "KAFKA_SASL_PASSWORD": kafka.state.sasl_password}
    done = run_tool(env, "acls", *names.acl_flags(), "--kafka-service-principal", "service",
                    "--kafka-producer-principal", "producer")
    _printed_commands(done, names, kafka.sasl_bootstrap)
    assert "Kafka ACLs not created: the cluster has no authorizer" in done.stderr
    assert kafka.state.sasl_password not in done.stdout + done.stderr


def test_without_a_sasl_principal_the_step_says_it_skips(kafka: KafkaHandle) -> None:
    done = run_tool({"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap}, "acls", *Deployment.fresh().acl_flags())
    assert done.returncode == 0 and done.stdout == ""
    assert "Kafka ACLs skipped: no service principal" in done.stderr


def test_an_acl_that_lets_someone_else_read_a_service_topic_is_warned_about(acl_kafka: AclKafkaHandle) -> None:
    names = Deployment.fresh()
    prefix = names.trigger_messages[:-1]
    leak = acls.AclBinding("User:tenant", "READ", "TOPIC", prefix, "PREFIXED")
    admin = acl_kafka.admin()
    try:
        assert admin.create_acls([acls.to_kafka(leak)])["failed"] == []
        done = run_tool(acl_kafka.env(acl_kafka.super_user), "acls", *names.acl_flags(),
                        "--kafka-service-principal", "service")
    finally:
        admin.delete_acls([acls.to_kafka(leak)])
        admin.close()
    assert done.returncode == 0, done.stderr
    assert (f"warning: User:tenant is allowed READ on topic {names.trigger_messages} (by the prefixed ACL on "
            f"'{prefix}')") in done.stderr
