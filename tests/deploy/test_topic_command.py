"""`./deploy.sh topic create NAME [--partitions N]` and `topic list`: against a cluster named by the
Kafka flags, and with --local against the broker the local stack's state names (found the way
deploy.sh finds it: `python -m local_stack.kafka status --name <the state dir's broker name>`)."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict
from pathlib import Path

import pytest

from tests.e2e.helpers import unique
from tests.fixtures.kafka import KafkaHandle
from tests.fixtures.tools import REPO_ROOT

pytestmark = pytest.mark.timeout(300)
DEPLOY = str(REPO_ROOT / "deploy.sh")


def run(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("WHISK_", "WSK_", "KAFKA_", "MESSAGING_", "LOCAL_STACK_"))}
    return subprocess.run([DEPLOY, *args], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
                          env={**clean, "HOME": str(home), **env})


def partitions_of(kafka: KafkaHandle, topic: str) -> int | None:
    admin = kafka.admin()
    try:
        if topic not in set(admin.list_topics()):
            return None
        return len(admin.describe_topics([topic])[0]["partitions"])
    finally:
        admin.close()


def test_topic_create_makes_a_topic_once_and_list_shows_it(kafka: KafkaHandle, tmp_path: Path) -> None:
    name = unique("tc")
    made = run(tmp_path, "topic", "create", name, "--partitions", "3", "--kafka-bootstrap", kafka.bootstrap)
    assert made.returncode == 0, made.stderr
    assert f"created topic {name}: 3 partitions, replication 1" in made.stderr
    assert partitions_of(kafka, name) == 3

    again = run(tmp_path, "topic", "create", name, "--kafka-bootstrap", kafka.bootstrap)
    assert again.returncode == 0, again.stderr
    assert f"topic {name} exists with 3 partitions (not 1: an existing topic is never changed)" in again.stderr
    assert partitions_of(kafka, name) == 3

    listed = run(tmp_path, "topic", "list", "--kafka-bootstrap", kafka.bootstrap)
    assert listed.returncode == 0, listed.stderr
    rows = dict(line.split("\t") for line in listed.stdout.splitlines())
    assert rows[name] == "3" and not any(topic.startswith("__") for topic in rows)


def test_topic_create_takes_the_kafka_settings_from_the_environment(kafka: KafkaHandle, tmp_path: Path) -> None:
    name = unique("tc-env")
    made = run(tmp_path, "topic", "create", name, KAFKA_BOOTSTRAP_SERVERS=kafka.bootstrap)
    assert made.returncode == 0, made.stderr
    assert partitions_of(kafka, name) == 1


def test_topic_create_local_uses_the_running_local_broker(kafka: KafkaHandle, tmp_path: Path) -> None:
    """--local reads no Kafka flag: the broker is the one the state directory's local stack runs."""
    state_dir, cache = tmp_path / "local", tmp_path / "cache"
    absent = run(tmp_path, "topic", "create", "x", "--local", "--state-dir", str(state_dir),
                 LOCAL_STACK_CACHE=str(cache))
    assert absent.returncode == 1
    assert f"the local stack's Kafka is not running (state: {state_dir})" in absent.stderr
    assert "./deploy.sh --local --detach" in absent.stderr

    # the session's broker, registered under the name deploy.sh derives from the state directory
    checksum = subprocess.run(["cksum"], input=str(state_dir), capture_output=True, text=True, check=True)
    broker_file = cache / "kafka-run" / f"messaging-{checksum.stdout.split()[0]}.json"
    broker_file.parent.mkdir(parents=True)
    broker_file.write_text(json.dumps(asdict(kafka.state)))
    name = unique("tc-local")
    made = run(tmp_path, "topic", "create", name, "--partitions", "2", "--local", "--state-dir", str(state_dir),
               LOCAL_STACK_CACHE=str(cache), KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
    assert made.returncode == 0, made.stderr
    assert f"Topic {name} at {kafka.bootstrap}" in made.stderr
    assert partitions_of(kafka, name) == 2
    listed = run(tmp_path, "topic", "list", "--local", "--state-dir", str(state_dir), LOCAL_STACK_CACHE=str(cache))
    assert listed.returncode == 0 and f"{name}\t2" in listed.stdout.splitlines(), listed.stderr


@pytest.mark.parametrize(("args", "expected"), [
    (["topic"], "usage: ./deploy.sh topic create NAME"),
    (["topic", "create"], "usage: ./deploy.sh topic create NAME"),
    (["topic", "create", "a", "b"], "usage: ./deploy.sh topic create NAME"),
    (["topic", "drop", "a"], "usage: ./deploy.sh topic create NAME"),
    (["topic", "create", "a"], "no Kafka brokers"),
    (["topic", "create", "a", "--partitions", "x"], "'x' is not a number"),
])
def test_topic_usage_errors_say_what_to_do(args: list[str], expected: str, tmp_path: Path) -> None:
    done = run(tmp_path, *args)
    assert done.returncode == 1
    assert f"deploy.sh: error: {expected}" in done.stderr
    assert "what to do:" in done.stderr
