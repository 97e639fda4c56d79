"""Small helpers for end-to-end tests: OpenWhisk entities through the emulator's REST API, the
emulator's fire log, and reading the dead-letter topic."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

T = TypeVar("T")

ECHO_ACTION = 'def main(params):\n    return {"received": params}\n'


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_for(check: Callable[[], T], timeout_s: float = 60.0, interval_s: float = 0.2, what: str = "") -> T:
    """Poll until check() returns something truthy; its last value is in the failure message."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what or check}: last value {last!r:.500}")


class OpenWhisk:
    """The emulator's controller API for one namespace, as any REST client would use it."""

    def __init__(self, apihost: str, auth: str) -> None:
        self.apihost = apihost
        self.session = requests.Session()
        self.session.auth = tuple(auth.split(":", 1))  # type: ignore[assignment]

    def _url(self, path: str) -> str:
        return f"{self.apihost}/api/v1/namespaces/_/{path}"

    def put(self, path: str, body: dict) -> dict:
        response = self.session.put(self._url(path) + "?overwrite=true", json=body, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def trigger(self, name: str) -> str:
        self.put(f"triggers/{name}", {})
        return name

    def echo_action(self, name: str) -> str:
        self.put(f"actions/{name}", {"exec": {"kind": "python:3.11", "code": ECHO_ACTION}})
        return name

    def rule(self, name: str, trigger: str, action: str) -> None:
        self.put(f"rules/{name}", {"trigger": f"/_/{trigger}", "action": f"/_/{action}"})

    def activations(self, name: str) -> list[dict]:
        response = self.session.get(self._url("activations"), params={"name": name, "docs": "true", "limit": 200},
                                    timeout=30)
        assert response.status_code == 200, response.text
        return response.json()


class Emulator:
    """The emulator's control API (no auth): fire log and fault injection.

    The fire log is read incrementally from where it stood when this object was made (tests use
    fresh triggers), so polling stays cheap however many fires the session has already made.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._seen: dict[str, list[dict]] = {}
        self._last_seq = self._read(after=10**15)["total"]  # sequence numbers count every fire from 1

    def _read(self, after: int) -> dict:
        response = requests.get(f"{self.url}/_emulator/fires", params={"after": after}, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def fires(self, trigger_fqn: str) -> list[dict]:
        """Every fire of the trigger received since this object was made, in arrival order."""
        for fire in self._read(after=self._last_seq)["fires"]:
            self._seen.setdefault(fire["trigger"], []).append(fire)
            self._last_seq = max(self._last_seq, fire["seq"])
        return list(self._seen.get(trigger_fqn, []))

    def accepted(self, trigger_fqn: str) -> list[dict]:
        """Fires the controller accepted (202, or 204 without an active rule)."""
        return [f for f in self.fires(trigger_fqn) if f["status"] in (202, 204)]

    def fault(self, **spec: Any) -> str:
        response = requests.post(f"{self.url}/_emulator/faults", json=spec, timeout=30)
        assert response.status_code in (200, 201), response.text
        return response.json()["id"]

    def clear_faults(self) -> None:
        requests.delete(f"{self.url}/_emulator/faults", timeout=30).raise_for_status()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The offsets the group committed on the topic's partitions (those it never committed are absent)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return {tp.partition: found.offset for tp, found in admin.list_group_offsets(group).get(group, {}).items()
                if tp.topic == topic and found.offset >= 0}
    finally:
        admin.close()


def read_from(bootstrap: str, topic: str, start: dict[int, int], timeout_ms: int = 3000) -> list:
    """Records of a topic from the given per-partition offsets until it is quiet for timeout_ms."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=timeout_ms)
    try:
        partitions = [TopicPartition(topic, p) for p in start]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, start[tp.partition])
        return list(consumer)
    finally:
        consumer.close()


def headers_of(record: Any) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers or []}


def envelope_json(trigger: str, credential: str, payload: object, **extra: Any) -> bytes:
    """A structured-mode CloudEvent written by hand, as any Kafka producer outside OpenWhisk would;
    `extra` replaces or adds attributes (None removes one)."""
    event = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/tests/plain-producer",
             "type": "org.apache.openwhisk.trigger.fire", "owtrigger": trigger, "owcredential": credential,
             "datacontenttype": "application/json", "data": payload}
    event.update(extra)
    return json.dumps({k: v for k, v in event.items() if v is not None}).encode()
