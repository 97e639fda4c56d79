"""The topic specs of a deployment and the check of an existing topic against its spec (pure: the
creating and checking against a real broker is in test_deploy.py)."""

from __future__ import annotations

from deploy.topics import TopicSpec, contract_problem, existing_note, topic_specs
from messaging_lib import topics

SPECS = topic_specs(trigger_messages_topic="tm", subscriptions_topic="subs", dead_letter_topic="dl", partitions=12,
                    retention_hours=168, dead_letter_partitions=3, dead_letter_retention_days=14,
                    dead_letter_max_message_bytes=2 * 1024 * 1024)
TRIGGER_MESSAGES, PARKED, SUBSCRIPTIONS, DEAD_LETTERS = SPECS


def test_four_topics_in_creation_order() -> None:
    assert [spec.name for spec in SPECS] == ["tm", "tm-parked", "subs", "dl"]


def test_the_park_topic_has_the_trigger_messages_partitions_and_retention() -> None:
    assert PARKED.partitions == TRIGGER_MESSAGES.partitions == 12
    assert PARKED.config == TRIGGER_MESSAGES.config and PARKED.required == {}


def test_trigger_messages_are_deleted_after_their_retention() -> None:
    assert TRIGGER_MESSAGES.partitions == 12
    assert TRIGGER_MESSAGES.config == {"cleanup.policy": "delete", "retention.ms": str(168 * 3600 * 1000)}
    assert not TRIGGER_MESSAGES.exact_partitions and TRIGGER_MESSAGES.required == {}


def test_the_subscriptions_topic_is_the_one_shared_spec_and_its_shape_is_required() -> None:
    assert SUBSCRIPTIONS.partitions == topics.SUBSCRIPTIONS_TOPIC_PARTITIONS == 1
    assert SUBSCRIPTIONS.config == topics.SUBSCRIPTIONS_TOPIC_CONFIG
    assert SUBSCRIPTIONS.exact_partitions
    assert SUBSCRIPTIONS.required == {"cleanup.policy": "compact"}


def test_dead_letters_keep_their_retention_and_message_size() -> None:
    assert DEAD_LETTERS.partitions == 3
    assert DEAD_LETTERS.config == {"cleanup.policy": "delete", "retention.ms": str(14 * 24 * 3600 * 1000),
                                   "max.message.bytes": str(2 * 1024 * 1024)}


def test_a_subscriptions_topic_with_more_partitions_is_refused_with_what_to_do() -> None:
    problem = contract_problem(SUBSCRIPTIONS, 2, {"cleanup.policy": "compact"})
    assert problem == ("topic subs has 2 partitions but must have exactly 1: delete it (its subscriptions go with "
                       "it) and deploy again")


def test_a_missing_required_setting_is_refused_with_the_command_that_fixes_it() -> None:
    problem = contract_problem(SUBSCRIPTIONS, 1, {"cleanup.policy": "delete"})
    assert problem == ("topic subs exists but has cleanup.policy='delete' (needs compact); fix it: kafka-configs.sh "
                       "--alter --entity-type topics --entity-name subs --add-config cleanup.policy=compact")


def test_a_required_value_may_be_one_item_of_a_list() -> None:
    assert contract_problem(SUBSCRIPTIONS, 1, {"cleanup.policy": "compact,delete"}) is None


def test_capacity_partitions_are_not_a_contract() -> None:
    assert contract_problem(TRIGGER_MESSAGES, 4, {"cleanup.policy": "compact"}) is None
    assert existing_note(TRIGGER_MESSAGES, 12) == "topic tm exists (12 partitions), left as it is"
    note = existing_note(TRIGGER_MESSAGES, 4)
    assert note.startswith("topic tm exists (4 partitions), left as it is; note: 4 partitions, fewer than the 12")
    assert "kafka-topics.sh --alter" in note


def test_a_spec_is_a_value() -> None:
    spec = TopicSpec("t", 1, {}, {}, "why")
    assert spec == TopicSpec("t", 1, {}, {}, "why")
    assert not spec.exact_partitions
