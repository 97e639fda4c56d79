"""The local Kafka runner starts Apache's real broker, with the listeners and limits asked for."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, MessageSizeTooLargeError

from local_stack import kafka as kafka_stack
from tests.fixtures.kafka import SESSION_MESSAGE_MAX_BYTES, KafkaHandle


def test_records_round_trip_through_a_consumer_group(kafka: KafkaHandle) -> None:
    topic = kafka.create_topic(partitions=3)
    producer = kafka.producer()
    for i in range(30):
        producer.send(topic, key=str(i % 5).encode(), value=f"v{i}".encode())
    producer.flush()
    consumer = KafkaConsumer(topic, bootstrap_servers=kafka.bootstrap, group_id="g-roundtrip",
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=10000)
    values = sorted(m.value for m in consumer)
    consumer.commit()
    consumer.close()
    assert values == sorted(f"v{i}".encode() for i in range(30))


def test_the_broker_is_apache_kafka_4_in_kraft_mode(kafka: KafkaHandle) -> None:
    log = (kafka_stack.Path(kafka.state.data_dir) / "server.log").read_text()
    assert "KafkaRaftServer" in log
    props = (kafka_stack.Path(kafka.state.data_dir) / "server.properties").read_text()
    assert "process.roles=broker,controller" in props
    assert kafka_stack.KAFKA_VERSION.startswith("4.")
    libs = kafka_stack.resolve_jars(progress=False)
    assert (libs / f"kafka_2.13-{kafka_stack.KAFKA_VERSION}.jar").exists()


def test_sasl_listener_accepts_the_configured_user_only(kafka: KafkaHandle) -> None:
    topic = kafka.create_topic()
    common = {"bootstrap_servers": kafka.sasl_bootstrap, "security_protocol": "SASL_PLAINTEXT",
              "sasl_mechanism": "PLAIN", "sasl_plain_username": kafka.state.sasl_user}
    good = KafkaProducer(sasl_plain_password=kafka.state.sasl_password, **common)
    assert good.send(topic, b"secured").get(timeout=10).offset == 0
    good.close()
    with pytest.raises(KafkaError):  # the same listener refuses a wrong password
        KafkaProducer(sasl_plain_password="not-the-password", max_block_ms=5000, **common).send(topic, b"x").get(5)


def test_message_max_bytes_is_enforced_by_the_broker(kafka: KafkaHandle) -> None:
    topic = kafka.create_topic()
    producer = kafka.producer(max_request_size=8 * 1024 * 1024)
    ok = producer.send(topic, b"x" * (SESSION_MESSAGE_MAX_BYTES - 1024)).get(timeout=10)
    assert ok.offset == 0
    with pytest.raises((MessageSizeTooLargeError, KafkaError)):
        producer.send(topic, b"x" * (SESSION_MESSAGE_MAX_BYTES + 1024)).get(timeout=10)
    producer.close()


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(kafka_stack.KafkaStackError, match=f"port {port} .* already in use"):
            kafka_stack.start(kafka_stack.BrokerConfig(port=port))


def test_missing_java_or_maven_is_a_clear_error(tmp_path: kafka_stack.Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path), "LOCAL_STACK_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "local_stack.kafka", "start", "--port", "0"],
                          capture_output=True, text=True, env=env, cwd=kafka_stack.REPO_ROOT)
    assert done.returncode == 1
    assert "'mvn' not found on PATH" in done.stderr


def test_command_line_start_status_stop(tmp_path: kafka_stack.Path) -> None:
    env = {**os.environ, "LOCAL_STACK_CACHE": str(tmp_path)}
    cli = [sys.executable, "-m", "local_stack.kafka"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args, "--name", "cli-test"], capture_output=True, text=True, env=env,
                              cwd=kafka_stack.REPO_ROOT, timeout=120)

    # the jar cache is per LOCAL_STACK_CACHE; reuse the session's resolved jars instead of resolving again
    libs = kafka_stack.resolve_jars(progress=False)
    (tmp_path / f"kafka-{kafka_stack.KAFKA_VERSION}").mkdir()
    (tmp_path / f"kafka-{kafka_stack.KAFKA_VERSION}" / "libs").symlink_to(libs)
    started = run("start", "--port", "0")
    assert started.returncode == 0, started.stderr
    bootstrap = started.stdout.strip()
    try:
        status = run("status")
        assert status.returncode == 0 and bootstrap in status.stdout
        assert "messaging-secret" not in status.stdout
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic("kept", 1, 1)])
        admin.close()
        producer = KafkaProducer(bootstrap_servers=bootstrap)
        producer.send("kept", b"survives a restart").get(timeout=10)
        producer.close()
        assert run("stop").returncode == 0
        assert run("status").returncode == 3
        restarted = run("start", "--port", "0")  # same data directory, a new port
        assert restarted.returncode == 0, restarted.stderr
        consumer = KafkaConsumer("kept", bootstrap_servers=restarted.stdout.strip(), auto_offset_reset="earliest",
                                 consumer_timeout_ms=10000)
        assert [m.value for m in consumer] == [b"survives a restart"]
        consumer.close()
    finally:
        assert run("stop").returncode == 0
    assert run("status").returncode == 3
