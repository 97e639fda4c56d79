"""Benchmark: fairness between namespaces (issue 13; DESIGN.md section 5, *Fairness*).

    .venv/bin/python -m bench.fairness_bench [--code CHECKOUT] [--over 5000]

Starts its own Kafka broker and emulator (real per-namespace throttles, OpenWhisk's 429 bodies)
on 127.0.0.1 and one `python -m consumer` firer per scenario, from this checkout or ``--code``
(another checkout: the code before a change). Prints, in one run:

- bob's produce→fire p50/p99 (5 messages/s) with alice idle, and with alice over her
  per-minute allowance by ``--over`` messages (a message not fired within the wait counts as
  never: reported as such);
- alice's achieved fire rate while throttled against her allowance, and her 429s after the first;
- the time to drain the backlog after a 30 s burst of 429s next to a 30 s burst of 503s, under a
  steady 50 messages/s. The emulator's injected 429s carry OpenWhisk's per-minute body (allowed:
  the emulator's high limit), so the firer holds the namespace to the window's end unless its
  probes find the throttle over (``consumer/pacing.py``): a burst that ends mid-window.

Bounded in time: each wait has a ceiling, reported when hit.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests
from cryptography.fernet import Fernet
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from bench.firer_bench import ConsumerProcess, wait_until
from local_stack import kafka as kafka_stack
from local_stack.kafka import free_port
from messaging_lib import envelope, topics
from messaging_lib.credentials import Sealer
from tests.fixtures.emulator import EXTRA_NAMESPACES, STANDARD_AUTH, start_emulator, stop_emulator

REPO_ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 8
AUTH = {**STANDARD_AUTH, **EXTRA_NAMESPACES}
ALLOWED_PER_MINUTE = 600
ALICE_RATE_WINDOW_S = 150  # alice's rate is measured over at least this long after her first 429


class Bench:
    def __init__(self, bootstrap: str, apihost: str, work: Path, code: Path) -> None:
        self.bootstrap, self.apihost, self.work, self.code = bootstrap, apihost, work, code
        self.sealing_key = Fernet.generate_key().decode()
        self.sealer = Sealer([self.sealing_key])
        self.tokens = {ns: self.sealer.seal(AUTH[ns], [f"/{ns}/*"]) for ns in ("alice", "bob", "guest")}

    def control(self, method: str, path: str, body: object = None) -> object:
        response = requests.request(method, f"{self.apihost}/_emulator/{path}", json=body, timeout=120)
        response.raise_for_status()
        return response.json() if response.content else None

    def triggers(self, namespace: str, count: int) -> list[str]:
        out = []
        session = requests.Session()
        session.auth = tuple(AUTH[namespace].split(":", 1))  # type: ignore[assignment]
        for i in range(count):
            name = f"f{i}-{uuid.uuid4().hex[:6]}"
            r = session.put(f"{self.apihost}/api/v1/namespaces/_/triggers/{name}?overwrite=true", json={}, timeout=30)
            r.raise_for_status()
            out.append(f"/{namespace}/{name}")
        return out

    def topic(self) -> str:
        name = f"fair-{uuid.uuid4().hex[:8]}"
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        admin.create_topics([NewTopic(name, PARTITIONS, 1), NewTopic(topics.parked_topic(name), PARTITIONS, 1),
                             NewTopic(f"{name}-dl", 1, 1)])
        admin.close()
        return name

    def firer(self, topic: str) -> Firer:
        return Firer(self, topic)

    def fires(self, since_ms: int, run: str) -> list[dict]:
        body = self.control("GET", f"fires?since={since_ms}")
        records = body["fires"] if isinstance(body, dict) else body  # type: ignore[index]
        return [r for r in records if isinstance(r.get("payload"), dict) and r["payload"].get("run") == run]


class Firer(ConsumerProcess):
    """The benchmarks' consumer process, started from the checkout under test (``--code``)."""

    def __init__(self, b: Bench, topic: str) -> None:
        self.port = free_port()
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": b.bootstrap, "OPENWHISK_APIHOST": b.apihost,
               "SEALING_KEYS": b.sealing_key, "TRIGGER_MESSAGES_TOPIC": topic, "FIRER_GROUP": f"g-{topic}",
               "DEAD_LETTER_TOPIC": f"{topic}-dl", "LOG_LEVEL": "INFO", "HTTP_PORT": str(self.port),
               "HTTP_HOST": "127.0.0.1", "PYTHONPATH": str(b.code)}
        with open(b.work / f"firer-{topic}.log", "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "consumer"], cwd=b.code, stdout=log,
                                         stderr=subprocess.STDOUT, env=env)
        wait_until(lambda: self.metric("firer_assigned_partitions") > 0, "the firer's partitions")


class Load(threading.Thread):
    """Produces numbered messages round-robin over triggers at a rate (None: all at once)."""

    def __init__(self, b: Bench, topic: str, triggers: list[str], count: int, rate: float | None, run: str,
                 first: int = 0) -> None:
        super().__init__(daemon=True)
        self.b, self.topic, self.triggers, self.count, self.rate, self.run_id = b, topic, triggers, count, rate, run
        self.first = first
        self.sent_ms: dict[int, int] = {}

    def run(self) -> None:
        producer = KafkaProducer(bootstrap_servers=self.b.bootstrap, linger_ms=5 if self.rate is None else 0)
        producer.partitions_for(self.topic)
        started = time.monotonic()
        for k in range(self.count):
            if self.rate is not None:
                time.sleep(max(0.0, started + k / self.rate - time.monotonic()))
            i = self.first + k
            trigger = self.triggers[k % len(self.triggers)]
            ns = trigger.split("/")[1]
            env = envelope.new_envelope(source="/bench", trigger=trigger, credential=self.b.tokens[ns],
                                        data={"run": self.run_id, "i": i})
            self.sent_ms[i] = int(time.time() * 1000)
            producer.send(self.topic, key=trigger.encode(), value=envelope.to_structured(env),
                          headers=envelope.structured_headers())
        producer.flush()
        producer.close()


def first_fires(fires: list[dict]) -> dict[int, int]:
    out: dict[int, int] = {}
    for f in sorted(fires, key=lambda f: f["seq"]):
        if f["status"] in (202, 204):
            out.setdefault(f["payload"]["i"], f["time_ms"])
    return out


def out_of_order(fires: list[dict]) -> int:
    """Accepted fires (first of each message) that came after a later message of their trigger."""
    latest: dict[str, int] = {}
    seen: set[int] = set()
    late = 0
    for f in sorted(fires, key=lambda f: f["seq"]):
        i = f["payload"]["i"]
        if f["status"] not in (202, 204) or i in seen:
            continue
        seen.add(i)
        late += i < latest.get(f["trigger"], -1)
        latest[f["trigger"]] = max(i, latest.get(f["trigger"], -1))
    return late


def latency(sent_ms: dict[int, int], fired_ms: dict[int, int]) -> str:
    samples = sorted(fired_ms[i] - sent_ms[i] for i in sent_ms if i in fired_ms)
    missing = len(sent_ms) - len(samples)
    if not samples:
        return f"none of {len(sent_ms)} fired"
    p50, p99 = statistics.median(samples), samples[max(0, int(len(samples) * 0.99) - 1)]
    text = f"p50 {p50 / 1000:.2f} s, p99 {p99 / 1000:.2f} s"
    return text + (f" ({missing} of {len(sent_ms)} not fired in time)" if missing else "")


def bob_alone(b: Bench, bob: list[str], seconds: float) -> str:
    topic, run = b.topic(), uuid.uuid4().hex
    firer = b.firer(topic)
    since = int(time.time() * 1000)
    try:
        load = Load(b, topic, bob, int(5 * seconds), 5.0, run)
        load.start()
        load.join()
        deadline = time.monotonic() + 30
        while len(first_fires(b.fires(since, run))) < len(load.sent_ms) and time.monotonic() < deadline:
            time.sleep(0.5)
        fires = b.fires(since, run)
        return f"{latency(load.sent_ms, first_fires(fires))}; {out_of_order(fires)} out of order"
    finally:
        firer.stop()


def alice_throttled(b: Bench, alice: list[str], bob: list[str], over: int, seconds: float) -> tuple[str, str]:
    topic, run = b.topic(), uuid.uuid4().hex
    b.control("POST", "limits", {"namespace": "alice", "firesPerMinute": ALLOWED_PER_MINUTE, "resetCounters": True})
    firer = b.firer(topic)
    since = int(time.time() * 1000)
    try:
        noisy = Load(b, topic, alice, ALLOWED_PER_MINUTE + over, None, run)
        noisy.start()
        noisy.join()
        time.sleep(2)  # alice is over her limit now
        quiet = Load(b, topic, bob, int(5 * seconds), 5.0, run, first=10_000_000)
        quiet.start()
        quiet.join()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            fired = first_fires([f for f in b.fires(since, run) if f["payload"]["i"] >= 10_000_000])
            if len(fired) >= len(quiet.sent_ms):
                break
            time.sleep(1)
        bob_done = b.fires(since, run)
        # alice's rate needs whole throttle windows after her first 429 (bob may be done long before)
        first_429 = min((f["time_ms"] for f in bob_done if f["status"] == 429), default=None)
        if first_429 is not None:
            time.sleep(max(0.0, (first_429 + ALICE_RATE_WINDOW_S * 1000) / 1000 - time.time()))
        fires = b.fires(since, run)
        bob_fires = [f for f in bob_done if f["payload"]["i"] >= 10_000_000]
        bob_text = f"{latency(quiet.sent_ms, first_fires(bob_fires))}; {out_of_order(bob_fires)} out of order"
        alice_fires = [f for f in fires if f["payload"]["i"] < 10_000_000]
        refused = sorted(f["time_ms"] for f in alice_fires if f["status"] == 429)
        if not refused:
            return bob_text, "alice was never throttled"
        start = refused[0] + 5000  # past the first wave
        ok = sorted(f["time_ms"] for f in alice_fires if f["status"] in (202, 204) and f["time_ms"] >= start)
        later_429 = sum(1 for t in refused if t >= start)
        rate = 0.0 if len(ok) < 2 else (len(ok) - 1) / ((ok[-1] - ok[0]) / 60_000)
        parked = firer.metric("firer_messages_parked_total")
        return bob_text, (f"{rate:.0f}/min against {ALLOWED_PER_MINUTE}/min ({rate / ALLOWED_PER_MINUTE:.0%}); "
                          f"{len(refused)} 429s in all, {later_429} after the first wave; {parked:.0f} parked; "
                          f"{out_of_order(alice_fires)} out of order")
    finally:
        firer.stop()
        b.control("POST", "limits", {"namespace": "alice", "clear": True, "resetCounters": True})


def drain_after_burst(b: Bench, guest: list[str], status: int, ceiling_s: float) -> str:
    """Steady 50 messages/s; a 30 s burst of `status` on every fire; the time from the burst's end
    until every message produced by then has fired."""
    topic, run = b.topic(), uuid.uuid4().hex
    firer = b.firer(topic)
    since = int(time.time() * 1000)
    try:
        load = Load(b, topic, guest, int(50 * (40 + ceiling_s)), 50.0, run)
        load.start()
        time.sleep(5)
        b.control("POST", "faults", {"status": status, "namespace": "guest", "duration_s": 30})
        time.sleep(30)
        ended_ms = int(time.time() * 1000)
        due = [i for i, t in list(load.sent_ms.items()) if t <= ended_ms]
        deadline = time.monotonic() + ceiling_s
        while time.monotonic() < deadline:
            fires = b.fires(since, run)
            fired = first_fires(fires)
            if all(i in fired for i in due):
                done_ms = max(fired[i] for i in due)
                return f"{(done_ms - ended_ms) / 1000:.1f} s, none lost, {out_of_order(fires)} out of order"
            time.sleep(1)
        fired = first_fires(b.fires(since, run))
        return f"> {ceiling_s:.0f} s ({sum(1 for i in due if i not in fired)} of {len(due)} still waiting)"
    finally:
        b.control("DELETE", "faults")
        firer.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--code", type=Path, default=REPO_ROOT, help="run the firer from this checkout")
    p.add_argument("--over", type=int, default=5000, help="alice's messages over her per-minute allowance")
    p.add_argument("--seconds", type=float, default=30.0, help="how long bob sends")
    p.add_argument("--drain-ceiling", type=float, default=300.0)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fairness-bench-") as tmp:
        work = Path(tmp)
        broker = kafka_stack.start(kafka_stack.BrokerConfig(data_dir=work / "kafka", heap="1g"))
        emulator = start_emulator(work)
        try:
            b = Bench(broker.bootstrap, emulator.url, work, args.code.resolve())
            alice, bob, guest = b.triggers("alice", 20), b.triggers("bob", 5), b.triggers("guest", 20)
            rows = [("code", str(args.code))]
            rows.append(("bob produce→fire, alice idle", bob_alone(b, bob, args.seconds)))
            bob_text, alice_text = alice_throttled(b, alice, bob, args.over, args.seconds)
            rows.append((f"bob produce→fire, alice {args.over:,} over her limit", bob_text))
            rows.append(("alice's achieved rate while throttled", alice_text))
            for status, label in ((429, "429 burst (per-minute body)"), (503, "503 burst")):
                rows.append((f"drain after a 30 s {label}", drain_after_burst(b, guest, status, args.drain_ceiling)))
        finally:
            stop_emulator(emulator.process)
            kafka_stack.stop(broker)
    print("| measure | result |\n|---|---|")
    for label, value in rows:
        print(f"| {label} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
