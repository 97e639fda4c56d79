"""./deploy.sh into a second namespace on the same Kafka (issue 14): it must not generate a sealing key
the running consumers cannot open. It is refused with how to share the key, and works with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.helpers import unique
from tests.fixtures.deploy import read_env_file, run_deploy
from tests.fixtures.emulator import EmulatorHandle, emulator_fixture
from tests.fixtures.kafka import KafkaHandle
from tests.fixtures.tools import Tools

pytestmark = pytest.mark.timeout(600)


openwhisk = emulator_fixture("sealing-emulator", "An OpenWhisk host of this module's own.")


def test_a_second_namespace_on_the_same_kafka_must_share_the_sealing_key(
        openwhisk: EmulatorHandle, kafka: KafkaHandle, tools: Tools, tmp_path: Path) -> None:
    names = [unique("sk-tm"), unique("sk-s"), unique("sk-dl")]
    kafka_flags = ["--trigger-messages-topic", names[0], "--subscriptions-topic", names[1],
                   "--dead-letter-topic", names[2], "--kafka-bootstrap", kafka.bootstrap, "--partitions", "1"]
    first_flags = ["--apihost", openwhisk.url, "--auth", openwhisk.auth("whisk.system"),
                   "--state-dir", str(tmp_path / "one")]
    second_flags = ["--apihost", openwhisk.url, "--auth", openwhisk.auth("alice"), "--state-dir", str(tmp_path / "two")]

    first = run_deploy(tools, tmp_path, *first_flags, *kafka_flags)
    assert first.returncode == 0, first.stderr
    assert "generated a new one" in first.stderr
    assert f"recorded the key's fingerprint on topic {names[1]}" in first.stderr
    key = read_env_file(tmp_path / "one" / "consumer-secrets.env")["SEALING_KEYS"]

    refused = run_deploy(tools, tmp_path, *second_flags, *kafka_flags)
    assert refused.returncode == 1
    assert f"the sealing key of the deployment to {openwhisk.url} namespace whisk.system" in refused.stderr
    assert "--sealing-keys" in refused.stderr and "consumer-secrets.env" in refused.stderr
    assert key not in refused.stderr + refused.stdout
    assert not (tmp_path / "two" / "consumer-secrets.env").exists()
    assert openwhisk.api("alice").get("_/packages").json() == [], "nothing deployed into alice"

    shared = run_deploy(tools, tmp_path, *second_flags, *kafka_flags, SEALING_KEYS=key)
    assert shared.returncode == 0, shared.stderr
    assert "the same key the consumers on this Kafka use" in shared.stderr
    assert read_env_file(tmp_path / "two" / "consumer-secrets.env")["SEALING_KEYS"] == key

    for flags in (second_flags, first_flags):
        done = run_deploy(tools, tmp_path, "undeploy", *flags)
        assert done.returncode == 0, done.stderr
