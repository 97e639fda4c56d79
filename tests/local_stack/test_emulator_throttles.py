"""Emulator: throttles, over HTTP with exact 429 bodies and in-process with an injected clock."""

from __future__ import annotations

import threading

import pytest

from local_stack.emulator.config import ThrottleLimits
from local_stack.emulator.errors import ApiError
from local_stack.emulator.throttles import Throttles
from tests.fixtures.emulator import EmulatorHandle, fresh_minute, put_action


@pytest.fixture
def bob_limits(emulator: EmulatorHandle):  # type: ignore[no-untyped-def]
    """Lets a test set bob's limits; they are cleared afterwards."""
    fresh_minute()
    yield lambda **limits: emulator.set_limits("bob", reset_counters=True, **limits)
    emulator.clear_limits("bob")


def test_fires_per_minute_429_exact_body_no_retry_after(emulator: EmulatorHandle, bob_limits) -> None:
    client = emulator.api("bob")
    name = emulator.unique("t")
    client.put(f"_/triggers/{name}", json={})
    bob_limits(firesPerMinute=3)
    statuses = [client.post(f"_/triggers/{name}", json={}).status_code for _ in range(3)]
    assert statuses == [204, 204, 204]
    refused = client.post(f"_/triggers/{name}", json={})
    assert refused.status_code == 429
    assert refused.json()["error"] == "Too many requests in the last minute (count: 4, allowed: 3)."
    assert "Retry-After" not in refused.headers
    again = client.post(f"_/triggers/{name}", json={})
    assert again.json()["error"] == "Too many requests in the last minute (count: 5, allowed: 3)."
    assert emulator.api("alice").post("_/triggers/whatever", json={}).status_code == 404  # per namespace


def test_fires_count_before_the_trigger_is_loaded(emulator: EmulatorHandle, bob_limits) -> None:
    client = emulator.api("bob")
    bob_limits(firesPerMinute=2)
    assert client.post("_/triggers/missing-1", json={}).status_code == 404
    assert client.post("guest/triggers/someone-elses", json={}).status_code == 403
    refused = client.post("_/triggers/missing-2", json={})
    assert refused.status_code == 429
    assert refused.json()["error"] == "Too many requests in the last minute (count: 3, allowed: 2)."


def test_invocations_per_minute(emulator: EmulatorHandle, bob_limits) -> None:
    client = emulator.api("bob")
    name = emulator.unique("a")
    put_action(client, name, "def main(args):\n    return {}\n")
    bob_limits(invocationsPerMinute=1)
    assert client.post(f"_/actions/{name}?blocking=true").status_code == 200
    refused = client.post(f"_/actions/{name}?blocking=true")
    assert refused.status_code == 429
    assert refused.json()["error"] == "Too many requests in the last minute (count: 2, allowed: 1)."


def test_concurrent_invocations(emulator: EmulatorHandle, bob_limits) -> None:
    client = emulator.api("bob")
    name = emulator.unique("slow")
    put_action(client, name, "import time\n\ndef main(args):\n    time.sleep(1.5)\n    return {}\n")
    bob_limits(concurrentInvocations=1)
    results: list[int] = []
    worker = threading.Thread(target=lambda: results.append(client.post(f"_/actions/{name}?blocking=true")
                                                            .status_code))
    worker.start()
    try:
        for _ in range(100):  # wait until the first activation is in flight
            if emulator.limits()["namespaces"]["bob"]["inFlight"] == 1:
                break
            threading.Event().wait(0.02)
        refused = client.post(f"_/actions/{name}")
        assert refused.status_code == 429
        assert refused.json()["error"] == "Too many concurrent requests in flight (count: 1, allowed: 1)."
    finally:
        worker.join()
    assert results == [200]


def test_limits_control_api_validates(emulator: EmulatorHandle) -> None:
    import requests

    response = requests.post(f"{emulator.url}/_emulator/limits", json={"namespace": "bob", "bogus": 1}, timeout=10)
    assert response.status_code == 400
    assert "bogus" in response.json()["error"]


class FakeClock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def test_fixed_window_resets_on_the_minute_boundary() -> None:
    clock = FakeClock(60_000 * 100 + 59_000)
    throttles = Throttles(ThrottleLimits(fires_per_minute=2), clock_ms=clock)
    throttles.check_fire("ns")
    throttles.check_fire("ns")
    with pytest.raises(ApiError) as refused:
        throttles.check_fire("ns")
    assert refused.value.status == 429
    assert refused.value.message == "Too many requests in the last minute (count: 3, allowed: 2)."
    clock.ms += 1_000  # next epoch minute: a fresh window, even though only 1 s passed
    throttles.check_fire("ns")
    throttles.check_fire("ns")
    with pytest.raises(ApiError):
        throttles.check_fire("ns")


def test_every_check_counts_and_namespaces_are_separate() -> None:
    clock = FakeClock(0)
    throttles = Throttles(ThrottleLimits(invocations_per_minute=1), {"big": {"invocationsPerMinute": 5}},
                          clock_ms=clock)
    throttles.check_invoke("a")
    for count in (2, 3):
        with pytest.raises(ApiError) as refused:
            throttles.check_invoke("a")
        assert refused.value.message == f"Too many requests in the last minute (count: {count}, allowed: 1)."
    for _ in range(5):
        throttles.check_invoke("big")
    throttles.check_invoke("b")


def test_concurrency_counts_activations_in_flight() -> None:
    throttles = Throttles(ThrottleLimits(invocations_per_minute=100, concurrent_invocations=2), clock_ms=FakeClock(0))
    for _ in range(2):
        throttles.check_invoke("ns")
        throttles.activation_started("ns")
    with pytest.raises(ApiError) as refused:
        throttles.check_invoke("ns")
    assert refused.value.message == "Too many concurrent requests in flight (count: 2, allowed: 2)."
    throttles.activation_finished("ns")
    throttles.check_invoke("ns")
