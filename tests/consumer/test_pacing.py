"""Per-namespace pacing: a throttled namespace slows down, others are untouched, recovery unpaces."""

from __future__ import annotations

from consumer.pacing import Pacer, PacingPolicy


def test_unthrottled_namespaces_never_wait_and_hold_no_state() -> None:
    pacer = Pacer()
    assert [pacer.reserve(f"ns{i}", 0.0) for i in range(1000)] == [0.0] * 1000
    assert len(pacer) == 0


def test_a_429_paces_only_that_namespace() -> None:
    pacer = Pacer(PacingPolicy(start_rate_per_s=10))
    pacer.throttled("slow", now=100.0)
    waits = [pacer.reserve("slow", 100.0) for _ in range(5)]
    assert all(abs(w - 0.1 * (i + 1)) < 1e-9 for i, w in enumerate(waits))
    assert pacer.reserve("fast", 100.0) == 0.0


def test_repeated_429s_halve_the_rate_down_to_the_floor() -> None:
    pacer = Pacer(PacingPolicy(start_rate_per_s=8, min_rate_per_s=1))
    for _ in range(10):
        pacer.throttled("ns", 0.0)
    assert pacer.rate("ns") == 1


def test_successes_speed_up_until_unpaced() -> None:
    policy = PacingPolicy(start_rate_per_s=10, unpace_above_per_s=100, increase=2)
    pacer = Pacer(policy)
    pacer.throttled("ns", 0.0)
    for _ in range(3):
        pacer.succeeded("ns")
    assert pacer.rate("ns") == 80
    pacer.succeeded("ns")
    assert pacer.rate("ns") is None and len(pacer) == 0
