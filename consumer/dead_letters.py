"""Dead-letter records: the original bytes plus headers that say why (DESIGN.md section 5).

A message is dead-lettered when it is bad (it can never fire), when OpenWhisk refused it
permanently, or when its retries ran past the maximum age. The record keeps the original key,
value and headers, so `python -m consumer.replay` can put it back unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from consumer.kafka_io import Producer, Record
from messaging_lib import topics


@dataclass(frozen=True)
class DeadLetter:
    record: Record
    reason: str
    detail: str
    status: int | None = None
    attempts: int = 0
    first_attempt_ms: int | None = None
    last_attempt_ms: int | None = None


def dead_letter_headers(dl: DeadLetter) -> list[tuple[str, bytes]]:
    """The original headers, then ours (ours replace any earlier dead-letter headers)."""
    ours = {
        topics.DL_REASON: dl.reason,
        topics.DL_DETAIL: dl.detail[:1000],
        topics.DL_STATUS: "" if dl.status is None else str(dl.status),
        topics.DL_ATTEMPTS: str(dl.attempts),
        topics.DL_FIRST_ATTEMPT_MS: "" if dl.first_attempt_ms is None else str(dl.first_attempt_ms),
        topics.DL_LAST_ATTEMPT_MS: "" if dl.last_attempt_ms is None else str(dl.last_attempt_ms),
        topics.DL_SOURCE_TOPIC: dl.record.topic,
        topics.DL_SOURCE_PARTITION: str(dl.record.partition),
        topics.DL_SOURCE_OFFSET: str(dl.record.offset),
    }
    kept = [(k, v) for k, v in dl.record.headers if k not in ours]
    return kept + [(k, v.encode()) for k, v in ours.items()]


async def write(producer: Producer, topic: str, dl: DeadLetter) -> None:
    """Returns only once the broker acknowledged the record, so its offset may then be committed."""
    await producer.send(topic, dl.record.value, key=dl.record.key, headers=dead_letter_headers(dl))
