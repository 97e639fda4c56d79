"""The firer's loop metrics (consumer.metrics.LoopCounter, LoopHistogram) render exactly what
prometheus-client's Counter and Histogram render for the same calls: /metrics keeps its names and
values while the firer counts in plain numbers."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from consumer.metrics import FirerMetrics, LoopCounter, LoopHistogram, status_class

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def rendered(registry: CollectorRegistry) -> str:
    """The exposition with creation times (a timestamp per object) made comparable."""
    return re.sub(r"(_created(\{[^}]*\})?) \S+", r"\1 T", generate_latest(registry).decode())


def test_a_loop_counter_renders_as_a_counter() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    plain = Counter("firer_x", "Things", registry=theirs), LoopCounter("firer_x", "Things", registry=ours)
    labelled = (Counter("firer_y", "By class", ["status"], registry=theirs),
                LoopCounter("firer_y", "By class", ["status"], registry=ours))
    assert rendered(theirs) == rendered(ours)  # a labelled counter without children shows no sample
    for counter in plain:
        counter.inc()
        counter.inc(2.5)
    for counter in labelled:
        counter.labels("2xx").inc()
        counter.labels("none").inc(3)
        counter.labels("2xx").inc()
    assert rendered(theirs) == rendered(ours)
    assert ours.get_sample_value("firer_y_total", {"status": "2xx"}) == 2.0
    assert ours.get_sample_value("firer_x_total") == 3.5


def test_a_loop_counter_refuses_what_a_counter_refuses() -> None:
    counter = LoopCounter("firer_z", "Things", ["status"])
    with pytest.raises(ValueError):
        counter.labels("2xx").inc(-1)
    with pytest.raises(ValueError):
        counter.labels("2xx", "extra")


def test_a_loop_histogram_renders_as_a_histogram_including_values_on_a_bound() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    histograms = (Histogram("firer_h_seconds", "Durations", registry=theirs, buckets=BUCKETS),
                  LoopHistogram("firer_h_seconds", "Durations", registry=ours, buckets=BUCKETS))
    assert rendered(theirs) == rendered(ours)
    for histogram in histograms:
        for value in (0.0, 0.005, 0.0051, 0.3, 1, 29.9, 30, 31, 1e9):
            histogram.observe(value)
    assert rendered(theirs) == rendered(ours)


def test_firer_metrics_count_attempts_by_status_class() -> None:
    registry = CollectorRegistry()
    metrics = FirerMetrics(registry)
    for status in (200, 204, 429, None, 503, 200):
        metrics.attempted(status)
    counts = {cls: registry.get_sample_value("firer_fire_attempts_total", {"status": cls})
              for cls in ("2xx", "429", "none", "5xx")}
    assert counts == {"2xx": 3.0, "429": 1.0, "none": 1.0, "5xx": 1.0}
    assert status_class(404) == "4xx"
