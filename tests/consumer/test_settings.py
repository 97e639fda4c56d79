"""Settings: flag over environment over default; bad values named; secrets never shown."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from consumer.settings import Settings, load, parser
from messaging_lib.errors import ConfigError

KEY = Fernet.generate_key().decode()


def test_flag_wins_over_environment_which_wins_over_default() -> None:
    env = {"SEALING_KEYS": KEY, "MAX_IN_FLIGHT": "100", "FIRE_TIMEOUT_S": "2.5"}
    settings = load(["--max-in-flight", "7"], env)
    assert settings.max_in_flight == 7
    assert settings.fire_timeout_s == 2.5
    assert settings.max_concurrent_fires == Settings.__dataclass_fields__["max_concurrent_fires"].default


def test_kafka_settings_come_from_kafka_variables() -> None:
    settings = load([], {"SEALING_KEYS": KEY, "KAFKA_BOOTSTRAP_SERVERS": "a:1,b:2",
                         "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "PLAIN",
                         "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "hunter2"})
    assert settings.kafka.client_kwargs()["bootstrap_servers"] == ["a:1", "b:2"]
    assert "hunter2" not in repr(settings)
    assert KEY not in repr(settings)


@pytest.mark.parametrize(("env", "named"), [
    ({}, "SEALING_KEYS"),
    ({"SEALING_KEYS": "not-a-key"}, "SEALING_KEYS"),
    ({"SEALING_KEYS": KEY, "MAX_IN_FLIGHT": "lots"}, "MAX_IN_FLIGHT"),
    ({"SEALING_KEYS": KEY, "MAX_IN_FLIGHT": "0"}, "MAX_IN_FLIGHT"),
    ({"SEALING_KEYS": KEY, "ROLES": "firer,juggler"}, "ROLES"),
    ({"SEALING_KEYS": KEY, "ROUTER_MAX_IN_FLIGHT": "0"}, "ROUTER_MAX_IN_FLIGHT"),
])
def test_bad_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as error:
        load([], env)
    assert error.value.variable == named
    assert KEY not in str(error.value)


def test_help_lists_every_setting_with_its_environment_name() -> None:
    text = " ".join(parser().format_help().split())
    for name in Settings.__dataclass_fields__:
        if name != "kafka":
            assert f"env {name.upper()}" in text
    assert "KAFKA_BOOTSTRAP_SERVERS" in text


def test_allow_list_defaults_to_the_configured_apihost() -> None:
    settings = load([], {"SEALING_KEYS": KEY, "OPENWHISK_APIHOST": "https://ow.example/"})
    assert settings.allowed_apihosts == {"https://ow.example"}


def test_a_router_alone_needs_the_sealing_keys_too() -> None:
    """It re-seals each subscription's credential into the envelopes it writes."""
    with pytest.raises(ConfigError, match="SEALING_KEYS"):
        load([], {"ROLES": "router", "SUBSCRIPTIONS_TOPIC": "subs"})
    settings = load([], {"ROLES": "router", "SUBSCRIPTIONS_TOPIC": "subs", "SEALING_KEYS": KEY})
    assert settings.role_set == {"router"} and settings.subscriptions_topic == "subs"


def test_a_malformed_legacy_cut_off_is_refused_with_its_name() -> None:
    with pytest.raises(ConfigError, match="LEGACY_CREDENTIALS_UNTIL"):
        load([], {"SEALING_KEYS": KEY, "LEGACY_CREDENTIALS_UNTIL": "next tuesday"})


def test_membership_settings_reach_both_roles_with_their_own_instance_id() -> None:
    settings = load(["--kafka-session-timeout-ms", "6000"], {
        "SEALING_KEYS": KEY, "KAFKA_HEARTBEAT_INTERVAL_MS": "500", "KAFKA_BOOTSTRAP_SERVERS": "a:1",
        "CONSUMER_INSTANCE_ID": "pod-7"})
    assert settings.kafka.client_kwargs()["bootstrap_servers"] == ["a:1"]  # our KAFKA_* do not go to KafkaSettings
    assert settings.membership("firer") == {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500,
                                            "max_poll_interval_ms": 300_000, "request_timeout_ms": 15_000,
                                            "reconnect_backoff_max_ms": 1000, "group_instance_id": "pod-7-firer"}
    assert settings.membership("router")["group_instance_id"] == "pod-7-router"
    dynamic = load([], {"SEALING_KEYS": KEY})
    assert "group_instance_id" not in dynamic.membership("firer")
    assert (dynamic.kafka_session_timeout_ms, dynamic.kafka_heartbeat_interval_ms) == (10_000, 1_000)


@pytest.mark.parametrize(("env", "named"), [
    ({"KAFKA_SESSION_TIMEOUT_MS": "0"}, "KAFKA_SESSION_TIMEOUT_MS"),
    ({"KAFKA_SESSION_TIMEOUT_MS": "2000", "KAFKA_HEARTBEAT_INTERVAL_MS": "1000"}, "KAFKA_HEARTBEAT_INTERVAL_MS"),
])
def test_membership_settings_are_checked(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as error:
        load([], {"SEALING_KEYS": KEY, **env})
    assert error.value.variable == named
