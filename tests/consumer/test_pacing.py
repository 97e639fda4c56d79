"""Per-namespace pacing: a throttled namespace slows down to what OpenWhisk allows it, others are
untouched, recovery unpaces within seconds. An injected clock: hypothesis explores limits and timings."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.pacing import Limit, LimitKind, Pacer, PacingPolicy, parse_limit


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


# --- what OpenWhisk says: the 429 bodies (docs/openwhisk-api.md §9.3) --------------------------



def rate_body(count: int, allowed: int) -> str:
    return json.dumps({"error": f"Too many requests in the last minute (count: {count}, allowed: {allowed}).",
                       "code": "tid"})


def concurrency_body(count: int, allowed: int) -> str:
    return json.dumps({"error": f"Too many concurrent requests in flight (count: {count}, allowed: {allowed}).",
                       "code": "tid"})


@given(st.integers(0, 10**6), st.integers(1, 10**6))
def test_both_bodies_are_parsed(count: int, allowed: int) -> None:
    assert parse_limit(rate_body(count, allowed)) == Limit(LimitKind.PER_MINUTE, allowed)
    assert parse_limit(concurrency_body(count, allowed)) == Limit(LimitKind.CONCURRENT, allowed)


@given(st.text(max_size=200))
def test_other_bodies_state_no_limit(body: str) -> None:
    assert parse_limit(body) is None or "Too many" in body


def test_a_zero_allowance_is_no_limit() -> None:
    assert parse_limit(rate_body(5, 0)) is None


def greedy_fires(pacer: Pacer, namespace: str, start: float, seconds: float) -> list[float]:
    """A namespace with endless demand: one waiter firing as soon as the pacer lets it."""
    now, fired, waited = start, [], False
    while now < start + seconds:
        wait = pacer.reserve(namespace, now, waited=waited)
        waited = wait > 0
        if not waited:
            fired.append(now)
        now += wait
    return fired


@settings(max_examples=60, deadline=None)
@given(allowed=st.integers(10, 600), start=st.floats(0, 10_000), window_offset=st.floats(0, 60))
def test_a_stated_allowance_is_never_exceeded_in_any_fixed_minute_and_nearly_reached(
        allowed: int, start: float, window_offset: float) -> None:
    pacer = Pacer()
    pacer.throttled("ns", start, rate_body(allowed + 1, allowed))
    fired = greedy_fires(pacer, "ns", start, 600)
    per_window: dict[int, int] = {}
    for t in fired:
        per_window[int((t + window_offset) // 60)] = per_window.get(int((t + window_offset) // 60), 0) + 1
    assert max(per_window.values()) <= allowed
    assert len(fired) / 600 * 60 >= 0.9 * allowed


@settings(max_examples=60, deadline=None)
@given(throttles=st.integers(1, 60), gap=st.floats(0, 1))
def test_adaptive_pacing_recovers_to_full_within_seconds_after_the_last_429(throttles: int, gap: float) -> None:
    pacer = Pacer()
    now = 0.0
    for _ in range(throttles):
        pacer.throttled("ns", now)
        now += gap
    assert pacer.rate("ns") is not None
    last_429 = now
    waited = False
    while "ns" in pacer and now - last_429 < 60:  # demand continues: the rate climbs back
        wait = pacer.reserve("ns", now, waited=waited)
        waited = wait > 0
        if waited:
            now += wait
        else:
            pacer.succeeded("ns", now)
    assert "ns" not in pacer and now - last_429 <= 15


def test_a_wait_is_taken_at_the_rate_in_force_when_the_fire_goes_out() -> None:
    pacer = Pacer()
    for _ in range(20):
        pacer.throttled("ns", 0.0)  # down to the floor: 0.25/s
    waits = [pacer.reserve("ns", 0.0) for _ in range(10)]
    assert waits[-1] == pytest.approx(40.0)  # ten in line at 0.25/s
    # 6 s later the rate recovered (16/s): asking again, the tenth waits far less than its original 40 s
    assert all(pacer.reserve("ns", 6.0, waited=True) < 1.0 for _ in range(10))


def test_a_waiter_back_a_little_early_keeps_its_place_in_line() -> None:
    pacer = Pacer()
    pacer.throttled("ns", 0.0, rate_body(61, 60))
    first = pacer.reserve("ns", 0.0)
    behind = [pacer.reserve("ns", 0.0) for _ in range(5)]
    assert behind[-1] == pytest.approx(6 * first)
    again = pacer.reserve("ns", first - 1e-3, waited=True)
    assert 0 < again < 0.01  # only the millisecond it is early, not the whole line again
    pacer.arrived("ns")  # one behind gives up: no place is leaked
    assert pacer.reserve("ns", first + 1e-3, waited=True) == 0.0


def test_an_idle_namespace_is_forgotten_and_the_end_is_reported() -> None:
    pacer = Pacer(PacingPolicy(forget_after_s=120))
    pacer.throttled("ns", 0.0, rate_body(61, 60))
    assert pacer.expire(100.0) == [] and "ns" in pacer
    assert pacer.expire(121.0) == ["ns"] and len(pacer) == 0


def test_a_namespace_firing_at_its_allowance_stays_paced() -> None:
    pacer = Pacer(PacingPolicy(forget_after_s=120))
    pacer.throttled("ns", 0.0, rate_body(61, 60))
    greedy_fires(pacer, "ns", 0.0, 300)
    assert pacer.expire(300.0) == [] and pacer.rate("ns") == pytest.approx(60 * 0.95 / 60)


def test_a_concurrency_body_caps_concurrency_and_others_are_untouched() -> None:
    pacer = Pacer()
    pacer.throttled("ns", 0.0, concurrency_body(31, 30))
    assert pacer.concurrency("ns") == 30 and pacer.concurrency("other") is None
    assert pacer.reserve("other", 0.0) == 0.0


def test_a_body_less_429_after_a_stated_allowance_keeps_the_allowance() -> None:
    pacer = Pacer()
    pacer.throttled("ns", 0.0, rate_body(121, 120))
    pacer.throttled("ns", 1.0)
    pacer.succeeded("ns", 2.0)
    assert pacer.rate("ns") == pytest.approx(120 * 0.95 / 60)


@settings(max_examples=60, deadline=None)
@given(allowed=st.integers(10, 300), start=st.floats(0, 10_000))
def test_against_openwhisk_windows_only_the_first_429_is_refused_and_the_allowance_is_reached(
        allowed: int, start: float) -> None:
    """A controller as OpenWhisk's: epoch-minute windows counting every check, refused ones too.
    One greedy waiter (a trigger) fires unpaced until the first 429, then as the pacer says."""
    pacer = Pacer()
    counts: dict[int, int] = {}
    now, waited, refused, accepted = start, False, 0, []
    while now < start + 600:
        wait = pacer.reserve("ns", now, waited=waited)
        waited = wait > 0
        if waited:
            now += wait
            continue
        window = int(now // 60)
        counts[window] = counts.get(window, 0) + 1
        if counts[window] > allowed:
            refused += 1
            pacer.throttled("ns", now, rate_body(counts[window], allowed), window_left_s=60 - now % 60)
        else:
            accepted.append(now)
            pacer.succeeded("ns", now)
        now += 0.001
    assert refused == 1
    steady = [t for t in accepted if t > start + 120]
    assert len(steady) / (steady[-1] - steady[0]) * 60 >= 0.9 * allowed


def test_after_a_per_minute_429_the_namespace_holds_until_the_window_ends() -> None:
    pacer = Pacer()
    pacer.throttled("ns", 10.0, rate_body(61, 60), window_left_s=30.0)
    assert pacer.reserve("ns", 10.0) == pytest.approx(30.0 + 60 / 57)
    assert pacer.reserve("ns", 40.0 + 60 / 57, waited=True) == 0.0


# --- a per-minute 429 our own fires do not explain: the hold is probed (issue 13, the 429 drain) ---


def test_an_unexplained_per_minute_429_is_probed_and_a_passing_probe_lifts_the_hold() -> None:
    pacer = Pacer(PacingPolicy(probe_interval_s=5.0, probe_answer_s=1.0))
    for _ in range(10):
        pacer.counted("ns", 7)  # 10 fires of our own in window 7: nowhere near 6,000
    pacer.throttled("ns", 10.0, rate_body(6001, 6000), window_left_s=50.0, window=7)
    waits = [pacer.reserve("ns", 10.0) for _ in range(3)]
    assert min(waits) >= 5.0 and max(waits) < 5.1  # back at the next probe, not the window's end
    assert pacer.reserve("ns", 15.0, waited=True) == 0.0  # the probe
    behind = pacer.reserve("ns", 15.0, waited=True)
    assert 1.0 <= behind < 1.1  # back when the probe's answer is due
    pacer.succeeded("ns", 15.05)  # it passed: the throttle ended before its window
    assert pacer.reserve("ns", 16.0, waited=True) == 0.0
    assert pacer.rate("ns") == pytest.approx(6000 * 0.95 / 60)  # still paced at the stated allowance


def test_a_refused_probe_holds_on_and_probes_again_one_interval_later() -> None:
    pacer = Pacer(PacingPolicy(probe_interval_s=5.0))
    pacer.counted("ns", 7)
    pacer.throttled("ns", 10.0, rate_body(61, 60), window_left_s=50.0, window=7)
    assert pacer.reserve("ns", 15.0) == 0.0  # the probe
    pacer.counted("ns", 7)
    pacer.throttled("ns", 15.1, rate_body(62, 60), window_left_s=44.9, window=7)
    assert pacer.reserve("ns", 15.2) == pytest.approx(4.9 + 60 / 57)
    assert pacer.reserve("ns", 20.1, waited=True) == 0.0  # the next probe


def test_a_success_that_is_not_the_probe_does_not_lift_the_hold() -> None:
    pacer = Pacer(PacingPolicy(probe_interval_s=5.0))
    pacer.counted("ns", 7)
    pacer.throttled("ns", 10.0, rate_body(61, 60), window_left_s=50.0, window=7)
    pacer.succeeded("ns", 10.2)  # a fire sent before the 429, answered after it
    assert pacer.reserve("ns", 11.0) > 3.9


def test_a_per_minute_429_our_own_fires_explain_holds_to_the_window_end_without_probes() -> None:
    pacer = Pacer(PacingPolicy(probe_interval_s=5.0))
    for _ in range(61):
        pacer.counted("ns", 7)
    pacer.counted("other", 8)  # a new window: counts start again ...
    for _ in range(61):
        pacer.counted("ns", 8)  # ... and ours there explain the 429
    pacer.throttled("ns", 10.0, rate_body(61, 60), window_left_s=30.0, window=8)
    assert pacer.reserve("ns", 10.0) == pytest.approx(30.0 + 60 / 57)
    assert pacer.reserve("ns", 15.0) > 25.0  # no probe


@settings(max_examples=60, deadline=None)
@given(start=st.floats(0, 10_000), phase=st.floats(0, 60))
def test_after_a_429_burst_that_ends_mid_window_firing_resumes_within_a_probe_interval(
        start: float, phase: float) -> None:
    """The bench's 429 burst: a controller (or proxy) answering every fire with the per-minute
    body for 30 s, whatever the window; one greedy waiter fires as the pacer says. Wall clock ==
    the pacer's clock here; the window is the epoch minute."""
    policy = PacingPolicy(probe_interval_s=5.0, probe_answer_s=1.0)
    pacer = Pacer(policy)
    begin = start - start % 60 + phase  # the burst starts anywhere in a window
    end = begin + 30.0
    now, waited, refused, resumed = begin, False, 0, None
    while now < end + 120 and resumed is None:
        wait = pacer.reserve("ns", now, waited=waited)
        waited = wait > 0
        if waited:
            now += wait
            continue
        window = int(now // 60)
        pacer.counted("ns", window)
        if now < end:
            refused += 1
            pacer.throttled("ns", now, rate_body(100_001, 100_000), window_left_s=60 - now % 60 + 0.5, window=window)
        else:
            resumed = now
            pacer.succeeded("ns", now + 0.05)
        now += 0.05  # the answer's round trip
    assert resumed is not None and resumed - end <= policy.probe_interval_s + policy.probe_answer_s
    assert refused <= 30 / policy.probe_interval_s + 2  # the first 429 and one per probe


def test_fires_within_counts_none_before_a_hold_ends_then_the_stated_rate() -> None:
    """What the firer takes back from the park for a paced namespace: what it can fire soon."""
    pacer = Pacer()
    assert pacer.fires_within("ns", 0.0, 2.0) is None  # unpaced: no bound
    body = '{"error":"Too many requests in the last minute (count: 61, allowed: 60)."}'
    pacer.throttled("ns", 100.0, body, window_left_s=30.0)  # held to 130, then 0.95/s
    assert pacer.fires_within("ns", 100.0, 2.0) == 0
    assert pacer.fires_within("ns", 129.0, 2.0) == 0  # 1 s of the next window at 0.95/s
    assert pacer.fires_within("ns", 131.0, 2.0) == 2  # 0.95 in hand, 1.9 more within 2 s
    assert pacer.fires_within("ns", 200.0, 10.0) == 10  # one token of burst at most, 9.5 more
    assert pacer.fires_within("ns", 200.0, 10.0) == 10  # read only: asking again changes nothing
