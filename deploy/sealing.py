"""One sealing key per Kafka cluster: the fingerprint a deploy records, and the decision it makes.

Every deployment that shares a Kafka cluster shares its consumers, and those open the callers'
sealed OpenWhisk keys with *their* sealing keys. A deploy into a second namespace (or from another
machine) that generated a key of its own would hand out credentials the running consumers cannot
open: every message dead-lettered as `bad-credential`, silently. So a deploy records a fingerprint
of its sealing key on the cluster and refuses a key that does not match the recorded one.

**The record.** A compacted record in the deployment's subscriptions topic under the reserved key
``deployment:sealing-key`` (the router and the feed action ignore keys without their
``subscription:``/``status:`` prefixes, feed.records.parse_key; a tombstone deletes
it; the topic is deleted with the deployment, and the record with it). Its value is versioned
JSON: the fingerprint, which deployment recorded it (API host and namespace: no secret) and when.

**The fingerprint** is HMAC-SHA256 of a fixed label under the first key (the one that seals),
truncated to 128 bits: it tells keys apart and gives nothing back about the key.

**The decision** (``decide``), for the keys a deploy would use (given, kept, or the deployed
package's) or none (it would generate one):

    nothing recorded                      use them (or a new key) and record its fingerprint
    the first key is the recorded one     use them; nothing to write
    a later key is the recorded one       a rotation: use them and record the new first key
    none matches / a new key is needed    refused with how to share the key, unless forced
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from deploy.errors import DeployError
from messaging_lib.credentials import generate_key, parse_key_list
from messaging_lib.errors import ConfigError
from messaging_lib.kafka_config import KafkaSettings

RECORD_KEY = b"deployment:sealing-key"
FORMAT_VERSION = 1
FINGERPRINT_LABEL = b"openwhisk-messaging sealing-key fingerprint v1"
FINGERPRINT_BYTES = 16
READ_TIMEOUT_S = 60.0
WRITE_TIMEOUT_S = 30.0
FORCE_FLAG = "--force-new-sealing-key"
SHARE_HINT = ("share that key: pass --sealing-keys (or set SEALING_KEYS) to the value of SEALING_KEYS in that "
              "deployment's consumer-secrets.env")


def fingerprint(key: str) -> str:
    """The non-reversible fingerprint of one Fernet key (hex, 128 bits)."""
    secret = base64.urlsafe_b64decode(key.encode("ascii"))
    return hmac.new(secret, FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:2 * FINGERPRINT_BYTES]


@dataclass(frozen=True)
class Recorded:
    """What the cluster says about the sealing key its consumers use."""

    fingerprint: str
    deployment: str  # "https://host namespace ns": who recorded it, for the user's sentence
    recorded_ms: int


def encode(recorded: Recorded) -> bytes:
    return json.dumps({"v": FORMAT_VERSION, "fingerprint": recorded.fingerprint,
                       "deployment": recorded.deployment, "recorded_ms": recorded.recorded_ms},
                      separators=(",", ":")).encode("utf-8")


def decode(value: bytes) -> Recorded:
    """The record's value; a format this deploy.sh does not know is refused, never guessed."""
    try:
        data = json.loads(value.decode("utf-8"))
        if data.get("v") != FORMAT_VERSION:
            raise ValueError(f"format version {data.get('v')!r}")
        return Recorded(str(data["fingerprint"]), str(data.get("deployment", "")), int(data.get("recorded_ms", 0)))
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise DeployError(f"the sealing key's fingerprint recorded on this Kafka cannot be read ({e}): a newer "
                          f"deploy.sh may have written it; update this one, or pass {FORCE_FLAG} to replace it"
                          ) from None


@dataclass(frozen=True)
class Decision:
    keys: tuple[str, ...]  # the SEALING_KEYS to use, the sealing one first
    record: bool  # write the fingerprint of keys[0]
    note: str  # one line for the user


def decide(keys: Sequence[str], source: str, recorded: Recorded | None, force: bool, topic: str,
           new_key: Callable[[], str] = generate_key) -> Decision:
    """The keys a deploy uses given the recorded fingerprint (see the module docstring). `keys`
    empty: the deploy would generate one. `source` says where the keys come from, for the sentence."""
    if recorded is None:
        chosen = tuple(keys) or (new_key(),)
        return Decision(chosen, True, f"recorded the key's fingerprint on topic {topic}: deploys to this Kafka "
                                      "with another key are refused")
    prints = [fingerprint(key) for key in keys]
    if prints[:1] == [recorded.fingerprint]:
        return Decision(tuple(keys), False, "the same key the consumers on this Kafka use (recorded by "
                                            f"{recorded.deployment or 'a deploy'})")
    if recorded.fingerprint in prints:
        return Decision(tuple(keys), True, "a rotation (the recorded key is still in the list): recorded the new "
                                           "first key's fingerprint; give the consumers the same list")
    if force:
        return Decision(tuple(keys) or (new_key(),), True,
                        f"{FORCE_FLAG}: replaced the recorded fingerprint; consumers still on the old key "
                        "dead-letter this deployment's messages (bad-credential) until they get this one")
    by = f"the deployment to {recorded.deployment}" if recorded.deployment else "another deployment"
    if not keys:
        raise DeployError(f"the consumers on this Kafka open credentials with the sealing key of {by} (its "
                          f"fingerprint is on topic {topic}), so a new key would make them dead-letter this "
                          f"deployment's messages as bad-credential: {SHARE_HINT} (or, if that key is lost, "
                          f"pass {FORCE_FLAG})")
    raise DeployError(f"{source} is not the sealing key the consumers on this Kafka use (recorded on topic {topic} "
                      f"by {by}), so they would dead-letter this deployment's messages as bad-credential: "
                      f"{SHARE_HINT}, or list it after yours to rotate (or pass {FORCE_FLAG} to replace it)")


class FingerprintStore(Protocol):
    """Where the fingerprint lives: Kafka (KafkaFingerprintStore) or memory (tests)."""

    def read(self) -> Recorded | None: ...

    def write(self, recorded: Recorded) -> None: ...


@dataclass
class MemoryFingerprintStore:
    recorded: Recorded | None = None
    writes: int = 0

    def read(self) -> Recorded | None:
        return self.recorded

    def write(self, recorded: Recorded) -> None:
        self.recorded = recorded
        self.writes += 1


@dataclass(frozen=True)
class KafkaFingerprintStore:
    """The record in the subscriptions topic (one partition, compacted: the last value wins)."""

    settings: KafkaSettings
    topic: str

    def _failure(self, doing: str, error: KafkaError) -> DeployError:
        servers = ",".join(self.settings.bootstrap_servers)
        return DeployError(f"Kafka at {servers} failed {doing} the sealing key's fingerprint on topic {self.topic} "
                           f"({type(error).__name__}): check the Kafka settings and retry")

    def read(self) -> Recorded | None:
        """The last value under RECORD_KEY, read from the beginning to the end the topic has now."""
        tp = TopicPartition(self.topic, 0)
        try:
            consumer = KafkaConsumer(**self.settings.client_kwargs(), enable_auto_commit=False, group_id=None)
        except KafkaError as e:
            raise self._failure("reading", e) from None
        try:
            if not consumer.partitions_for_topic(self.topic):
                raise DeployError(f"topic {self.topic} does not exist: the sealing key's fingerprint is kept there")
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            end = consumer.end_offsets([tp])[tp]
            value: bytes | None = None
            deadline = time.monotonic() + READ_TIMEOUT_S
            while consumer.position(tp) < end:
                if time.monotonic() > deadline:
                    raise DeployError(f"reading topic {self.topic} took over {READ_TIMEOUT_S:.0f}s: retry")
                for batch in consumer.poll(timeout_ms=500, max_records=10_000).values():
                    for record in batch:
                        if record.offset < end and record.key == RECORD_KEY:
                            value = record.value
            return None if value is None else decode(value)
        except KafkaError as e:
            raise self._failure("reading", e) from None
        finally:
            consumer.close()

    def write(self, recorded: Recorded) -> None:
        """Write the record and wait for all in-sync replicas to have it."""
        try:
            producer = KafkaProducer(**self.settings.client_kwargs(), acks="all")
        except KafkaError as e:
            raise self._failure("writing", e) from None
        try:
            producer.send(self.topic, key=RECORD_KEY, value=encode(recorded)).get(timeout=WRITE_TIMEOUT_S)
        except KafkaError as e:
            raise self._failure("writing", e) from None
        finally:
            producer.close()


def choose(store: FingerprintStore, keys_text: str, source: str, deployment: str, force: bool, topic: str,
           out: Callable[[str], None], clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> str:
    """The SEALING_KEYS this deploy uses (comma list), after checking and, if need be, recording
    the fingerprint. `keys_text` empty: a new key unless the cluster has one already."""
    try:
        keys = parse_key_list(keys_text, "SEALING_KEYS") if keys_text.strip() else []
    except ConfigError as e:
        raise DeployError(f"{e}: check --sealing-keys (or SEALING_KEYS)") from None
    decision = decide(keys, source, store.read(), force, topic)
    if decision.record:
        store.write(Recorded(fingerprint(decision.keys[0]), deployment, clock_ms()))
    out(decision.note)
    return ",".join(decision.keys)


def kafka_store(topic: str) -> KafkaFingerprintStore:
    """The store of the cluster of the KAFKA_* settings (the consumer's own variables)."""
    try:
        return KafkaFingerprintStore(KafkaSettings.from_env(os.environ), topic)
    except ConfigError as e:
        raise DeployError(f"Kafka settings: {e}") from None
