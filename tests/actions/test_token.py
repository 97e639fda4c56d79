"""token's answer: where to produce (bootstrap servers and topic) next to the credential, and no
setting of the service's Kafka besides the servers. The OpenWhisk ownership check is stood in for
(it is exercised end to end in tests/e2e and tests/docs); everything else is the real action code."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet

from actions.web import support, token
from feed.errors import FeedError

GUEST_KEY = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:" + "k" * 64
SECRET = "sasl-secret-of-the-service"


@pytest.fixture
def params(monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setattr(support, "check_trigger_access", lambda who, namespace, trigger: None)
    return {"authKey": GUEST_KEY, "callerNamespace": "guest", "trigger": "myTrigger",
            "sealing_keys": Fernet.generate_key().decode(),
            "kafka_bootstrap_servers": "kafka-internal-0:9093, kafka-internal-1:9093",
            "kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "messaging",
            "kafka_sasl_password": SECRET}


def test_the_answer_says_where_to_produce_and_shows_no_kafka_secret(params: dict) -> None:
    answer = token.token(params)
    assert list(answer) == ["credential", "scope", "bootstrap_servers", "ttl", "expires", "topic", "key", "envelope"]
    assert answer["bootstrap_servers"] == "kafka-internal-0:9093,kafka-internal-1:9093"
    assert (answer["topic"], answer["key"], answer["scope"]) == ("openwhisk-trigger-messages", "/guest/myTrigger",
                                                                 ["/guest/myTrigger"])
    shown = json.dumps(answer)
    assert SECRET not in shown and "messaging" not in shown and GUEST_KEY.split(":")[1] not in shown


@pytest.mark.parametrize(("bound", "shown"), [
    ("kafka.example.com:9094", "kafka.example.com:9094"),
    (" a:1 , b:2 ,", "a:1,b:2"),
    ("", "kafka-internal-0:9093,kafka-internal-1:9093"),
    (None, "kafka-internal-0:9093,kafka-internal-1:9093"),
])
def test_the_operators_external_bootstrap_wins_over_the_web_actions_own(params: dict, bound: str | None,
                                                                         shown: str) -> None:
    answer = token.token({**params, "external_kafka_bootstrap_servers": bound, "trigger_messages_topic": "tm"})
    assert (answer["bootstrap_servers"], answer["topic"]) == (shown, "tm")


@pytest.mark.parametrize("bound", [" , ", 9094, ["a:1"]])
def test_a_malformed_external_bootstrap_is_the_operators_error(params: dict, bound: object) -> None:
    with pytest.raises(FeedError) as caught:
        token.token({**params, "external_kafka_bootstrap_servers": bound})
    assert caught.value.status == 503 and "external_kafka_bootstrap_servers" in str(caught.value)
