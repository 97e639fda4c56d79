"""The README's user guide runs as pasted (issue 14, deliverable 3).

The README marks the blocks a user pastes with ``<!-- example: NAME -->`` before the fence; the
others are illustrations. This test runs the marked blocks in README order, shell blocks with
``bash -euo pipefail`` (a failing line fails the block) and the Python block with this Python,
against real Kafka, the emulator, the package deployed by the real wskdeploy and a consumer
running both roles. After each block it checks the effect the README states: the rule's action
ran with the payload, the token's messages fired (and none was dead-lettered), one trigger's
messages from produce, kcat and kafka-python share a partition, the feed fired.

What differs in a test is set, and only that: the variables of the block marked
``<!-- example-env -->`` (the CLI's wskprops, the wsk binary, the Kafka bootstrap). The blocks run
in a scratch folder (they write files such as token.json); its ``deploy.sh`` only execs the
repository's, so ``./deploy.sh ...`` runs the real script without writing into the checkout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka.partitioner.default import murmur2

from tests.e2e.helpers import OpenWhisk, end_offsets, read_from, wait_for
from tests.fixtures.kafka import KafkaHandle
from tests.fixtures.messaging import Messaging
from tests.fixtures.tools import REPO_ROOT, Tools

pytestmark = pytest.mark.timeout(900)
README = REPO_ROOT / "README.md"
BLOCK = re.compile(r"^<!-- (example-env|example: (\S+))[^>]*-->\n```(sh|python)\n(.*?)\n```", re.S | re.M)
SUBSTITUTED = {"WSK_CONFIG_FILE", "WSK", "KAFKA"}
FQN = "/guest/myTrigger"
BLOCK_TIMEOUT_S = 300


@dataclass(frozen=True)
class Example:
    name: str  # "" for the example-env block
    lang: str
    code: str


def readme_examples() -> list[Example]:
    return [Example(m.group(2) or "", m.group(3), m.group(4)) for m in BLOCK.finditer(README.read_text())]


def test_the_readme_marks_its_user_guide_examples_in_order_and_they_avoid_the_old_traps() -> None:
    examples = readme_examples()
    assert [e.name for e in examples] == ["", "produce", "token", "kcat", "kafka-python", "kafkaFeed",
                                          "kafkaFeed-manage", "kafkaProduce"]
    env_block = examples[0].code
    assert env_block.startswith("export ") and set(re.findall(r"(\w+)=", env_block)) == SUBSTITUTED
    assert '"$PWD/' in env_block, "WSK_CONFIG_FILE must be absolute"
    text = README.read_text()
    assert "uuidgen" not in text, "ids must need no extra tool"
    for example in examples:
        for line in example.code.splitlines():
            if re.search(r"\bkcat -P\b", line) and "$KEY" in line:
                assert "-X partitioner=murmur2_random" in line, line  # a keyed record lands where produce puts it


class Runner:
    """Runs README blocks in one scratch folder with the test's values of the substituted variables."""

    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.work, self.env = work, env
        self.examples = {e.name: e for e in readme_examples() if e.name}

    def run(self, name: str) -> str:
        example = self.examples[name]
        cmd = ["bash", "-euo", "pipefail", "-c", example.code] if example.lang == "sh" else \
            [sys.executable, "-c", example.code]
        done = subprocess.run(cmd, cwd=self.work, env=self.env, capture_output=True, text=True,
                              timeout=BLOCK_TIMEOUT_S)
        assert done.returncode == 0, f"README example {name!r} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        return done.stdout


def ran_with(guest: OpenWhisk, matches: Callable[[dict], bool], what: str) -> dict:
    """The first activation of myAction whose received parameters match (waits for it)."""
    def found() -> dict | None:
        for activation in guest.activations("myAction"):
            got = (activation.get("response", {}).get("result") or {}).get("got")
            if isinstance(got, dict) and matches(got):
                return got
        return None
    return wait_for(found, timeout_s=120, interval_s=0.5, what=what)


def murmur2_partition(key: bytes, partitions: int) -> int:
    """Where kafka-python (and Java's client, and produce) put a keyed record."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions  # kafka.partitioner.default.DefaultPartitioner's rule


@pytest.fixture
def runner(tmp_path: Path, emulator, tools: Tools, kafka: KafkaHandle, messaging: Messaging) -> Runner:
    if shutil.which("kcat") is None:
        pytest.fail("kcat is not installed: ./test.sh installs it as root with apt-get (apt-get install -y kcat); "
                    "install it that way, the README's examples use it")
    work = tmp_path / "work"
    work.mkdir()
    shim = work / "deploy.sh"
    shim.write_text(f'#!/usr/bin/env bash\nexec {json.dumps(str(REPO_ROOT / "deploy.sh"))} "$@"\n')
    shim.chmod(0o755)
    wskprops = tmp_path / "guest.wskprops"
    wskprops.write_text(f"APIHOST={emulator.url}\nAUTH={emulator.auth('guest')}\n")
    env = {**os.environ, "HOME": str(tmp_path), "WSK_CONFIG_FILE": str(wskprops), "WSK": tools.wsk,
           "KAFKA": kafka.bootstrap}
    return Runner(work, env)


def test_the_user_guide_examples_run_as_pasted_and_do_what_they_say(runner: Runner, consumers, emulator,
                                                                      messaging: Messaging) -> None:
    consumers(ROLES="firer,router")
    guest = OpenWhisk(emulator.url, emulator.auth("guest"))
    messages_start = end_offsets(messaging.bootstrap, messaging.trigger_messages_topic)
    dead_start = end_offsets(messaging.bootstrap, messaging.dead_letter_topic)

    out = runner.run("produce")
    produced = json.loads(out[out.index("{"):])  # after the CLI's "ok: created ..." lines
    assert produced["trigger"] == FQN and produced["topic"] == messaging.trigger_messages_topic
    ran_with(guest, lambda got: got.get("order") == 42, "produce's payload at the rule's action")

    runner.run("token")
    answer = json.loads((runner.work / "token.json").read_text())
    assert (answer["bootstrap_servers"], answer["topic"], answer["key"]) == (
        messaging.bootstrap, messaging.trigger_messages_topic, FQN)

    runner.run("kcat")
    ran_with(guest, lambda got: got.get("via") == "kcat", "the kcat message fired")
    runner.run("kafka-python")
    ran_with(guest, lambda got: got.get("via") == "kafka-python", "the kafka-python message fired")

    mine = [r for r in read_from(messaging.bootstrap, messaging.trigger_messages_topic, messages_start)
            if r.key == FQN.encode()]
    partitions = len(messages_start)
    assert len(mine) == 3 and {r.partition for r in mine} == {produced["partition"]} == {
        murmur2_partition(FQN.encode(), partitions)}, [(r.partition, r.value[:80]) for r in mine]
    dead = [r for r in read_from(messaging.bootstrap, messaging.dead_letter_topic, dead_start) if r.key == FQN.encode()]
    assert dead == [], "a README example's message was dead-lettered"

    runner.run("kafkaFeed")
    got = ran_with(guest, lambda got: bool(got.get("messages")), "the feed fired for the message on orders")
    assert [(m["topic"], m["key"], m["value"]) for m in got["messages"]] == [("orders", "o-42", {"order": 42})]

    managed = runner.run("kafkaFeed-manage")
    assert '"isJSONData": true' in managed and '"brokers"' in managed, managed

    produced_raw = runner.run("kafkaProduce")
    assert '"success": true' in produced_raw, produced_raw
    sent = read_from(messaging.bootstrap, "events", {0: 0})
    assert [(r.key, json.loads(r.value)) for r in sent] == [(b"k1", {"hello": "world"})]
