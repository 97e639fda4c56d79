"""kafkaFeed's web action reads through the routers' API only when the operator bound its URL."""

from __future__ import annotations

from cryptography.fernet import Fernet

from actions.web import feed
from feed.store import KafkaStore, RouterStore

BOUND = {"kafka_bootstrap_servers": "127.0.0.1:9", "sealing_keys": Fernet.generate_key().decode()}


def test_no_url_bound_reads_the_topic_as_before() -> None:
    for unbound in ({}, {"subscriptions_api_url": ""}, {"subscriptions_api_url": "  "}):
        assert type(feed._store({**BOUND, **unbound})) is KafkaStore


def test_a_bound_url_asks_the_routers_first() -> None:
    store = feed._store({**BOUND, "subscriptions_api_url": "http://messaging-consumer:8080/"})
    assert isinstance(store, RouterStore) and store.bootstrap_servers == {"127.0.0.1:9"}


def test_without_sealing_keys_nothing_can_sign_so_the_topic_is_read() -> None:
    assert type(feed._store({**BOUND, "sealing_keys": "", "subscriptions_api_url": "http://r:8080"})) is KafkaStore
