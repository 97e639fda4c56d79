"""The topic policy (feed.grants): grant records, the one decision, and the lifecycle refusing with it."""

from __future__ import annotations

import pytest

from feed import grants, records
from feed.errors import FeedError
from feed.grants import Grant, TopicPolicy
from feed.lifecycle import Lifecycle
from feed.store import MemoryStore
from messaging_lib.errors import ConfigError, RecordError
from tests.feed.test_lifecycle import FakeCaller

POLICY = TopicPolicy()
NOT_GRANTED = ("The topic bob-private is not granted to the namespace alice. Ask the operator of the messaging "
               "service for a grant (./deploy.sh grant add --namespace alice --topic bob-private).")


def test_grant_keys_name_exact_topics_and_prefixes_apart() -> None:
    exact, prefix = Grant("alice", "orders"), Grant("alice", "orders", prefix=True)
    assert (exact.key, prefix.key) == (b"grant:alice:orders", b"grant:alice:orders*")
    assert grants.parse_grant_key(prefix.key) == prefix
    assert grants.decode_grant(exact.key, grants.encode_grant(exact, 5)) == exact
    assert records.parse_key(exact.key) is None, "the router's subscriptions index ignores grant records"


@pytest.mark.parametrize("key, value", [
    (b"grant:alice:orders", b'{"v":1,"namespace":"bob","topic":"orders","prefix":false,"added_ms":1}'),
    (b"grant:alice:orders", b'{"v":2}'),
    (b"grant:alice:or ders", b'{"v":1,"namespace":"alice","topic":"or ders","prefix":false,"added_ms":1}'),
    (b"grant:_:orders", b'{"v":1,"namespace":"_","topic":"orders","prefix":false,"added_ms":1}'),
    (b"grant:alice", b"{}"),
])
def test_a_grant_record_that_does_not_agree_with_its_key_grants_nothing(key: bytes, value: bytes) -> None:
    with pytest.raises(RecordError):
        grants.decode_grant(key, value)
    assert grants.grants_from({key: (0, value)}) == []


def test_by_default_nothing_is_granted() -> None:
    assert grants.refusal(POLICY, "alice", "bob-private", []) == NOT_GRANTED


def test_explicit_grants_cover_their_namespace_only() -> None:
    held = [Grant("alice", "shared"), Grant("alice", "feeds.", prefix=True)]
    assert grants.refusal(POLICY, "alice", "shared", held) is None
    assert grants.refusal(POLICY, "alice", "feeds.prices", held) is None
    assert grants.refusal(POLICY, "alice", "shared2", held) is not None
    assert grants.refusal(POLICY, "bob", "shared", held) is not None


def test_the_prefix_rule_gives_each_namespace_its_own_names() -> None:
    policy = TopicPolicy(prefix_pattern="{namespace}.")
    assert grants.refusal(policy, "alice", "alice.orders", []) is None
    assert grants.refusal(policy, "alice", "bob.orders", []) == (
        "The topic bob.orders is not granted to the namespace alice. Ask the operator of the messaging service for "
        "a grant (./deploy.sh grant add --namespace alice --topic bob.orders), or use a topic whose name starts "
        "with alice.")


@pytest.mark.parametrize("topic, reason", [
    ("openwhisk-trigger-messages", "it is one of the messaging service's own topics."),
    ("openwhisk-trigger-subscriptions", "it is one of the messaging service's own topics."),
    ("openwhisk-trigger-dead-letters", "it is one of the messaging service's own topics."),
    ("__consumer_offsets", "topics whose names start with __ are Kafka's internal topics."),
    ("__anything", "topics whose names start with __ are Kafka's internal topics."),
])
def test_service_and_internal_topics_are_never_subscribable_whatever_the_grants(topic: str, reason: str) -> None:
    everything = [Grant("alice", "", prefix=True), Grant("alice", topic)]
    policy = TopicPolicy(prefix_pattern="")
    assert grants.refusal(policy, "alice", topic, everything) == f"The topic {topic} cannot be subscribed to: {reason}"


def test_the_policy_reads_the_deployments_topic_names_and_pattern() -> None:
    policy = TopicPolicy.from_settings({"trigger_messages_topic": "tm", "subscriptions_topic": "",
                                        "dead_letter_topic": "dl", "topic_prefix_pattern": "{namespace}-"})
    assert policy.service_topics == {"tm", "dl", "openwhisk-trigger-subscriptions"}
    assert policy.prefix_of("alice") == "alice-"
    assert TopicPolicy.from_settings({"topic_prefix_pattern": ""}).prefix_pattern is None
    with pytest.raises(ConfigError, match=r"topic_prefix_pattern: must contain \{namespace\}"):
        TopicPolicy.from_settings({"topic_prefix_pattern": "shared."})


def test_the_router_asks_whether_a_subscription_is_still_allowed() -> None:
    held = [Grant("alice", "shared")]
    assert grants.still_allowed(POLICY, "/alice/T", "shared", held) is None
    assert grants.still_allowed(POLICY, "/alice/T", "shared", []) == (
        "Disabled: no grant covers this subscription's topic any more. The topic shared is not granted to the "
        "namespace alice. Ask the operator of the messaging service for a grant (./deploy.sh grant add "
        "--namespace alice --topic shared).")
    assert grants.still_allowed(POLICY, "/alice/T", "__consumer_offsets", held) == (
        "The topic __consumer_offsets cannot be subscribed to: topics whose names start with __ are Kafka's "
        "internal topics.")
    assert grants.still_allowed(POLICY, "not-a-trigger", "shared", held) is not None


# --- the lifecycle with the policy --------------------------------------------------------------


def lifecycle(store: MemoryStore) -> Lifecycle:
    return Lifecycle(lambda: store, FakeCaller(), lambda: 1_000, POLICY)


def store_with(*topic_names: str) -> MemoryStore:
    store = MemoryStore()
    for name in topic_names:
        store.add_topic(name)
    return store


def grant(store: MemoryStore, namespace: str, topic: str, prefix: bool = False) -> None:
    given = Grant(namespace, topic, prefix)
    store.write(given.key, grants.encode_grant(given, 1))


def test_create_refuses_an_ungranted_topic_with_a_403_naming_it() -> None:
    store = store_with("bob-private")
    with pytest.raises(FeedError) as caught:
        lifecycle(store).handle("CREATE", "/alice/T", {"topic": "bob-private"})
    assert (caught.value.status, str(caught.value)) == (403, NOT_GRANTED)
    assert store.records == []


def test_create_refuses_the_service_topics_even_with_a_grant() -> None:
    store = store_with("openwhisk-trigger-messages")
    grant(store, "alice", "", prefix=True)
    with pytest.raises(FeedError) as caught:
        lifecycle(store).handle("CREATE", "/alice/T", {"topic": "openwhisk-trigger-messages"})
    assert (caught.value.status, str(caught.value)) == (
        403, "The topic openwhisk-trigger-messages cannot be subscribed to: it is one of the messaging service's own "
             "topics.")


def test_a_grant_allows_create_and_its_revocation_shows_disabled_in_read_and_refuses_update() -> None:
    store = store_with("shared")
    grant(store, "alice", "shared")
    feed = lifecycle(store)
    assert feed.handle("CREATE", "/alice/T", {"topic": "shared"})["status"] == "active"
    assert feed.handle("READ", "/alice/T", {})["status"]["active"] is True
    store.write(Grant("alice", "shared").key, None)  # revoke
    status = feed.handle("READ", "/alice/T", {})["status"]
    assert (status["active"], status["state"], status["reason"]["statusCode"]) == (False, "disabled", 403)
    assert status["reason"]["message"].startswith("Disabled: no grant covers this subscription's topic any more.")
    with pytest.raises(FeedError) as caught:
        feed.handle("UPDATE", "/alice/T", {"isJSONData": True})
    assert caught.value.status == 403
    assert feed.handle("DELETE", "/alice/T", {}) == {"triggerName": "/alice/T", "deleted": True}


def test_another_namespaces_grant_does_not_help() -> None:
    store = store_with("shared")
    grant(store, "bob", "shared")
    grant(store, "alicex", "shared")
    with pytest.raises(FeedError):
        lifecycle(store).handle("CREATE", "/alice/T", {"topic": "shared"})
