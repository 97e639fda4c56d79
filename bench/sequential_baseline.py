"""The baseline the firer is measured against: the old provider's model.

One message at a time: poll one record, fire it with a plain `requests` session, commit the
offset synchronously, repeat. It parses and opens envelopes with the same library as the firer,
so the comparison isolates the firing model, not the parsing.
"""

from __future__ import annotations

import threading
import time
import uuid

import requests
from kafka import KafkaConsumer

from messaging_lib import envelope
from messaging_lib.credentials import Sealer
from messaging_lib.topics import trigger_url


def run(bootstrap: str, topic: str, apihost: str, sealing_key: str, max_messages: int, max_seconds: float,
        stop: threading.Event | None = None) -> tuple[int, float]:
    """Fire until max_messages or max_seconds; returns (fired, seconds from first record)."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"baseline-{uuid.uuid4().hex[:8]}",
                             enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=10)
    sealer = Sealer([sealing_key])
    session = requests.Session()
    fired, first, deadline = 0, None, time.monotonic() + max_seconds
    try:
        while fired < max_messages and time.monotonic() < deadline and not (stop and stop.is_set()):
            for records in consumer.poll(timeout_ms=100, max_records=1).values():
                for record in records:
                    first = first or time.monotonic()
                    env = envelope.parse_record(list(record.headers or []), record.value)
                    user, _, password = sealer.open(env.credential).key.partition(":")
                    namespace, name = env.trigger_name
                    session.post(trigger_url(apihost, namespace, name), data=env.payload,
                                 headers={"Content-Type": "application/json"}, auth=(user, password), timeout=30)
                    consumer.commit()
                    fired += 1
    finally:
        consumer.close()
    return fired, (time.monotonic() - first) if first else 0.0
