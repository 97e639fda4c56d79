"""Topic names, trigger URLs and dead-letter headers: the Kafka-side contract of DESIGN.md sections 2 and 5.

The names are defaults; deployments may override them through settings. A dead-letter record
keeps the original record's key, value and headers, and adds the ``dl_*`` headers below. Their
values are UTF-8 text: ``dl_reason`` is an ``errors.Reason`` value, numbers are decimal, times are
epoch milliseconds. ``dead_letter_headers`` is the one encoder of that format.
"""

from urllib.parse import quote

from .errors import Reason

TRIGGER_MESSAGES_TOPIC = "openwhisk-trigger-messages"
SUBSCRIPTIONS_TOPIC = "openwhisk-trigger-subscriptions"  # compacted, one partition (see feed.records)
DEAD_LETTER_TOPIC = "openwhisk-trigger-dead-letters"
PARKED_SUFFIX = "-parked"  # the firer's park topic: <trigger-messages topic>-parked, as many partitions


def parked_topic(trigger_messages_topic: str) -> str:
    """The park topic of a trigger-messages topic (consumer/parking.py): the firer parks a throttled
    namespace's messages there, in the partition of the same number."""
    return trigger_messages_topic + PARKED_SUFFIX


# The subscriptions topic's shape is part of the contract (one partition: one order; compacted: the
# latest record per key is the state), so deploy and the router create it from this one spec.
SUBSCRIPTIONS_TOPIC_PARTITIONS = 1
SUBSCRIPTIONS_TOPIC_CONFIG = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}

DL_REASON = "dl_reason"  # an errors.Reason value, e.g. "not-json"
DL_DETAIL = "dl_detail"  # short human explanation, never a credential
DL_STATUS = "dl_status"  # the last HTTP status of the fire, absent if none was sent
DL_ATTEMPTS = "dl_attempts"  # how many fire requests were sent (0 for a bad message)
DL_FIRST_ATTEMPT_MS = "dl_first_attempt_ms"  # epoch ms of the first attempt (or of the rejection)
DL_LAST_ATTEMPT_MS = "dl_last_attempt_ms"  # epoch ms of the last attempt (or of the rejection)
DL_SOURCE_TOPIC = "dl_source_topic"
DL_SOURCE_PARTITION = "dl_source_partition"
DL_SOURCE_OFFSET = "dl_source_offset"
DL_TRIGGER = "dl_trigger"  # the router only: the subscribed trigger /ns/T the record was meant for

DEAD_LETTER_HEADERS = (
    DL_REASON,
    DL_DETAIL,
    DL_STATUS,
    DL_ATTEMPTS,
    DL_FIRST_ATTEMPT_MS,
    DL_LAST_ATTEMPT_MS,
    DL_SOURCE_TOPIC,
    DL_SOURCE_PARTITION,
    DL_SOURCE_OFFSET,
    DL_TRIGGER,
)


def trigger_url(apihost: str, namespace: str, name: str) -> str:
    """The controller's URL of a trigger (names quoted: they come from users)."""
    return f"{apihost.rstrip('/')}/api/v1/namespaces/{quote(namespace, safe='')}/triggers/{quote(name, safe='')}"


def dead_letter_headers(
    *,
    reason: Reason,
    detail: str,
    source_topic: str,
    source_partition: int,
    source_offset: int,
    first_attempt_ms: int,
    last_attempt_ms: int,
    attempts: int = 0,
    status: int | None = None,
    trigger: str | None = None,
) -> list[tuple[str, bytes]]:
    """The ``dl_*`` headers to append to the original record's headers."""
    values: list[tuple[str, object]] = [
        (DL_REASON, Reason(reason).value),
        (DL_DETAIL, detail),
        (DL_ATTEMPTS, attempts),
        (DL_FIRST_ATTEMPT_MS, first_attempt_ms),
        (DL_LAST_ATTEMPT_MS, last_attempt_ms),
        (DL_SOURCE_TOPIC, source_topic),
        (DL_SOURCE_PARTITION, source_partition),
        (DL_SOURCE_OFFSET, source_offset),
    ]
    if status is not None:
        values.insert(2, (DL_STATUS, status))
    if trigger is not None:
        values.append((DL_TRIGGER, trigger))
    return [(name, str(value).encode("utf-8", "replace")) for name, value in values]
