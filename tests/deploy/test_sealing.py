"""The sealing key's fingerprint and the decision a deploy makes with it (pure: a memory store; the
record on a real broker is in test_sealing_kafka.py)."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet

from consumer.subscriptions import SubscriptionIndex
from consumer.table import Change
from deploy import sealing
from deploy.errors import DeployError
from deploy.sealing import MemoryFingerprintStore, Recorded, decide, fingerprint

K1, K2, K3 = (Fernet.generate_key().decode() for _ in range(3))
TOPIC = "subs"


def recorded(key: str, deployment: str = "https://ow.example namespace team-a") -> Recorded:
    return Recorded(fingerprint(key), deployment, 1_700_000_000_000)


def test_the_fingerprint_tells_keys_apart_is_stable_and_does_not_contain_the_key() -> None:
    assert fingerprint(K1) == fingerprint(K1)
    assert len({fingerprint(K1), fingerprint(K2), fingerprint(K3)}) == 3
    assert len(fingerprint(K1)) == 32 and int(fingerprint(K1), 16) >= 0
    assert fingerprint(K1) not in K1 and K1 not in fingerprint(K1)


def test_the_record_round_trips_and_an_unknown_version_is_refused_not_guessed() -> None:
    rec = recorded(K1)
    assert sealing.decode(sealing.encode(rec)) == rec
    assert K1 not in sealing.encode(rec).decode()
    for value in (b'{"v": 2, "fingerprint": "ab"}', b"not json", b"\xff", b"[]", b'{"v": 1}'):
        with pytest.raises(DeployError, match=r"cannot be read.*--force-new-sealing-key"):
            sealing.decode(value)


def test_nothing_recorded_uses_the_given_keys_or_a_new_one_and_records_it() -> None:
    given = decide([K1, K2], "the key given", None, False, TOPIC)
    assert given.keys == (K1, K2) and given.record
    new = decide([], "a new key", None, False, TOPIC, new_key=lambda: K3)
    assert new.keys == (K3,) and new.record and "recorded the key's fingerprint on topic subs" in new.note


def test_the_recorded_key_first_is_used_as_it_is_without_a_write() -> None:
    decision = decide([K1], "the key kept in x", recorded(K1), False, TOPIC)
    assert decision.keys == (K1,) and not decision.record
    assert "team-a" in decision.note


def test_a_rotation_that_lists_the_recorded_key_records_the_new_first_key() -> None:
    decision = decide([K2, K1], "the key given", recorded(K1), False, TOPIC)
    assert decision.keys == (K2, K1) and decision.record and "rotation" in decision.note


def test_a_new_key_where_one_is_recorded_is_refused_with_how_to_share_it() -> None:
    with pytest.raises(DeployError) as refused:
        decide([], "a new key", recorded(K1), False, TOPIC, new_key=lambda: K3)
    message = str(refused.value)
    assert "the deployment to https://ow.example namespace team-a" in message
    assert "--sealing-keys" in message and "SEALING_KEYS" in message and "consumer-secrets.env" in message
    assert "bad-credential" in message and "--force-new-sealing-key" in message
    assert "\n" not in message and K1 not in message and K3 not in message


def test_a_key_that_does_not_match_is_refused_and_names_where_it_came_from() -> None:
    with pytest.raises(DeployError) as refused:
        decide([K2, K3], "the key kept in /state/consumer-secrets.env", recorded(K1), False, TOPIC)
    message = str(refused.value)
    assert message.startswith("the key kept in /state/consumer-secrets.env is not the sealing key")
    assert "consumer-secrets.env" in message and "rotate" in message and "--force-new-sealing-key" in message
    assert all(key not in message for key in (K1, K2, K3))


def test_force_replaces_the_recorded_fingerprint() -> None:
    assert decide([K2], "the key given", recorded(K1), True, TOPIC).record
    forced_new = decide([], "a new key", recorded(K1), True, TOPIC, new_key=lambda: K3)
    assert forced_new.keys == (K3,) and forced_new.record


def test_choose_writes_only_when_the_decision_says_so() -> None:
    store, said = MemoryFingerprintStore(), []
    first = sealing.choose(store, "", "a new key", "https://ow namespace a", False, TOPIC, said.append,
                           clock_ms=lambda: 5)
    assert store.recorded == Recorded(fingerprint(first), "https://ow namespace a", 5) and store.writes == 1
    assert sealing.choose(store, first, "the key kept", "https://ow namespace a", False, TOPIC, said.append) == first
    assert store.writes == 1
    rotated = sealing.choose(store, f"{K2}, {first}", "the key given", "https://ow namespace b", False, TOPIC,
                             said.append)
    assert rotated == f"{K2},{first}" and store.recorded is not None
    assert store.recorded.fingerprint == fingerprint(K2) and store.writes == 2
    with pytest.raises(DeployError, match="the consumers on this Kafka"):
        sealing.choose(store, "", "a new key", "https://ow namespace c", False, TOPIC, said.append)
    assert store.writes == 2 and len(said) == 3


def test_a_malformed_key_list_is_named_not_echoed() -> None:
    with pytest.raises(DeployError) as refused:
        sealing.choose(MemoryFingerprintStore(), "not-a-fernet-key", "the key given", "", False, TOPIC, print)
    assert "SEALING_KEYS" in str(refused.value) and "not-a-fernet-key" not in str(refused.value)


def test_the_router_ignores_the_reserved_key_in_the_subscriptions_topic() -> None:
    """The record shares the subscriptions topic: the router's table must skip it, not count it bad."""
    index = SubscriptionIndex()
    value = sealing.encode(recorded(K1))
    assert json.loads(value)["v"] == 1
    assert index.apply(Change(7, sealing.RECORD_KEY, value)) is None
    assert index.apply(Change(8, sealing.RECORD_KEY, None)) is None
    assert len(index) == 0 and index.skipped == 0 and index.applied == 8
