"""Fair to every namespace (issue 13; DESIGN.md section 5, *Fairness*), on real Kafka with the
emulator's real throttles (fixed one-minute windows, OpenWhisk's exact 429 bodies).

alice sends far more than her namespace's per-minute allowance at once; bob sends a message now
and then. bob's messages fire promptly and in order; alice's all fire, in order, at her allowed
rate after the first 429 (paced from the 429 body, so only the first wave is refused), none
dead-lettered while within the retry age.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator

import pytest
from kafka import KafkaProducer

from messaging_lib import envelope
from messaging_lib.credentials import Sealer
from tests.e2e.helpers import Emulator, OpenWhisk, unique, wait_for
from tests.fixtures.emulator import fresh_minute
from tests.fixtures.messaging import Messaging

pytestmark = pytest.mark.timeout(600)
ALICE_PER_MINUTE = 120
ALICE_MESSAGES = 200  # 80 over her allowance: those wait for her pace
BOB_MESSAGES = 30


@pytest.fixture
def limits(emulator) -> Iterator[None]:
    fresh_minute(margin_s=30)
    emulator.set_limits("alice", reset_counters=True, firesPerMinute=ALICE_PER_MINUTE)
    yield
    emulator.clear_limits("alice")


def _fires(control: Emulator, triggers: list[str], run: str) -> list[dict]:
    out = []
    for trigger in triggers:
        for fire in control.fires(trigger):
            payload = fire["payload"]
            if isinstance(payload, dict) and payload.get("run") == run:
                out.append(fire)
    return out


def _in_order(fires: list[dict]) -> bool:
    """Accepted fires of each trigger in increasing message number (duplicates allowed)."""
    by_trigger: dict[str, list[int]] = {}
    for fire in sorted(fires, key=lambda f: f["seq"]):
        if fire["status"] in (202, 204):
            by_trigger.setdefault(fire["trigger"], []).append(fire["payload"]["i"])
    return all(ns == sorted(ns) for ns in by_trigger.values())


def test_a_namespace_over_its_limit_fires_at_its_allowance_while_another_fires_promptly(
        messaging: Messaging, emulator, consumers, kafka, limits: None) -> None:
    topic = kafka.create_topic("fair", partitions=4)
    consumers(TRIGGER_MESSAGES_TOPIC=topic, FIRER_GROUP=f"firer-{topic}")
    control = Emulator(emulator.url)
    sealer = Sealer([messaging.sealing_key])
    run = unique("fair")
    alice = [f"/alice/{OpenWhisk(emulator.url, emulator.auth('alice')).trigger(unique(f'a{i}'))}" for i in range(3)]
    bob = [f"/bob/{OpenWhisk(emulator.url, emulator.auth('bob')).trigger(unique(f'b{i}'))}" for i in range(2)]
    tokens = {"alice": sealer.seal(emulator.auth("alice"), ["/alice/*"]),
              "bob": sealer.seal(emulator.auth("bob"), ["/bob/*"])}
    producer = KafkaProducer(bootstrap_servers=messaging.bootstrap, linger_ms=2, acks="all")
    produced_ms: dict[int, int] = {}

    def send(trigger: str, i: int) -> None:
        ns = trigger.split("/")[1]
        env = envelope.new_envelope(source="/tests/fair", trigger=trigger, credential=tokens[ns],
                                    data={"run": run, "i": i})
        producer.send(topic, key=trigger.encode(), value=envelope.to_structured(env),
                      headers=envelope.structured_headers())

    for i in range(ALICE_MESSAGES):
        send(alice[i % len(alice)], i)
    producer.flush()
    for i in range(1000, 1000 + BOB_MESSAGES):  # while alice is throttled
        produced_ms[i] = int(time.time() * 1000)
        send(bob[i % len(bob)], i)
        producer.flush()
        time.sleep(0.5)

    bob_fires = wait_for(lambda: (f := [x for x in _fires(control, bob, run) if x["status"] in (202, 204)])
                         and len({x["payload"]["i"] for x in f}) == BOB_MESSAGES and f,
                         timeout_s=60, what="bob's messages fired")
    first_ms: dict[int, int] = {}
    for fire in bob_fires:
        first_ms.setdefault(fire["payload"]["i"], fire["time_ms"])
    latencies = sorted(first_ms[i] - produced_ms[i] for i in produced_ms)
    p99 = latencies[int(0.99 * (len(latencies) - 1))]
    print(f"\nbob while alice is throttled: p50 {statistics.median(latencies)} ms, p99 {p99} ms")
    assert p99 < 2000 and _in_order(bob_fires)

    expected = ALICE_MESSAGES
    alice_fires = wait_for(lambda: (f := _fires(control, alice, run))
                           and len({x["payload"]["i"] for x in f if x["status"] in (202, 204)}) == expected and f,
                           timeout_s=240, interval_s=1, what="every alice message fired")
    refused = [f for f in alice_fires if f["status"] == 429]
    assert refused, "alice was never throttled: the test proves nothing"
    first_429 = min(f["time_ms"] for f in refused)
    paced = sorted(f["time_ms"] for f in alice_fires if f["status"] in (202, 204) and f["time_ms"] > first_429 + 2000)
    rate_per_min = (len(paced) - 1) / (paced[-1] - paced[0]) * 60_000
    print(f"alice: {len(refused)} refused (429), then {len(paced)} fires at {rate_per_min:.1f}/min "
          f"(allowed {ALICE_PER_MINUTE}/min)")
    assert 0.85 * ALICE_PER_MINUTE <= rate_per_min <= 1.1 * ALICE_PER_MINUTE
    assert len(refused) <= 10  # the first wave (one per trigger in flight), not one per message
    assert _in_order(alice_fires)
