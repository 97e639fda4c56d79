"""Where the lifecycle keeps subscriptions: the ``SubscriptionStore`` interface and its two stores.

The lifecycle needs four things of the compacted subscriptions topic and of the subscribed topics,
and nothing else: the cluster it serves (CREATE's ``brokers`` check), the latest record of some
keys (with its offset, which is the configuration's version), writing a record or a tombstone and
waiting for the acknowledgement, and per-partition positions of a topic (``startFrom`` at CREATE,
the end offsets at PAUSE). ``MemoryStore`` keeps them in lists, for unit tests; ``KafkaStore`` is
the kafka-python implementation, and the only place where a Kafka error becomes the feed's
(``feed.errors``). ``RouterStore`` is what the web action uses when a router's read API is
configured: the latest records come from a router's table (feed.lookup), at a cost that does not
grow with the number of subscriptions, and everything else (and ``latest`` whenever no router can
answer) from its ``KafkaStore``.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode
from urllib.request import HTTPRedirectHandler, ProxyHandler, Request, build_opener

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from feed import lookup
from feed.errors import FeedError, kafka_errors
from feed.options import EARLIEST, LATEST
from messaging_lib.errors import RecordError

log = logging.getLogger("feed.store")

Stored = tuple[int, bytes | None]  # the latest record of a key: (offset, value; None for a tombstone)
At = str | int  # LATEST, EARLIEST or a timestamp in epoch milliseconds
UNAVAILABLE = "Kafka is unavailable"
NOT_ACCEPTED = "Kafka did not accept the subscription"
TOO_LONG = "reading the subscriptions took too long"


def no_topic(topic: str) -> FeedError:
    """The old package's wording (the old feed did not check; this one does)."""
    return FeedError(f"Topic does not exist. You must create the topic first: {topic}")


class SubscriptionStore(Protocol):
    """The subscriptions topic and the subscribed topics, as the lifecycle sees them.

    Every method raises only ``FeedError`` (the web action's answer)."""

    @property
    def bootstrap_servers(self) -> frozenset[str]:
        """The servers of the cluster whose topics can be subscribed to."""
        ...

    def latest(self, keys: Collection[bytes], prefixes: Collection[bytes] = ()) -> dict[bytes, Stored]:
        """The latest record of each of ``keys``, and of every key starting with one of ``prefixes``
        (the grants of a namespace), found in the subscriptions topic."""
        ...

    def write(self, key: bytes, value: bytes | None) -> None:
        """Append a record (``None``: a tombstone) once it is acknowledged (the router reads it there)."""
        ...

    def positions(self, topic: str, at: At) -> dict[int, int]:
        """Per partition of ``topic``: the offset of ``at`` now (the end where a time is past it)."""
        ...


class TopicStore(SubscriptionStore, Protocol):
    """A store that reads the subscriptions topic itself, and tells its end offset (RouterStore's fallback)."""

    def end_offset(self) -> int:
        """The subscriptions topic's end offset now (one past its last record)."""
        ...


def wanted(key: bytes | None, keys: Collection[bytes], prefixes: Collection[bytes]) -> bool:
    return key is not None and (key in keys or any(key.startswith(p) for p in prefixes))


# --- in memory ----------------------------------------------------------------------------------


@dataclass
class MemoryTopic:
    """A subscribed topic: per partition, its first offset and the timestamps of its records."""

    begin: dict[int, int]
    timestamps: dict[int, list[int]]

    def end(self, partition: int) -> int:
        return self.begin[partition] + len(self.timestamps[partition])


@dataclass
class MemoryStore:
    """A ``SubscriptionStore`` in lists: ``records`` is the subscriptions topic (index = offset)."""

    brokers: Iterable[str] = ("kafka:9092",)
    records: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    topics: dict[str, MemoryTopic] = field(default_factory=dict)

    def add_topic(self, name: str, partitions: int = 1, begin: int = 0) -> None:
        self.topics[name] = MemoryTopic(dict.fromkeys(range(partitions), begin),
                                        {p: [] for p in range(partitions)})

    def append(self, topic: str, partition: int, timestamp_ms: int) -> int:
        """A record on a subscribed topic; its offset."""
        self.topics[topic].timestamps[partition].append(timestamp_ms)
        return self.topics[topic].end(partition) - 1

    @property
    def bootstrap_servers(self) -> frozenset[str]:
        return frozenset(self.brokers)

    def latest(self, keys: Collection[bytes], prefixes: Collection[bytes] = ()) -> dict[bytes, Stored]:
        return {key: (offset, value) for offset, (key, value) in enumerate(self.records) if wanted(key, keys, prefixes)}

    def end_offset(self) -> int:
        return len(self.records)

    def write(self, key: bytes, value: bytes | None) -> None:
        self.records.append((key, value))

    def positions(self, topic: str, at: At) -> dict[int, int]:
        found = self.topics.get(topic)
        if found is None or not found.begin:
            raise no_topic(topic)
        return {p: self._position(found, p, at) for p in sorted(found.begin)}

    @staticmethod
    def _position(topic: MemoryTopic, partition: int, at: At) -> int:
        if at == LATEST:
            return topic.end(partition)
        if at == EARLIEST:
            return topic.begin[partition]
        later = [i for i, ts in enumerate(topic.timestamps[partition]) if ts >= int(at)]
        return topic.begin[partition] + later[0] if later else topic.end(partition)


# --- Kafka --------------------------------------------------------------------------------------


class KafkaStore:
    """A ``SubscriptionStore`` over kafka-python clients the caller keeps warm: a group-less
    consumer (reads and positions) and a producer with ``acks=all``, each got when first needed
    (a DELETE needs no consumer, a READ no producer). ``time_left_s`` bounds the waits by what is
    left of the activation."""

    def __init__(self, consumer: Callable[[], KafkaConsumer], producer: Callable[[], KafkaProducer], topic: str,
                 bootstrap_servers: Iterable[str], time_left_s: Callable[[], float]) -> None:
        self._get_consumer, self._get_producer, self._topic = consumer, producer, topic
        self._servers = frozenset(bootstrap_servers)
        self._time_left_s = time_left_s

    @property
    def bootstrap_servers(self) -> frozenset[str]:
        return self._servers

    def latest(self, keys: Collection[bytes], prefixes: Collection[bytes] = ()) -> dict[bytes, Stored]:
        """Read the topic from its start to its end now: cost proportional to the number of
        subscriptions (fine for v1; an index would go in a later version)."""
        consumer = self._get_consumer()
        tp = TopicPartition(self._topic, 0)
        deadline = time.monotonic() + self._time_left_s()
        found: dict[bytes, Stored] = {}
        with kafka_errors(UNAVAILABLE):
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            end = consumer.end_offsets([tp])[tp]
            while consumer.position(tp) < end:
                if time.monotonic() > deadline:
                    raise FeedError(TOO_LONG, 503)
                for batch in consumer.poll(timeout_ms=500, max_records=10_000).values():
                    for record in batch:
                        if record.offset < end and wanted(record.key, keys, prefixes):
                            found[record.key] = (record.offset, record.value)
        return found

    def end_offset(self) -> int:
        """The subscriptions topic's end offset now (one past its last record): one request."""
        tp = TopicPartition(self._topic, 0)
        with kafka_errors(UNAVAILABLE):
            return int(self._get_consumer().end_offsets([tp])[tp])

    def write(self, key: bytes, value: bytes | None) -> None:
        with kafka_errors(NOT_ACCEPTED):
            self._get_producer().send(self._topic, key=key, value=value).get(timeout=self._time_left_s())

    def positions(self, topic: str, at: At) -> dict[int, int]:
        consumer = self._get_consumer()
        partitions = self._partitions(consumer, topic)
        with kafka_errors(UNAVAILABLE):
            ends = consumer.end_offsets(partitions)
            if at == LATEST:
                found = ends
            elif at == EARLIEST:
                found = consumer.beginning_offsets(partitions)
            else:
                times = consumer.offsets_for_times(dict.fromkeys(partitions, int(at)))
                found = {tp: ends[tp] if times.get(tp) is None else times[tp].offset for tp in partitions}
        return {tp.partition: offset for tp, offset in found.items()}

    @staticmethod
    def _partitions(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
        with kafka_errors(UNAVAILABLE):
            consumer.topics()  # fresh metadata: a partition added lately must not be missed
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise no_topic(topic)
        return [TopicPartition(topic, p) for p in sorted(partitions)]


# --- a router's table, the topic as the fallback --------------------------------------------------


class _NoRedirect(HTTPRedirectHandler):
    """A router never redirects: a 3xx is no answer (the signed request goes nowhere else)."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = build_opener(ProxyHandler({}), _NoRedirect)  # straight to the operator's URL: no proxy, no redirect


class NoAnswer(Exception):
    """Why a router did not answer (the store then reads the topic); never holds a secret."""


class RouterStore:
    """A ``SubscriptionStore`` whose ``latest`` asks a router's read API (feed.lookup) at ``url``
    for an answer that includes the topic's last record now (read-your-writes: one end-offset
    request to Kafka first), and reads the topic (``KafkaStore.latest``) when no router answers in
    time, for any reason. Writes and positions are the ``KafkaStore``'s (a ``MemoryStore`` in unit tests)."""

    def __init__(self, kafka: TopicStore, url: str, secret: bytes, time_left_s: Callable[[], float],
                 clock: Callable[[], float] = time.time, wait_ms: int = lookup.MAX_WAIT_MS) -> None:
        self._kafka, self._url, self._secret = kafka, url.rstrip("/"), secret
        self._time_left_s, self._clock, self._wait_ms = time_left_s, clock, wait_ms
        self.answered = self.fell_back = 0  # how each latest() was served (tests, logs)

    @property
    def bootstrap_servers(self) -> frozenset[str]:
        return self._kafka.bootstrap_servers

    def latest(self, keys: Collection[bytes], prefixes: Collection[bytes] = ()) -> dict[bytes, Stored]:
        min_offset = self._kafka.end_offset() - 1  # Kafka unavailable: the topic cannot be read either
        try:
            found = self._ask(keys, prefixes, min_offset)
        except NoAnswer as e:
            self.fell_back += 1
            log.warning("no router answered (%s): reading the subscriptions topic", e)
            return self._kafka.latest(keys, prefixes)
        self.answered += 1
        return found

    def write(self, key: bytes, value: bytes | None) -> None:
        self._kafka.write(key, value)

    def positions(self, topic: str, at: At) -> dict[int, int]:
        return self._kafka.positions(topic, at)

    def _ask(self, keys: Collection[bytes], prefixes: Collection[bytes], min_offset: int) -> dict[bytes, Stored]:
        try:
            query = [("key", k.decode()) for k in keys] + [("prefix", p.decode()) for p in prefixes]
        except UnicodeDecodeError:
            raise NoAnswer("a key is not UTF-8") from None
        wait_ms = max(0, min(self._wait_ms, int((self._time_left_s() - 1.0) * 1000)))
        query += [("min_offset", str(min_offset)), ("wait_ms", str(wait_ms))]
        path_qs = f"{lookup.PATH}?{urlencode(query, quote_via=quote)}"
        signed = lookup.authorization(self._secret, int(self._clock()), "GET", path_qs)
        status, signature, body = self._get(self._url + path_qs, signed, wait_ms / 1000 + 2.0)
        if status != 200:
            raise NoAnswer(f"{self._url} answered {status}")
        if not hmac.compare_digest(lookup.answer_signature(self._secret, signed, body), signature):
            raise NoAnswer(f"the answer of {self._url} is not signed with the sealing keys")
        try:
            applied, found = lookup.decode_answer(json.loads(body))
        except (ValueError, RecordError):
            raise NoAnswer(f"{self._url} answered something else than the read API") from None
        if applied < min_offset:
            raise NoAnswer(f"{self._url} answered from offset {applied}, before {min_offset}")
        return {k: v for k, v in found.items() if wanted(k, keys, prefixes)}

    def _get(self, url: str, authorization: str, timeout_s: float) -> tuple[int, str, bytes]:
        """(status, answer signature, body) of one GET; the standard library's client, so that the
        feed package needs nothing more than it did (the consumer image ships it)."""
        request = Request(url, headers={"Authorization": authorization, "Accept": "application/json"})
        try:
            with _OPENER.open(request, timeout=timeout_s) as response:
                return response.status, response.headers.get(lookup.ANSWER_HEADER, ""), response.read()
        except HTTPError as e:
            return e.code, "", b""
        except (OSError, ValueError) as e:  # refused, unreachable, timed out, a URL that is not one
            cause = e.reason if isinstance(e, URLError) and isinstance(e.reason, BaseException) else e
            raise NoAnswer(f"{type(cause).__name__} from {self._url}") from None
