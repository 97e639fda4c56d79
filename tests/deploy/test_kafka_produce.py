"""messaging/kafkaProduce as users call it: deployed by wskdeploy, run by the emulator in the
python:3.11 runtime's packages (kafka-python 2.0.2), publishing to the real broker.

Parity with the Apache package's kafkaProduce/messageHubProduce (parameters, success and error
texts), plus what they got wrong: real binary values, "true" as a boolean, SASL for any Kafka.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess

import pytest

from tests.e2e.helpers import unique
from tests.fixtures.kafka import KafkaHandle
from tests.fixtures.messaging import OWNER, Messaging

pytestmark = pytest.mark.timeout(300)


def kafka_produce(tools, emulator, **params: object) -> tuple[bool, dict]:
    """(activation succeeded, result) of `wsk action invoke /whisk.system/messaging/kafkaProduce`."""
    args = []
    for name, value in params.items():
        args += ["-p", name, value if isinstance(value, str) else json.dumps(value)]
    done = subprocess.run([tools.wsk, "--apihost", emulator.url, "-u", emulator.auth("guest"), "action", "invoke",
                           f"/{OWNER}/messaging/kafkaProduce", *args, "--blocking", "--result"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": "/nonexistent"})
    out = done.stdout if done.returncode == 0 else done.stderr + done.stdout  # a failed one is on stderr
    assert "{" in out, f"no result from wsk:\n{done.stdout}\n{done.stderr}"
    result, _ = json.JSONDecoder().raw_decode(out[out.index("{"):])
    return done.returncode == 0, result


def only_record(kafka: KafkaHandle, topic: str):
    records = kafka.read_all(topic, timeout_ms=3000)
    assert len(records) == 1, records
    return records[0]


def test_text_key_value_and_headers_arrive_as_sent(messaging: Messaging, kafka: KafkaHandle, tools,
                                                   emulator) -> None:
    topic = kafka.create_topic("kp")
    ok, result = kafka_produce(tools, emulator, brokers=[kafka.bootstrap], topic=topic, value="hello, Kafka",
                               key="k-1", headers={"source": "test", "n": 1})
    assert ok, result
    assert result["success"] is True
    assert result["message"] == f"Successfully sent message to {topic}:0 at offset 0"
    record = only_record(kafka, topic)
    assert (record.key, record.value) == (b"k-1", b"hello, Kafka")
    assert dict(record.headers) == {"source": b"test", "n": b"1"}


def test_json_values_are_sent_compact_and_binary_values_as_their_exact_bytes(
        messaging: Messaging, kafka: KafkaHandle, tools, emulator) -> None:
    topic = kafka.create_topic("kp")
    raw = bytes(range(256))  # not UTF-8: the old action refused this as "not Base64 encoded"
    ok, result = kafka_produce(tools, emulator, brokers=kafka.bootstrap, topic=topic, value={"a": [1, 2]})
    assert ok, result
    ok, result = kafka_produce(tools, emulator, brokers=kafka.bootstrap, topic=topic,
                               value=base64.b64encode(raw).decode(), base64DecodeValue="true",
                               key=base64.b64encode(b"\x00\xff").decode(), base64DecodeKey=True)
    assert ok, result
    first, second = kafka.read_all(topic, timeout_ms=3000)
    assert first.value == b'{"a":[1,2]}'
    assert (second.key, second.value) == (b"\x00\xff", raw)


def test_sasl_works_for_any_kafka_and_a_wrong_password_is_named(messaging: Messaging, kafka: KafkaHandle, tools,
                                                                 emulator) -> None:
    topic = kafka.create_topic("kp-sasl")
    common = {"topic": topic, "value": "over SASL", "securityProtocol": "SASL_PLAINTEXT"}
    ok, result = kafka_produce(tools, emulator, kafka_brokers_sasl=[kafka.sasl_bootstrap], user=kafka.state.sasl_user,
                               password=kafka.state.sasl_password, **common)  # messageHubProduce's names
    assert ok and result["success"], result
    assert only_record(kafka, topic).value == b"over SASL"
    ok, result = kafka_produce(tools, emulator, brokers=kafka.sasl_bootstrap, user=kafka.state.sasl_user,
                               password="wrong", **common)
    assert not ok
    assert result["error"].startswith("Authentication failed"), result


@pytest.mark.parametrize(("params", "expected"), [
    ({"topic": "t"}, "You must supply all of the following parameters: brokers, topic, value (missing: brokers, "
                     "value)"),
    ({"brokers": "b:1", "topic": "t", "value": "not base64!", "base64DecodeValue": True},
     "value parameter is not Base64 encoded"),
    ({"brokers": "b:1", "topic": "t", "value": "v", "key": "%%", "base64DecodeKey": True},
     "key parameter is not Base64 encoded"),
    ({"brokers": "b:1", "topic": "t", "value": "v", "base64DecodeValue": "maybe"},
     "parameter 'base64DecodeValue' must be true or false"),
    ({"brokers": "not a broker", "topic": "t", "value": "v"}, "parameter 'brokers' 'not a broker' is not host:port"),
    ({"brokers": "b:1", "topic": "t", "value": "v", "user": "u"},
     "parameter 'password' is required with securityProtocol=SASL_SSL"),
    ({"brokers": "b:1", "topic": "t", "value": "v", "securityProtocol": "TLS"},
     "parameter 'securityProtocol' must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
])
def test_bad_parameters_fail_the_activation_with_a_clear_error(params: dict, expected: str, messaging: Messaging,
                                                               tools, emulator) -> None:
    ok, result = kafka_produce(tools, emulator, **params)
    assert not ok
    assert result == {"error": expected}


def test_unreachable_brokers_and_unknown_topics_are_told_apart(messaging: Messaging, kafka: KafkaHandle, tools,
                                                               emulator) -> None:
    from local_stack.kafka import free_port

    ok, result = kafka_produce(tools, emulator, brokers=f"127.0.0.1:{free_port()}", topic="t", value="v")
    assert not ok
    assert result["error"].startswith("No brokers available. Check that your supplied brokers are correct")
    missing = unique("no-such-topic")
    ok, result = kafka_produce(tools, emulator, brokers=kafka.bootstrap, topic=missing, value="v")
    assert not ok
    assert f"topic '{missing}' did not become available" in result["error"]
    assert "create it first" in result["error"]
