"""Operator command: put dead-lettered messages back on the trigger-messages topic.

    python -m consumer.replay [--reason R ...] [--since TIME] [--until TIME] [--dry-run]

After a cause is fixed (a trigger re-created, a key rotated, an outage over), replay the records
it dead-lettered. Records are selected by their dl_reason header and by when they were
dead-lettered (RFC 3339 or epoch ms); the original key, value and headers are written back
without the dead-letter headers, so the firer sees exactly what was first produced. Kafka
settings come from the same KAFKA_* variables as the consumer. Nothing is deleted from the
dead-letter topic: a second run replays the same records again (narrow it with --since).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from messaging_lib import topics
from messaging_lib.errors import ConfigError
from messaging_lib.kafka_config import KafkaSettings


@dataclass(frozen=True)
class Selection:
    reasons: frozenset[str]  # empty = every reason
    since_ms: int | None
    until_ms: int | None

    def matches(self, headers: dict[str, bytes], timestamp_ms: int) -> bool:
        reason = headers.get(topics.DL_REASON, b"").decode("utf-8", "replace")
        return ((not self.reasons or reason in self.reasons)
                and (self.since_ms is None or timestamp_ms >= self.since_ms)
                and (self.until_ms is None or timestamp_ms < self.until_ms))


def original_headers(headers: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    return [(k, v) for k, v in headers if k not in topics.DEAD_LETTER_HEADERS]


def parse_time(text: str) -> int:
    """RFC 3339 / ISO 8601 (with a zone) or epoch milliseconds -> epoch milliseconds."""
    if text.isdigit():
        return int(text)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone (add Z or +00:00)")
    return int(moment.timestamp() * 1000)


def dead_letters(consumer: KafkaConsumer, topic: str, since_ms: int | None) -> Iterator:
    """Every record of the topic from `since_ms` (or the beginning) to its current end."""
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    if not partitions:
        raise ConfigError("DEAD_LETTER_TOPIC", f"topic {topic!r} does not exist")
    consumer.assign(partitions)
    ends = consumer.end_offsets(partitions)
    starts = (consumer.offsets_for_times(dict.fromkeys(partitions, since_ms)) if since_ms is not None else {})
    for tp in partitions:
        found = starts.get(tp)
        consumer.seek(tp, found.offset if found is not None else (ends[tp] if since_ms is not None else 0))
    remaining = {tp for tp in partitions if consumer.position(tp) < ends[tp]}
    while remaining:
        for tp, records in consumer.poll(timeout_ms=1000).items():
            for record in records:
                if record.offset < ends[tp]:
                    yield record
            if consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m consumer.replay", description=__doc__.split("\n\n")[0])
    p.add_argument("--reason", action="append", default=[], help="replay only this dl_reason (repeatable)")
    p.add_argument("--since", help="dead-lettered at or after this time (RFC 3339 or epoch ms)")
    p.add_argument("--until", help="dead-lettered before this time (RFC 3339 or epoch ms)")
    p.add_argument("--dead-letter-topic", default=os.environ.get("DEAD_LETTER_TOPIC", topics.DEAD_LETTER_TOPIC))
    p.add_argument("--trigger-messages-topic",
                   default=os.environ.get("TRIGGER_MESSAGES_TOPIC", topics.TRIGGER_MESSAGES_TOPIC))
    p.add_argument("--dry-run", action="store_true", help="count what would be replayed, write nothing")
    args = p.parse_args(argv)
    try:
        selection = Selection(frozenset(args.reason), args.since and parse_time(args.since),
                              args.until and parse_time(args.until))
        settings = KafkaSettings.from_env({k: v for k, v in os.environ.items() if k.startswith("KAFKA_")}
                                          or {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092"})
        return replay(settings, args.dead_letter_topic, args.trigger_messages_topic, selection, args.dry_run)
    except (ConfigError, ValueError) as e:
        print(f"replay: error: {e}", file=sys.stderr)
        return 2


def replay(settings: KafkaSettings, source: str, target: str, selection: Selection, dry_run: bool) -> int:
    consumer = KafkaConsumer(**settings.client_kwargs(), enable_auto_commit=False, group_id=None)
    producer = None if dry_run else KafkaProducer(**settings.client_kwargs(), acks="all",
                                                  max_request_size=4 * 1024 * 1024)
    scanned = selected = 0
    try:
        for record in dead_letters(consumer, source, selection.since_ms):
            scanned += 1
            if not selection.matches(dict(record.headers or []), record.timestamp):
                continue
            selected += 1
            if producer is not None:
                producer.send(target, key=record.key, value=record.value,
                              headers=original_headers(list(record.headers or [])))
            if scanned % 1000 == 0:
                print(f"replay: scanned {scanned}, selected {selected}", file=sys.stderr)
        if producer is not None:
            producer.flush()
    finally:
        consumer.close()
        if producer is not None:
            producer.close()
    verb = "would replay" if dry_run else "replayed"
    print(f"replay: scanned {scanned} dead-letter records, {verb} {selected} to {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
