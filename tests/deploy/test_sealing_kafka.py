"""The sealing key's fingerprint on a real broker: `python -m deploy.tool sealing-key` as deploy.sh
runs it (SEALING_KEYS in the environment, the chosen keys on stdout), the record it leaves in the
subscriptions topic next to the feed's records, and every branch of the decision end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from kafka import KafkaConsumer, TopicPartition

from deploy import sealing
from deploy.sealing import KafkaFingerprintStore, Recorded, fingerprint
from feed import records
from messaging_lib import topics
from messaging_lib.kafka_config import KafkaSettings
from tests.fixtures.kafka import KafkaHandle
from tests.fixtures.tools import REPO_ROOT

pytestmark = pytest.mark.timeout(300)
DEPLOYMENT = "https://ow.example namespace team-a"


def subscriptions_topic(kafka: KafkaHandle) -> str:
    """A fresh subscriptions topic shaped as deploy makes it, holding a feed's record already."""
    topic = kafka.create_topic("sk-subs", topics.SUBSCRIPTIONS_TOPIC_PARTITIONS, topics.SUBSCRIPTIONS_TOPIC_CONFIG)
    producer = kafka.producer()
    try:
        producer.send(topic, key=records.subscription_key("/guest/t"), value=b'{"v": 1}').get(timeout=30)
    finally:
        producer.close()
    return topic


def sealing_key(kafka: KafkaHandle, topic: str, keys: str | None, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_") and k != "SEALING_KEYS"}
    env["KAFKA_BOOTSTRAP_SERVERS"] = kafka.bootstrap
    if keys is not None:
        env["SEALING_KEYS"] = keys
    return subprocess.run([sys.executable, "-m", "deploy.tool", "sealing-key", "--subscriptions-topic", topic,
                           "--deployment", DEPLOYMENT, "--source", "the key of --sealing-keys", *flags],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)


def store(kafka: KafkaHandle, topic: str) -> KafkaFingerprintStore:
    return KafkaFingerprintStore(KafkaSettings(bootstrap_servers=(kafka.bootstrap,)), topic)


def recorded_fingerprint(kafka: KafkaHandle, topic: str) -> str | None:
    rec = store(kafka, topic).read()
    return None if rec is None else rec.fingerprint


def end_offset(kafka: KafkaHandle, topic: str) -> int:
    """How many records the topic has had (the active segment is never compacted away)."""
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id=None)
    try:
        tp = TopicPartition(topic, 0)
        return consumer.end_offsets([tp])[tp]
    finally:
        consumer.close()


def test_the_first_deploy_records_and_every_later_one_must_share_the_key(kafka: KafkaHandle) -> None:
    topic = subscriptions_topic(kafka)
    first = sealing_key(kafka, topic, None)
    assert first.returncode == 0, first.stderr
    key = first.stdout.strip()
    Fernet(key.encode())
    rec = store(kafka, topic).read()
    assert rec is not None and rec.fingerprint == fingerprint(key) and rec.deployment == DEPLOYMENT
    assert end_offset(kafka, topic) == 2  # the feed's record and the fingerprint
    assert key not in json.dumps([r.value.decode() for r in kafka.read_all(topic) if r.value])

    # a second deployment that would generate its own key: refused, one sentence on how to share it
    second = sealing_key(kafka, topic, None)
    assert second.returncode == 1 and second.stdout == ""
    assert "deploy.sh: error: the consumers on this Kafka open credentials with the sealing key of the " \
           f"deployment to {DEPLOYMENT}" in second.stderr
    assert "consumer-secrets.env" in second.stderr and "--sealing-keys" in second.stderr

    # the shared key: accepted, nothing written
    shared = sealing_key(kafka, topic, key)
    assert shared.returncode == 0 and shared.stdout.strip() == key, shared.stderr
    assert end_offset(kafka, topic) == 2

    # another key: refused; listing the recorded one after it is a rotation
    other = Fernet.generate_key().decode()
    refused = sealing_key(kafka, topic, other)
    assert refused.returncode == 1 and "is not the sealing key the consumers on this Kafka use" in refused.stderr
    assert other not in refused.stderr and key not in refused.stderr
    rotated = sealing_key(kafka, topic, f"{other},{key}")
    assert rotated.returncode == 0 and rotated.stdout.strip() == f"{other},{key}", rotated.stderr
    assert recorded_fingerprint(kafka, topic) == fingerprint(other)

    # --force replaces it
    forced = sealing_key(kafka, topic, key, "--force")
    assert forced.returncode == 0 and "--force-new-sealing-key" in forced.stderr, forced.stderr
    assert recorded_fingerprint(kafka, topic) == fingerprint(key)


def test_the_store_reads_the_last_value_and_a_tombstone_as_nothing(kafka: KafkaHandle) -> None:
    topic = subscriptions_topic(kafka)
    kept = store(kafka, topic)
    assert kept.read() is None
    for n in (1, 2):
        kept.write(Recorded(f"{n:032x}", DEPLOYMENT, n))
    assert kept.read() == Recorded(f"{2:032x}", DEPLOYMENT, 2)
    producer = kafka.producer()
    try:
        producer.send(topic, key=sealing.RECORD_KEY, value=None).get(timeout=30)
    finally:
        producer.close()
    assert kept.read() is None


def test_a_missing_subscriptions_topic_is_one_sentence(kafka: KafkaHandle) -> None:
    done = sealing_key(kafka, "sk-no-such-topic-here", None)
    assert done.returncode == 1
    assert "deploy.sh: error: topic sk-no-such-topic-here does not exist" in done.stderr
    assert "Traceback" not in done.stderr
