"""Prometheus metrics of the consumer. Labels are small fixed sets (outcome, reason, status
class): never a trigger name, namespace or key, so cardinality stays bounded and nothing secret
leaks into /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class FirerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.consumed = Counter("firer_messages_consumed", "Trigger messages read from Kafka", registry=registry)
        self.fired = Counter("firer_messages_fired", "Messages whose trigger fire was accepted (2xx)",
                             registry=registry)
        self.attempts = Counter("firer_fire_attempts", "Fire requests sent, by HTTP status class",
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
        self.fire_seconds = Histogram("firer_fire_seconds", "Duration of one fire request", registry=registry,
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
        self.fires_without_rule = Counter("firer_fires_without_rule", "Fires answered 204: the trigger has no "
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
        self._attempts_by_status: dict[int | None, Counter] = {}

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
