"""Dead-letter records: the original bytes plus headers that say why (DESIGN.md section 5).

A message is dead-lettered when it is bad (it can never fire), when OpenWhisk refused it
permanently, or when its retries ran past the maximum age (firer); a record is, when it is over
the payload limit or its subscription is disabled (router, with ``trigger`` set). Both loops
build the record here, so its headers have one format. The record keeps the original key,
value and headers, so `python -m consumer.replay` can put it back unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from consumer.kafka_rd import Producer
from consumer.kafka_shared import Record
from messaging_lib import topics
from messaging_lib.errors import Reason


@dataclass(frozen=True)
class DeadLetter:
    record: Record
    reason: Reason
    detail: str
    status: int | None = None
    attempts: int = 0
    first_attempt_ms: int | None = None  # None: rejected without an attempt, now
    last_attempt_ms: int | None = None
    trigger: str | None = None  # the subscription's trigger (dl_trigger), when a router dead-letters


def record_headers(dl: DeadLetter) -> list[tuple[str, bytes]]:
    """The original headers (minus dead-letter headers of an earlier round), then ours."""
    now_ms = int(time.time() * 1000)
    ours = topics.dead_letter_headers(
        reason=dl.reason, detail=dl.detail[:1000], source_topic=dl.record.topic,
        source_partition=dl.record.partition, source_offset=dl.record.offset,
        first_attempt_ms=dl.first_attempt_ms or now_ms, last_attempt_ms=dl.last_attempt_ms or now_ms,
        attempts=dl.attempts, status=dl.status, trigger=dl.trigger)
    return [(k, v) for k, v in dl.record.headers if k not in topics.DEAD_LETTER_HEADERS] + ours


async def write(producer: Producer, topic: str, dl: DeadLetter) -> None:
    """Returns only once the broker acknowledged the record, so its offset may then be committed."""
    await producer.send(topic, dl.record.value, key=dl.record.key, headers=record_headers(dl))
