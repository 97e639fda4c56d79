"""Kafka settings: environment and action parameters, validation naming the variable, kwargs (kafka-python's
and librdkafka's)."""

import ssl
from typing import Any

import confluent_kafka
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from messaging_lib.errors import ConfigError
from messaging_lib.kafka_config import KafkaSettings

SASL_ENV = {
    "KAFKA_BOOTSTRAP_SERVERS": "broker-1:9093, broker-2:9093",
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "alice",
    "KAFKA_SASL_PASSWORD": "s3cret-password",
    "KAFKA_SSL_CAFILE": "/etc/ca.pem",
    "KAFKA_CLIENT_ID": "firer-1",
}


def test_the_minimal_environment() -> None:
    settings_ = KafkaSettings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092"})
    assert settings_ == KafkaSettings(bootstrap_servers=("127.0.0.1:9092",))
    assert settings_.client_kwargs() == {"bootstrap_servers": ["127.0.0.1:9092"], "security_protocol": "PLAINTEXT"}


def test_a_full_sasl_ssl_environment() -> None:
    settings_ = KafkaSettings.from_env(SASL_ENV)
    assert settings_.bootstrap_servers == ("broker-1:9093", "broker-2:9093")
    assert settings_.client_kwargs() == {
        "bootstrap_servers": ["broker-1:9093", "broker-2:9093"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice",
        "sasl_plain_password": "s3cret-password",
        "ssl_cafile": "/etc/ca.pem",
        "client_id": "firer-1",
    }


def test_librdkafka_gets_the_same_settings_under_its_own_names() -> None:
    """The router's reader and the producer (confluent-kafka) connect as kafka-python's clients do."""
    assert KafkaSettings(bootstrap_servers=("127.0.0.1:9092",)).librdkafka_config() == {
        "bootstrap.servers": "127.0.0.1:9092", "security.protocol": "PLAINTEXT"}
    assert KafkaSettings.from_env(SASL_ENV).librdkafka_config() == {
        "bootstrap.servers": "broker-1:9093,broker-2:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "alice",
        "sasl.password": "s3cret-password",
        "ssl.ca.location": "/etc/ca.pem",
        "client.id": "firer-1",
    }


@pytest.mark.parametrize("env", [
    {"KAFKA_BOOTSTRAP_SERVERS": "b:1", "KAFKA_SECURITY_PROTOCOL": "SSL"},
    {"KAFKA_BOOTSTRAP_SERVERS": "b:1", "KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/ca.pem"},
    {"KAFKA_BOOTSTRAP_SERVERS": "b:1", "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_USERNAME": "u",
     "KAFKA_SASL_PASSWORD": "p"},
    {"KAFKA_BOOTSTRAP_SERVERS": "b:1", "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
     "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"},
], ids=["ssl", "ssl-ca", "sasl-plain", "sasl-ssl-scram256"])
def test_librdkafka_accepts_every_kind_of_setting(env: dict[str, str]) -> None:
    """librdkafka itself checks the names and values (creating a client connects later, in the
    background), so a name or value it does not know fails here, not in a deployment."""
    config = KafkaSettings.from_env(env).librdkafka_config()
    if "ssl.ca.location" in config:  # a readable bundle: librdkafka loads it when the client is made
        config["ssl.ca.location"] = ssl.get_default_verify_paths().openssl_cafile
    confluent_kafka.Producer(config).flush(0)


def test_the_password_is_masked_in_the_repr() -> None:
    shown = repr(KafkaSettings.from_env(SASL_ENV))
    assert "s3cret-password" not in shown
    assert "sasl_password='***'" in shown
    assert "sasl_password=None" in repr(KafkaSettings(bootstrap_servers=("b:1",)))


def test_values_are_normalized_and_empty_means_unset() -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": " a:1 ,, b ,[::1]:9092",
        "KAFKA_SECURITY_PROTOCOL": " sasl_plaintext ",
        "KAFKA_SASL_MECHANISM": "",
        "KAFKA_SASL_USERNAME": "u",
        "KAFKA_SASL_PASSWORD": "p",
        "KAFKA_CLIENT_ID": "",
    }
    settings_ = KafkaSettings.from_env(env)
    assert settings_.bootstrap_servers == ("a:1", "b", "[::1]:9092")
    assert settings_.security_protocol == "SASL_PLAINTEXT"
    assert settings_.sasl_mechanism == "PLAIN"  # the default for SASL
    assert settings_.client_id is None


def test_another_prefix() -> None:
    settings_ = KafkaSettings.from_env(
        {"USER_KAFKA_BOOTSTRAP_SERVERS": "x:1", "KAFKA_BOOTSTRAP_SERVERS": "y:2"}, prefix="USER_KAFKA_"
    )
    assert settings_.bootstrap_servers == ("x:1",)


def test_action_parameters() -> None:
    params = {key.lower(): value for key, value in SASL_ENV.items()} | {"unrelated": 5}
    assert KafkaSettings.from_params(params) == KafkaSettings.from_env(SASL_ENV)
    as_list = KafkaSettings.from_params({"kafka_bootstrap_servers": ["a:1", "b:2"]})
    assert as_list.bootstrap_servers == ("a:1", "b:2")


def test_direct_construction_is_validated_and_normalized() -> None:
    built = KafkaSettings(bootstrap_servers="a:1,b:2", security_protocol="ssl")  # type: ignore[arg-type]
    assert built.bootstrap_servers == ("a:1", "b:2") and built.security_protocol == "SSL"
    with pytest.raises(ConfigError) as info:
        KafkaSettings(bootstrap_servers=())
    assert info.value.variable == "bootstrap_servers"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "KAFKA_BOOTSTRAP_SERVERS"),
        ({"KAFKA_BOOTSTRAP_SERVERS": " , "}, "KAFKA_BOOTSTRAP_SERVERS"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "a:99999"}, "KAFKA_BOOTSTRAP_SERVERS"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "a:0"}, "KAFKA_BOOTSTRAP_SERVERS"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "a:port"}, "KAFKA_BOOTSTRAP_SERVERS"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "a b:1"}, "KAFKA_BOOTSTRAP_SERVERS"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "http://a:1"}, "KAFKA_BOOTSTRAP_SERVERS"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "a:1", "KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
        (SASL_ENV | {"KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM"),
        (SASL_ENV | {"KAFKA_SASL_MECHANISM": "OAUTHBEARER"}, "KAFKA_SASL_MECHANISM"),
        (SASL_ENV | {"KAFKA_SASL_USERNAME": ""}, "KAFKA_SASL_USERNAME"),
        ({k: v for k, v in SASL_ENV.items() if k != "KAFKA_SASL_PASSWORD"}, "KAFKA_SASL_PASSWORD"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "a:1", "KAFKA_SASL_USERNAME": "u"}, "KAFKA_SASL_USERNAME"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "a:1", "KAFKA_SASL_PASSWORD": "p"}, "KAFKA_SASL_PASSWORD"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "a:1", "KAFKA_SASL_MECHANISM": "PLAIN"}, "KAFKA_SASL_MECHANISM"),
        (SASL_ENV | {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "KAFKA_SSL_CAFILE"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "a:1", "KAFKA_SSL_CAFILE": "/ca.pem"}, "KAFKA_SSL_CAFILE"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        KafkaSettings.from_env(env)
    assert info.value.variable == variable
    assert "s3cret-password" not in str(info.value)


@pytest.mark.parametrize(
    ("params", "variable"),
    [
        ({}, "kafka_bootstrap_servers"),
        ({"kafka_bootstrap_servers": 9092}, "kafka_bootstrap_servers"),
        ({"kafka_bootstrap_servers": ["a:1", 2]}, "kafka_bootstrap_servers"),
        ({"kafka_bootstrap_servers": "a:1", "kafka_security_protocol": True}, "kafka_security_protocol"),
        ({"kafka_bootstrap_servers": "a:1", "kafka_security_protocol": "SASL_SSL"}, "kafka_sasl_username"),
    ],
)
def test_bad_parameters_name_the_parameter(params: dict[str, Any], variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        KafkaSettings.from_params(params)
    assert info.value.variable == variable


NAMES = [
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CAFILE",
    "KAFKA_CLIENT_ID",
]
values = st.text(max_size=12) | st.sampled_from(["a:1", "SASL_SSL", "SSL", "PLAIN", "SCRAM-SHA-256", ""])


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(NAMES), values))
def test_any_environment_gives_settings_or_a_config_error(env: dict[str, str]) -> None:
    try:
        settings_ = KafkaSettings.from_env(env)
    except ConfigError as exc:
        assert exc.variable in NAMES
    else:
        assert KafkaSettings(**{f: getattr(settings_, f) for f in settings_.__dataclass_fields__}) == settings_
        assert settings_.client_kwargs()["bootstrap_servers"]
