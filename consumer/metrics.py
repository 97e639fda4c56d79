"""Prometheus metrics of the consumer. Labels are small fixed sets (outcome, reason, status
class): never a trigger name, namespace or key, so cardinality stays bounded and nothing secret
leaks into /metrics."""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import metrics as _prometheus_metrics
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString


def _created_series() -> bool:
    """Whether ``_created`` samples are exported (prometheus-client's switch, read as its metrics do)."""
    return bool(getattr(_prometheus_metrics, "_use_created", True))


class LoopCounter:
    """A counter bumped once per fire or message, as a plain number on the firer's loop, and read
    only when /metrics is rendered (a custom collector): prometheus-client's ``Counter`` takes a
    lock per ``inc`` and ``labels`` builds a key and takes another, a few per cent of the firer's
    CPU (issue 15). Same exposition as a ``Counter``: ``<name>_total`` and ``<name>_created`` per
    label set, label sets in the order first used. Only the loop's thread may ``inc``; the
    scrape reads from another thread, which at worst sees a count one fire old."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = (),
                 registry: CollectorRegistry | None = None) -> None:
        self._name, self._documentation, self._labelnames = name, documentation, tuple(labelnames)
        self._children: dict[tuple[str, ...], LoopCounter] = {}
        self.value = 0.0
        self.created = time.time()
        if registry is not None:
            registry.register(self)

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self.value += amount

    def labels(self, *values: str) -> LoopCounter:
        """The child of one label set; callers on a hot path keep it."""
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self._labelnames):
                raise ValueError(f"{self._name}: expected labels {self._labelnames}, got {values}")
            child = self._children[values] = LoopCounter(self._name, self._documentation)
        return child

    def describe(self) -> Iterator[Metric]:
        yield Metric(self._name, self._documentation, "counter")

    def collect(self) -> Iterator[Metric]:
        family = Metric(self._name, self._documentation, "counter")
        children = list(self._children.items()) if self._labelnames else [((), self)]
        created = _created_series()
        for values, child in children:
            labels = dict(zip(self._labelnames, values, strict=True))
            family.add_sample(self._name + "_total", labels, child.value)
            if created:
                family.add_sample(self._name + "_created", labels, child.created)
        yield family


class LoopHistogram:
    """A histogram observed once per fire, as plain numbers on the firer's loop (see
    ``LoopCounter``; prometheus-client's ``Histogram.observe`` takes two locks). Same exposition
    as a ``Histogram`` without labels: cumulative ``_bucket`` samples (``le`` formatted as
    prometheus-client does, +Inf last), ``_count``, ``_sum``, ``_created``."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float],
                 registry: CollectorRegistry | None = None) -> None:
        self._name, self._documentation = name, documentation
        self._bounds = sorted(float(b) for b in buckets)
        if self._bounds[-1] != math.inf:
            self._bounds.append(math.inf)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        self._created = time.time()
        if registry is not None:
            registry.register(self)

    def observe(self, amount: float) -> None:
        self._counts[bisect.bisect_left(self._bounds, amount)] += 1  # the first bound >= amount
        self._sum += amount

    def describe(self) -> Iterator[Metric]:
        yield Metric(self._name, self._documentation, "histogram")

    def collect(self) -> Iterator[Metric]:
        family = Metric(self._name, self._documentation, "histogram")
        counts, total = list(self._counts), self._sum  # one moment's copy: the loop keeps counting
        cumulative = 0.0
        for bound, count in zip(self._bounds, counts, strict=True):
            cumulative += count
            family.add_sample(self._name + "_bucket", {"le": floatToGoString(bound)}, cumulative)
        family.add_sample(self._name + "_count", {}, cumulative)
        if self._bounds[0] >= 0:
            family.add_sample(self._name + "_sum", {}, total)
        if _created_series():
            family.add_sample(self._name + "_created", {}, self._created)
        yield family


class FirerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        # per message or per fire: counted on the loop in plain numbers (LoopCounter, LoopHistogram)
        self.consumed = LoopCounter("firer_messages_consumed", "Trigger messages read from Kafka", registry=registry)
        self.fired = LoopCounter("firer_messages_fired", "Messages whose trigger fire was accepted (2xx)",
                             registry=registry)
        self.attempts = LoopCounter("firer_fire_attempts", "Fire requests sent, by HTTP status class",
                                ["status"], registry=registry)
        self.dead_lettered = Counter("firer_messages_dead_lettered", "Messages written to the dead-letter topic",
                                     ["reason"], registry=registry)
        self.retries = Counter("firer_fire_retries", "Fire attempts that will be retried", registry=registry)
        self.in_flight = Gauge("firer_in_flight", "Messages taken from Kafka and not finished", registry=registry)
        self.assigned = Gauge("firer_assigned_partitions", "Partitions of the trigger-messages topic held",
                              registry=registry)
        self.paused = Gauge("firer_paused", "1 while partitions are paused for backpressure", registry=registry)
        self.paced_namespaces = Gauge("firer_paced_namespaces", "Namespaces throttled now: paced after a 429 "
                                      "(at the limit its body stated, or adaptively)", registry=registry)
        self.paced_delays = Counter("firer_fires_delayed_by_pacing", "Fires that waited for their namespace's "
                                    "pace (a throttled namespace's allowance)", registry=registry)
        self.fire_seconds = LoopHistogram("firer_fire_seconds", "Duration of one fire request", registry=registry,
                                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.commits = Counter("firer_commits", "Offset commits the broker accepted", registry=registry)
        self.commit_failures = Counter("firer_commit_failures", "Offset commits refused (retried with the latest "
                                       "offsets), by error", ["reason"], registry=registry)
        self.skipped = Counter("firer_messages_skipped", "Messages a partition's previous owner had finished "
                               "(read from its commit metadata), not fired again", registry=registry)
        self.rebalances = Counter("firer_rebalances", "Rebalances this member took part in", registry=registry)
        self.rebalance_seconds = Histogram("firer_rebalance_seconds", "Time from a rebalance's start to its end",
                                           registry=registry, buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
        self.member = Gauge("firer_group_member", "1 while a valid member of the group that reaches Kafka "
                            "(what /readyz reports)", registry=registry)
        self.fires_without_rule = LoopCounter("firer_fires_without_rule", "Fires answered 204: the trigger has no "
                                              "active rule, so nothing ran (see consumer.no_rule)", registry=registry)
        self.parked = Gauge("firer_parked_messages", "Messages parked (in the park topic, not yet taken back): "
                            "their namespace was over its share of the in-flight window while throttled or "
                            "failing (consumer.parking)", registry=registry)
        self.parked_total = Counter("firer_messages_parked", "Messages written to the park topic",
                                    registry=registry)
        self.parked_seconds = Histogram("firer_parked_seconds", "Time a parked message waited before it was "
                                        "taken back", registry=registry,
                                        buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800))
        self.partitions_lost = Counter("firer_partitions_lost", "Partitions dropped uncommitted because the "
                                       "membership was lost (fenced, session expired)", registry=registry)
        self._attempts_by_status: dict[int | None, LoopCounter] = {}

    def attempted(self, status: int | None) -> None:
        """Count a fire request by its status class. The labelled child is looked up once per status
        (``labels`` costs a lock and a tuple key per call; this is once per fire)."""
        child = self._attempts_by_status.get(status)
        if child is None:
            child = self._attempts_by_status[status] = self.attempts.labels(status_class(status))
        child.inc()


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.consumed = Counter("router_records_consumed", "Records read from subscribed topics", registry=registry)
        self.envelopes = Counter("router_envelopes_written", "Envelopes (batched fires) acknowledged",
                                 registry=registry)
        self.messages = Counter("router_messages_batched", "Messages delivered inside envelopes", registry=registry)
        self.dead_lettered = Counter("router_messages_dead_lettered", "Records written to the dead-letter topic",
                                     ["reason"], registry=registry)
        self.catchups = Counter("router_catchups", "Partitions rewound for a subscription's catch-up",
                                registry=registry)
        self.subscriptions = Gauge("router_subscriptions", "Subscriptions in the table", registry=registry)
        self.topics = Gauge("router_topics", "Topics subscribed", registry=registry)
        self.assigned = Gauge("router_assigned_partitions", "Partitions of subscribed topics held",
                              registry=registry)
        self.in_flight = Gauge("router_in_flight", "Records routed and not yet acknowledged", registry=registry)
        self.commits = Counter("router_commits", "Offset commits", registry=registry)


def status_class(status: int | None) -> str:
    return "none" if status is None else f"{status // 100}xx" if status not in (429,) else "429"
