"""Benchmark: a router holding a million subscriptions: time to ready and RSS per subscription.

    .venv/bin/python -m bench.subscriptions_bench [--count N]

Starts its own Kafka broker on 127.0.0.1, writes N subscription records (default 1,000,000) to a
compacted one-partition subscriptions topic in large producer batches, then starts one
`python -m consumer` process with ROLES=router and measures the time from its start until
/readyz (the whole table read and applied, the topics subscribed), and its RSS once its
partitions are placed, minus the RSS of a router with an empty table: bytes per subscription.

The records are what the feed writes: a distinct trigger each, a distinct credential of a real
sealed token's length (random text: the router carries it, never opens it), 10 topics, the
default options, startFrom earliest. Goals (issue 15): ready in at most 60 s, at most 1,024 bytes
per subscription.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import time
import uuid
from pathlib import Path

from kafka import KafkaProducer

from bench.firer_bench import wait_until
from bench.router_bench import (
    RouterProcess,
    Stack,
    process_cpu_s,
    stack,
    subscription,
    subscription_credential,
    write_grant,
)
from feed import records

TOPICS = 10
GOAL_READY_S, GOAL_BYTES = 60.0, 1024


def write_many(s: Stack, count: int) -> str:
    """`count` subscription records, produced in large batches (a few seconds per 100,000)."""
    topic = s.topic("subscriptions", partitions=1, compact=True)
    inputs = [s.topic(f"in{i}", partitions=1) for i in range(TOPICS)]
    token_length = len(subscription_credential("/guest/trigger-0000000"))
    producer = KafkaProducer(bootstrap_servers=s.bootstrap, linger_ms=50, batch_size=1024 * 1024,
                             max_request_size=8 * 1024 * 1024)
    write_grant(producer, topic)
    for i in range(count):
        credential = base64.urlsafe_b64encode(os.urandom(token_length))[:token_length].decode()
        sub = subscription(f"/guest/trigger-{i:07d}", inputs[i % TOPICS], credential)
        producer.send(topic, key=records.subscription_key(sub.trigger), value=records.encode_subscription(sub))
        if i and i % 200_000 == 0:
            print(f"  {i:,} written", file=sys.stderr)
    producer.flush()
    producer.close()
    return topic


def measure(s: Stack, subscriptions_topic: str, name: str, empty: bool = False) -> tuple[float, float, float]:
    """(seconds from process start to ready, its CPU seconds by then, RSS MB once its partitions
    are placed, if any). The CPU seconds hardly move with the machine's load; the wall time does
    (the machine's load average is printed with it)."""
    started, load_before = time.monotonic(), os.getloadavg()[0]
    router = RouterProcess(s, subscriptions_topic, s.topic("envelopes"), name)
    try:
        ready_s, cpu_s = router.ready_s - started, process_cpu_s(router.proc.pid)
        print(f"  {name}: ready in {ready_s:.1f} s, {cpu_s:.1f} CPU s; load average (1 min) "
              f"{load_before:.1f} at its start, {os.getloadavg()[0]:.1f} at ready", file=sys.stderr)
        if not empty:
            wait_until(lambda: router.metric("router_assigned_partitions") >= 1, "the router's partitions", 120)
        time.sleep(2)  # the rest of the partitions and the first commits
        return ready_s, cpu_s, router.rss_mb()
    finally:
        router.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=1_000_000, help="subscriptions in the table")
    args = p.parse_args(argv)
    work = Path(os.environ.get("BENCH_WORK", "/tmp")) / f"subscriptions-bench-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True)
    with stack(work) as s:
        print(f"writing {args.count:,} subscription records ...", file=sys.stderr)
        started = time.monotonic()
        full_topic = write_many(s, args.count)
        written_s = time.monotonic() - started
        print("router with an empty table ...", file=sys.stderr)
        _, _, empty_mb = measure(s, s.topic("subscriptions", partitions=1, compact=True), "empty", empty=True)
        print(f"router with {args.count:,} subscriptions ...", file=sys.stderr)
        ready_s, cpu_s, full_mb = measure(s, full_topic, "full")
    per_sub = (full_mb - empty_mb) * 1024 * 1024 / args.count
    print()
    print("| measure | value | goal |\n|---|---|---|")
    print(f"| subscription records written (s) | {written_s:.1f} | |")
    print(f"| router time to ready, {args.count:,} subscriptions (s) | {ready_s:.1f} | <= {GOAL_READY_S:.0f} |")
    print(f"| router CPU seconds until ready | {cpu_s:.1f} | |")
    print(f"| router RSS MB, empty table / {args.count:,} subscriptions | {empty_mb:.0f} / {full_mb:.0f} | |")
    print(f"| RSS per subscription (bytes) | {per_sub:,.0f} | <= {GOAL_BYTES:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
