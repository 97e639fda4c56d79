"""Benchmark: the router against a plain kafka-python consumer, in the same run; memory per subscription.

    .venv/bin/python -m bench.router_bench [--quick]

Starts its own Kafka broker on 127.0.0.1 (no OpenWhisk needed: the router's output is envelopes on
the trigger-messages topic, which the firer benchmark covers from there). Measures:

- throughput: one busy topic (4 partitions, a backlog of small JSON messages) with 10 subscribed
  triggers, then 1, drained by one `python -m consumer` process with ROLES=router (Kafka
  messages/s in, every message batched into each trigger's envelopes and acknowledged), next to
  a plain kafka-python consumer reading the same topic before and after it (messages/s, nothing
  else done); CPU seconds per 100,000 messages of both, and their inverse ratio: messages per CPU
  second, which a loaded machine hardly moves (messages/s follow its load); for reference, a plain
  confluent-kafka consumer (librdkafka, the client under the router's reader) reading it too;
- memory: the RSS of a router process with 10,000 subscriptions in its table minus that of one
  with none, per subscription; and the Python heap of the table alone (tracemalloc).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import confluent_kafka as ck
import requests
from cryptography.fernet import Fernet
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient

from bench.firer_bench import ConsumerProcess, wait_until
from consumer.subscriptions import SubscriptionIndex
from consumer.table import Change
from feed import grants, records
from feed.records import Options, Segment, Subscription
from local_stack import kafka as kafka_stack
from messaging_lib.credentials import Sealer

REPO_ROOT = Path(__file__).resolve().parent.parent
GUEST = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"
PARTITIONS = 4
TRIGGERS = 10


@dataclass
class Stack:
    bootstrap: str
    work: Path

    def topic(self, prefix: str, partitions: int = PARTITIONS, compact: bool = False) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        configs = {"cleanup.policy": "compact"} if compact else {}
        admin.create_topics({name: {"num_partitions": partitions, "replication_factor": 1, "configs": configs}})
        admin.close()
        return name


@contextmanager
def stack(work: Path) -> Iterator[Stack]:
    broker = kafka_stack.start(kafka_stack.BrokerConfig(data_dir=work / "kafka", heap="1g"))
    try:
        yield Stack(broker.bootstrap, work)
    finally:
        kafka_stack.stop(broker)


def subscription(trigger: str, topic: str, credential: str) -> Subscription:
    return Subscription(trigger=trigger, topic=topic, credential=credential, options=Options(),
                        start_from="earliest", segments=(Segment(None, dict.fromkeys(range(PARTITIONS), 0)),),
                        created_ms=int(time.time() * 1000), updated_ms=int(time.time() * 1000))


# The routers re-seal subscription credentials into each envelope, so they hold the key that sealed them.
SEALING_KEY = Fernet.generate_key().decode()
GUEST_GRANT = grants.Grant("guest", "", prefix=True)  # the operator grants the bench's user every topic


def subscription_credential(trigger: str) -> str:
    return Sealer([SEALING_KEY]).seal_subscription(GUEST, trigger)


def write_grant(producer: KafkaProducer, topic: str) -> None:
    producer.send(topic, key=GUEST_GRANT.key, value=grants.encode_grant(GUEST_GRANT, int(time.time() * 1000)))


def write_subscriptions(s: Stack, subs: list[Subscription]) -> str:
    topic = s.topic("subscriptions", partitions=1, compact=True)
    producer = KafkaProducer(bootstrap_servers=s.bootstrap, linger_ms=5)
    write_grant(producer, topic)
    for sub in subs:
        producer.send(topic, key=records.subscription_key(sub.trigger), value=records.encode_subscription(sub))
    producer.flush()
    producer.close()
    return topic


def produce_backlog(s: Stack, topic: str, count: int) -> None:
    producer = KafkaProducer(bootstrap_servers=s.bootstrap, linger_ms=20, batch_size=512 * 1024)
    for i in range(count):
        value = json.dumps({"order": i, "customer": f"c{i % 977}", "amount": i % 1000 / 10}).encode()
        producer.send(topic, key=f"k{i % 100}".encode(), value=value)
    producer.flush()
    producer.close()


class RouterProcess(ConsumerProcess):
    """One `python -m consumer` process with ROLES=router (the product)."""

    def __init__(self, s: Stack, subscriptions_topic: str, out_topic: str, name: str) -> None:
        super().__init__(s.work, f"router-{name}.log", {
            "ROLES": "router", "KAFKA_BOOTSTRAP_SERVERS": s.bootstrap, "SUBSCRIPTIONS_TOPIC": subscriptions_topic,
            "TRIGGER_MESSAGES_TOPIC": out_topic, "DEAD_LETTER_TOPIC": f"{out_topic}-dl",
            "ROUTER_GROUP": f"router-{name}", "SEALING_KEYS": SEALING_KEY, "LOG_LEVEL": "WARNING"})
        wait_until(lambda: requests.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).ok, "the router", 300)
        self.ready_s = time.monotonic()


# The router's fetch settings (consumer/router.py, consumer/settings.py): the plain consumer uses the same.
FETCH = {"fetch_max_wait_ms": 100, "max_partition_fetch_bytes": 4 * 1024 * 1024}
MAX_POLL_RECORDS = 2000
SAMPLE_S = 0.05  # how often the router's metrics are read while it drains


@dataclass(frozen=True)
class Rate:
    """Messages/s over a measured span, and the CPU seconds the reader spent per 100,000 messages."""

    per_s: float
    cpu_per_100k: float

    @classmethod
    def of(cls, count: float, elapsed_s: float, cpu_s: float) -> Rate:
        return cls(count / elapsed_s, cpu_s / count * 100_000)


def plain_consumer_rate(s: Stack, topic: str, count: int) -> Rate:
    """A plain kafka-python consumer reading the whole topic once, doing nothing else, with the
    router's fetch settings; timed (wall and CPU of this process) from its first record to its last."""
    consumer = KafkaConsumer(bootstrap_servers=s.bootstrap, enable_auto_commit=False, group_id=None, **FETCH)
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    seen, first = 0, 0
    started = cpu_started = 0.0
    while seen < count:
        for batch in consumer.poll(timeout_ms=500, max_records=MAX_POLL_RECORDS).values():
            if not started:
                started, cpu_started, first = time.monotonic(), time.process_time(), len(batch)
            seen += len(batch)
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu_started
    consumer.close()
    return Rate.of(count - first, elapsed, cpu)


def plain_confluent_rate(s: Stack, topic: str, count: int) -> Rate:
    """The same with a plain confluent-kafka (librdkafka) consumer, the client under the router's
    reader: for reference (what fetching alone costs). Timed from its assign, not its first
    record: librdkafka fetches ahead on its own threads before it hands out the first one."""
    consumer = ck.Consumer({"bootstrap.servers": s.bootstrap, "group.id": f"plain-{uuid.uuid4().hex[:6]}",
                            "enable.auto.commit": False, "fetch.wait.max.ms": FETCH["fetch_max_wait_ms"],
                            "max.partition.fetch.bytes": FETCH["max_partition_fetch_bytes"]})
    consumer.list_topics(topic, timeout=10)  # connected before the clock starts
    started, cpu_started = time.monotonic(), time.process_time()
    consumer.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in range(PARTITIONS)])
    seen = 0
    while seen < count:
        seen += sum(1 for m in consumer.consume(MAX_POLL_RECORDS, 0.5) if m.error() is None)
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu_started
    consumer.close()
    return Rate.of(count, elapsed, cpu)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far."""
    fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields_[11]) + int(fields_[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def profiled(pid: int, out: Path | None) -> Iterator[None]:
    """py-spy (a path to its binary, pinned in bench/requirements-profile.txt) records `pid` into
    `out` as collapsed stacks, threads apart, while the block runs."""
    if out is None:
        yield
        return
    spy = subprocess.Popen([os.environ.get("PY_SPY", "py-spy"), "record", "--pid", str(pid), "--format", "raw",
                            "--threads", "--rate", "200", "--output", str(out)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)


def router_rate(s: Stack, topic: str, count: int, triggers: int, profile: Path | None = None
                ) -> tuple[Rate, float, float]:
    """One router process draining the topic for `triggers` subscriptions: its rate and CPU from the
    first record it consumed until every record was delivered to every trigger and acknowledged;
    also (envelopes, messages per envelope)."""
    triggers_ = [f"/guest/busy{i}" for i in range(triggers)]
    subs_topic = write_subscriptions(s, [subscription(t, topic, subscription_credential(t)) for t in triggers_])
    router = RouterProcess(s, subs_topic, s.topic("envelopes"), f"throughput-{triggers}")
    try:
        wait_until(lambda: router.metric("router_records_consumed_total") > 0, "the router's first record", 120)
        started, cpu_started = time.monotonic(), process_cpu_s(router.proc.pid)
        first = router.metric("router_records_consumed_total")
        deadline = started + 600
        with profiled(router.proc.pid, profile):
            while (router.metric("router_records_consumed_total") < count
                   or router.metric("router_messages_batched_total") < count * triggers):
                if time.monotonic() > deadline:
                    raise RuntimeError("the router did not drain the topic in 10 minutes")
                time.sleep(SAMPLE_S)
            elapsed, cpu = time.monotonic() - started, process_cpu_s(router.proc.pid) - cpu_started
        envelopes = router.metric("router_envelopes_written_total")
        return Rate.of(count - first, elapsed, cpu), envelopes, count * triggers / envelopes
    finally:
        router.stop()


def throughput_rows(s: Stack, topic: str, backlog: int, triggers: int, profile: Path | None
                    ) -> list[tuple[str, ...]]:
    """The plain consumer before and after the router, on the same topic (their mean: the
    machine's load drifts during a run): one table row pair per case."""
    print(f"plain kafka-python consumer ({triggers} subscription case) ...", file=sys.stderr)
    before = plain_consumer_rate(s, topic, backlog)
    print(f"router with {triggers} subscribed trigger(s) ...", file=sys.stderr)
    ours, envelopes, per_envelope = router_rate(s, topic, backlog, triggers,
                                                None if profile is None else profile / f"router-{triggers}.txt")
    after = plain_consumer_rate(s, topic, backlog)
    plain = Rate((before.per_s + after.per_s) / 2, (before.cpu_per_100k + after.cpu_per_100k) / 2)
    librdkafka = plain_confluent_rate(s, topic, backlog)
    case = f"{triggers} subscription{'s' if triggers > 1 else ''}"
    return [
        (f"messages/s, {case}", f"{ours.per_s:,.0f}", f"{plain.per_s:,.0f}", f"{ours.per_s / plain.per_s:.2f}"),
        (f"CPU s per 100,000 messages, {case}", f"{ours.cpu_per_100k:.2f}", f"{plain.cpu_per_100k:.2f}",
         f"{ours.cpu_per_100k / plain.cpu_per_100k:.2f}"),
        (f"messages per CPU second, {case} (the ratio where each has a core)",
         f"{100_000 / ours.cpu_per_100k:,.0f}", f"{100_000 / plain.cpu_per_100k:,.0f}",
         f"{plain.cpu_per_100k / ours.cpu_per_100k:.2f}"),
        (f"envelopes / messages per envelope, {case}", f"{envelopes:,.0f} / {per_envelope:,.0f}", "", ""),
        (f"reference: a plain confluent-kafka consumer's messages/s / CPU s per 100,000 ({case} run)",
         f"{librdkafka.per_s:,.0f} / {librdkafka.cpu_per_100k:.2f}", "", ""),
    ]


def memory_per_subscription(s: Stack, count: int) -> tuple[float, float, float]:
    """(RSS MB with none, RSS MB with `count`, heap bytes per subscription of the table alone)."""
    credential = subscription_credential("/guest/trigger")
    topics_ = [s.topic(f"mem{i}", partitions=1) for i in range(10)]
    subs = [subscription(f"/guest/trigger-{i:05d}", topics_[i % len(topics_)], credential) for i in range(count)]
    rss = []
    for name, table in (("empty", []), ("full", subs)):
        router = RouterProcess(s, write_subscriptions(s, table), s.topic("envelopes"), f"mem-{name}")
        time.sleep(3)  # the group joins, the partitions are placed
        rss.append(router.rss_mb())
        router.stop()
    tracemalloc.start()
    index = SubscriptionIndex()
    before = tracemalloc.get_traced_memory()[0]
    for offset, sub in enumerate(subs):
        index.apply(Change(offset, records.subscription_key(sub.trigger), records.encode_subscription(sub)))
    heap = (tracemalloc.get_traced_memory()[0] - before) / count
    tracemalloc.stop()
    return rss[0], rss[1], heap


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller counts (a smoke run, numbers are noisier)")
    p.add_argument("--throughput-only", action="store_true", help="skip the memory measurements")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="py-spy the router while it drains (collapsed stacks into DIR; py-spy on PATH or $PY_SPY)")
    args = p.parse_args(argv)
    backlog = 50_000 if args.quick else 200_000
    subscriptions = 10_000
    work = Path(os.environ.get("BENCH_WORK", "/tmp")) / f"router-bench-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True)
    rows: list[tuple[str, ...]] = []
    with stack(work) as s:
        topic = s.topic("busy")
        print(f"producing a backlog of {backlog:,} messages ...", file=sys.stderr)
        produce_backlog(s, topic, backlog)
        for triggers in (TRIGGERS, 1):
            rows += throughput_rows(s, topic, backlog, triggers, args.profile)
        if args.throughput_only:
            print_table(rows)
            return 0
        print(f"memory with {subscriptions:,} subscriptions ...", file=sys.stderr)
        empty, full, heap = memory_per_subscription(s, subscriptions)
        rows.append((f"router RSS MB, 0 vs {subscriptions:,} subscriptions", f"{empty:.0f} / {full:.0f}", "", ""))
        rows.append(("RSS per subscription (bytes)", f"{(full - empty) * 1024 * 1024 / subscriptions:,.0f}", "", ""))
        rows.append(("table heap per subscription (bytes, tracemalloc)", f"{heap:,.0f}", "", ""))
    print_table(rows)
    return 0


def print_table(rows: list[tuple[str, ...]]) -> None:
    print()
    print("| measure | router | plain kafka-python consumer | router / plain |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    sys.exit(main())
