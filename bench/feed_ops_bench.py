"""Benchmark: kafkaFeed's events at 1,000 and at 1,000,000 subscriptions, through a router's read API
and through the topic read it falls back to (issue 15, deliverable 3).

    .venv/bin/python -m bench.feed_ops_bench [--counts 1000,1000000] [--repeats 5] [--scan-repeats 1]

Starts its own Kafka broker on 127.0.0.1. For each count: writes that many subscription records as
bench/subscriptions_bench.py does (a distinct trigger and credential each, 10 topics), a grant for
the namespace, and starts one `python -m consumer` with ROLES=router and the sealing keys (so it
serves the read API). Then it runs the feed lifecycle (feed.lifecycle, the web action's code) in
this process against real Kafka with kafka-python clients kept warm, as a warm action does, for one
trigger of its own: READ, UPDATE, PAUSE, UNPAUSE, DELETE (and CREATE again, untimed between
repeats), each timed from the call to its answer (the Kafka writes acknowledged). Once through
``RouterStore`` (the router's table, read-your-writes at the topic's end offset), once through
``KafkaStore`` alone (the whole topic read per lookup: what every event did before, and what the
action does when no router answers). The OpenWhisk round trip (controller, the caller's trigger
GET) is left out: it does not depend on the number of subscriptions. Sealing is real (UPDATE
seals the caller's key again).

Goal: each event under 1 s at a million subscriptions through the API, within 2x of the 1,000 case.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
from cryptography.fernet import Fernet
from kafka import KafkaConsumer, KafkaProducer

from bench.firer_bench import ConsumerProcess, wait_until
from bench.router_bench import GUEST, Stack, stack
from bench.subscriptions_bench import write_many
from feed import grants, lookup
from feed.grants import Grant, TopicPolicy
from feed.lifecycle import Lifecycle
from feed.store import KafkaStore, RouterStore, SubscriptionStore
from messaging_lib.credentials import Sealer

EVENTS = ("READ", "UPDATE", "PAUSE", "UNPAUSE", "DELETE")
TRIGGER = "/guest/bench-trigger"
GOAL_S, GOAL_RATIO = 1.0, 2.0


class ApiRouter(ConsumerProcess):
    """`python -m consumer` with ROLES=router and the sealing keys: the read API is on."""

    def __init__(self, s: Stack, subscriptions_topic: str, sealing_keys: str, name: str) -> None:
        super().__init__(s.work, f"router-{name}.log", {
            "ROLES": "router", "KAFKA_BOOTSTRAP_SERVERS": s.bootstrap, "SUBSCRIPTIONS_TOPIC": subscriptions_topic,
            "SEALING_KEYS": sealing_keys, "TRIGGER_MESSAGES_TOPIC": f"envelopes-{name}",
            "DEAD_LETTER_TOPIC": f"envelopes-{name}-dl", "ROUTER_GROUP": f"router-{name}", "LOG_LEVEL": "WARNING"})
        started = time.monotonic()
        wait_until(lambda: requests.get(f"{self.url}/readyz", timeout=1).ok, "the router", 600)
        self.ready_s = time.monotonic() - started

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Caller:
    """feed.lifecycle.Caller: the caller owns the trigger (OpenWhisk's answer is left out); sealing is real."""

    sealer: Sealer

    def check_trigger(self, fqn: str) -> None:
        return None

    def seal(self, fqn: str) -> str:
        return self.sealer.seal_subscription(GUEST, fqn)


def timed(lifecycle: Lifecycle, event: str, **params: object) -> float:
    started = time.perf_counter()
    lifecycle.handle(event, TRIGGER, params)
    return time.perf_counter() - started


def run_events(store: SubscriptionStore, caller: Caller, data_topic: str, repeats: int) -> dict[str, list[float]]:
    """``repeats`` rounds of the events on the bench's trigger (created first, untimed): seconds per event."""
    lifecycle = Lifecycle(lambda: store, caller, policy=TopicPolicy())
    times: dict[str, list[float]] = {e: [] for e in EVENTS}
    for round_ in range(repeats):
        lifecycle.handle("CREATE", TRIGGER, {"topic": data_topic})
        times["READ"].append(timed(lifecycle, "READ"))
        times["UPDATE"].append(timed(lifecycle, "UPDATE", maxBatchMessages=100 + round_))
        times["PAUSE"].append(timed(lifecycle, "PAUSE"))
        times["UNPAUSE"].append(timed(lifecycle, "UNPAUSE"))
        times["DELETE"].append(timed(lifecycle, "DELETE"))
    return times


@dataclass
class Case:
    count: int
    ready_s: float
    api: dict[str, list[float]]
    scan: dict[str, list[float]]
    fell_back: int  # during the measured rounds
    warm_fell_back: int  # during the warm-up round


def measure(s: Stack, count: int, repeats: int, scan_repeats: int) -> Case:
    sealing_keys = Fernet.generate_key().decode()
    print(f"writing {count:,} subscription records ...", file=sys.stderr)
    topic = write_many(s, count)
    producer = KafkaProducer(bootstrap_servers=s.bootstrap, acks="all", linger_ms=0,
                             max_request_size=2 * 1024 * 1024)
    producer.send(topic, key=grants.grant_key("guest", "", prefix=True),
                  value=grants.encode_grant(Grant("guest", "", prefix=True), int(time.time() * 1000))).get(30)
    consumer = KafkaConsumer(bootstrap_servers=s.bootstrap, group_id=None, enable_auto_commit=False,
                             max_partition_fetch_bytes=4 * 1024 * 1024, request_timeout_ms=20_000)
    data_topic = s.topic("bench-data", partitions=4)
    caller = Caller(Sealer([sealing_keys]))
    print(f"router with {count:,} subscriptions ...", file=sys.stderr)
    router = ApiRouter(s, topic, sealing_keys, f"ops-{count}")
    try:
        def kafka() -> KafkaStore:
            return KafkaStore(lambda: consumer, lambda: producer, topic, [s.bootstrap], lambda: 600.0)
        via_api = RouterStore(kafka(), router.url, lookup.api_secrets(sealing_keys)[0], lambda: 30.0)
        run_events(via_api, caller, data_topic, 1)  # warm: connections, metadata, the router's first answers
        warm_fallbacks = via_api.fell_back  # e.g. the router's group still joining right after ready
        print(f"events through the read API x{repeats} ...", file=sys.stderr)
        api = run_events(via_api, caller, data_topic, repeats)
        print(f"events through the topic read x{scan_repeats} ...", file=sys.stderr)
        scan = run_events(kafka(), caller, data_topic, scan_repeats)
        return Case(count, router.ready_s, api, scan, via_api.fell_back - warm_fallbacks, warm_fallbacks)
    finally:
        router.stop()
        consumer.close()
        producer.close()


def ms(values: list[float], pick: Callable[[list[float]], float] = statistics.median) -> str:
    return f"{pick(values) * 1000:,.0f}"


def report(cases: list[Case]) -> None:
    small, large = cases[0], cases[-1]
    print()
    print(f"kafkaFeed event latency, ms (median of the repeats, max in brackets); {small.count:,} vs "
          f"{large.count:,} subscriptions")
    print()
    print(f"| event | API, {small.count:,} | API, {large.count:,} | API ratio | topic read, {small.count:,} "
          f"| topic read, {large.count:,} |")
    print("|---|---|---|---|---|---|")
    worst_s, worst_ratio = 0.0, 0.0
    for event in EVENTS:
        a, b = statistics.median(small.api[event]), statistics.median(large.api[event])
        worst_s, worst_ratio = max(worst_s, b), max(worst_ratio, b / a)
        print(f"| {event} | {ms(small.api[event])} ({ms(small.api[event], max)}) | {ms(large.api[event])} "
              f"({ms(large.api[event], max)}) | {b / a:.2f} | {ms(small.scan[event])} | {ms(large.scan[event])} |")
    print()
    print("| measure | value | goal |\n|---|---|---|")
    print(f"| slowest event through the API at {large.count:,} (median, ms) | {worst_s * 1000:,.0f} | "
          f"< {GOAL_S * 1000:,.0f} |")
    print(f"| largest API ratio {large.count:,} / {small.count:,} | {worst_ratio:.2f} | <= {GOAL_RATIO:.0f} |")
    for case in cases:
        print(f"| router ready with {case.count:,} subscriptions (s) | {case.ready_s:.1f} | |")
        print(f"| lookups that fell back to the topic read, {case.count:,}: measured (warm-up) | "
              f"{case.fell_back} ({case.warm_fell_back}) | 0 |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--counts", default="1000,1000000", help="comma-separated subscription counts (first: the base)")
    p.add_argument("--repeats", type=int, default=5, help="rounds of the events through the API")
    p.add_argument("--scan-repeats", type=int, default=1, help="rounds through the topic read (slow at a million)")
    args = p.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",")]
    work = Path(os.environ.get("BENCH_WORK", "/tmp")) / f"feed-ops-bench-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True)
    with stack(work) as s:
        cases = [measure(s, count, args.repeats, args.scan_repeats) for count in counts]
    report(cases)
    return 0


if __name__ == "__main__":
    sys.exit(main())
