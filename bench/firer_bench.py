"""Benchmark: one firer process against the sequential baseline, in the same run.

    .venv/bin/python -m bench.firer_bench [--quick]

Starts its own Kafka broker and emulator on 127.0.0.1, then measures, for controller latency
0 ms and 20 ms and for 1 and 1,000 distinct triggers: fires/s draining a backlog; produce→fire
latency p50/p99 at a steady 200 messages/s; and the firer's RSS after 100,000 messages to one
trigger and to 100,000 distinct triggers. Every number of ours is printed next to the baseline
(bench/sequential_baseline.py: one fire at a time, commit after each). Bounded in time and count.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import requests
from cryptography.fernet import Fernet
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from bench import sequential_baseline
from local_stack import kafka as kafka_stack
from local_stack.action_runtime.venv import ensure_runtime_python
from local_stack.kafka import free_port
from messaging_lib import envelope
from messaging_lib.credentials import Sealer

REPO_ROOT = Path(__file__).resolve().parent.parent
GUEST = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"
PARTITIONS = 8


@dataclass
class Stack:
    bootstrap: str
    apihost: str
    sealing_key: str
    work: Path
    emulator_pid: int  # for the emulator's own CPU (bench/firer_cost.py)

    def topic(self) -> str:
        name = f"bench-{uuid.uuid4().hex[:8]}"
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        admin.create_topics([NewTopic(name, PARTITIONS, 1)])
        admin.close()
        return name

    def control(self, method: str, path: str, body: object = None) -> object:
        response = requests.request(method, f"{self.apihost}/_emulator/{path}", json=body, timeout=60)
        response.raise_for_status()
        return response.json() if response.content else None


@contextmanager
def stack(work: Path) -> Iterator[Stack]:
    broker = kafka_stack.start(kafka_stack.BrokerConfig(data_dir=work / "kafka", heap="1g"))
    port = free_port()
    emulator = subprocess.Popen(
        [sys.executable, "-m", "local_stack.emulator", "--port", str(port), "--runtime-python",
         ensure_runtime_python(), "--fires-per-minute", "100000000", "--invocations-per-minute", "100000000",
         "--concurrent-invocations", "100000"],
        cwd=REPO_ROOT, stdout=open(work / "emulator.log", "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    apihost = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(apihost, timeout=1).ok, "the emulator")
        yield Stack(broker.bootstrap, apihost, Fernet.generate_key().decode(), work, emulator.pid)
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(30)
        kafka_stack.stop(broker)


def wait_until(check, what: str, timeout_s: float = 120) -> None:
    """Poll check() (connection errors count as 'not yet') until true; shared by the benchmarks."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (requests.RequestException, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def create_triggers(s: Stack, count: int) -> list[str]:
    """count triggers in guest, created concurrently (100,000 take a few tens of seconds)."""
    names = [f"bt{i}" for i in range(count)]

    async def put_all() -> None:
        auth = {"Authorization": aiohttp.encode_basic_auth(*GUEST.split(":"))}
        async with aiohttp.ClientSession(headers=auth, connector=aiohttp.TCPConnector(limit=100)) as session:
            async def put(name: str) -> None:
                async with session.put(f"{s.apihost}/api/v1/namespaces/_/triggers/{name}?overwrite=true",
                                       json={}) as r:
                    assert r.status == 200, await r.text()
            for i in range(0, count, 2000):
                await asyncio.gather(*(put(n) for n in names[i:i + 2000]))
    asyncio.run(put_all())
    return names


def message_data(i: int) -> dict[str, object]:
    """The data of bench message i: what the firer posts, and what the bare client posts too."""
    return {"i": i, "sent_ms": time.time() * 1000}


def produce(s: Stack, topic: str, triggers: list[str], count: int, rate_per_s: float | None = None,
            token_per_message: bool = False) -> None:
    """count envelopes round-robin over triggers; token_per_message seals a credential for each
    message, as the `produce` action does (else one token for all, which the firer's cache keeps)."""
    sealer = Sealer([s.sealing_key])
    token = sealer.seal(GUEST, ["/guest/*"])
    producer = KafkaProducer(bootstrap_servers=s.bootstrap, linger_ms=5 if rate_per_s is None else 0,
                             batch_size=256 * 1024)
    producer.partitions_for(topic)  # metadata first: the first timed message must not wait for it
    started = time.monotonic()
    for i in range(count):
        if rate_per_s is not None:
            time.sleep(max(0.0, started + i / rate_per_s - time.monotonic()))
        trigger = f"/guest/{triggers[i % len(triggers)]}"
        credential = sealer.seal(GUEST, [trigger]) if token_per_message else token
        env = envelope.new_envelope(source="/bench", trigger=trigger, credential=credential, data=message_data(i))
        producer.send(topic, key=trigger.encode(), value=envelope.to_structured(env),
                      headers=envelope.structured_headers())
    producer.flush()
    producer.close()


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU seconds of a process so far, all its threads (/proc/<pid>/stat fields 14
    and 15); no dependency. The command name (field 2) may hold spaces, so split after its ')'."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ConsumerProcess:
    """One `python -m consumer` process (the product) with its metrics and RSS; shared by the benchmarks."""

    def __init__(self, work: Path, log_name: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "consumer"], cwd=REPO_ROOT, stderr=subprocess.STDOUT,
            stdout=open(work / log_name, "wb"),  # noqa: SIM115
            env={**os.environ, **env, "HTTP_PORT": str(self.port), "HTTP_HOST": "127.0.0.1"})

    def metric(self, name: str) -> float:
        """Sum of a Prometheus metric's samples (all label sets)."""
        text = requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith(name) and not line.startswith("#"))

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


class Firer(ConsumerProcess):
    """A firer on one topic, holding its partitions once made."""

    def __init__(self, s: Stack, topic: str) -> None:
        super().__init__(s.work, f"firer-{topic}.log", {
            "KAFKA_BOOTSTRAP_SERVERS": s.bootstrap, "OPENWHISK_APIHOST": s.apihost, "SEALING_KEYS": s.sealing_key,
            "TRIGGER_MESSAGES_TOPIC": topic, "FIRER_GROUP": f"g-{topic}", "DEAD_LETTER_TOPIC": f"{topic}-dl",
            "LOG_LEVEL": "INFO"})
        try:  # holding partitions, not just ready: the produce→fire clock must not include the first rebalance
            wait_until(lambda: self.metric("firer_assigned_partitions") > 0, "the firer's partitions")
        except BaseException:
            self.proc.kill()
            raise

    def fired(self) -> float:
        return self.metric("firer_messages_fired_total")


@dataclass(frozen=True)
class Drain:
    """One firer draining a backlog, measured from its first fire to its last (or the window's end):
    fires, wall seconds, and the CPU seconds of the firer and of the emulator over that window;
    `total` counts the fires before the window too (the backlog is drained when it is the count)."""

    fired: float
    seconds: float
    firer_cpu_s: float
    emulator_cpu_s: float
    total: float

    @property
    def rate(self) -> float:
        return self.fired / max(1e-9, self.seconds)


def drain(s: Stack, triggers: list[str], count: int, window_s: float = 120, token_per_message: bool = False,
          poll_s: float = 0.05) -> Drain:
    """One firer draining a backlog of `count` messages, from its first fire until the backlog is
    gone or `window_s` has passed (one trigger at 20 ms cannot drain it in time). The firer's
    /metrics is read every poll_s: that costs the firer a little CPU, counted in its share."""
    topic = s.topic()
    produce(s, topic, triggers, count, token_per_message=token_per_message)
    firer = Firer(s, topic)
    try:
        wait_until(lambda: firer.fired() > 0, "the first fire")
        started, first = time.monotonic(), firer.fired()
        firer_cpu, emulator_cpu = firer.cpu_seconds(), cpu_seconds(s.emulator_pid)
        done = first
        while done < count and time.monotonic() - started < window_s:
            time.sleep(poll_s)
            done = firer.fired()
        seconds = time.monotonic() - started
        return Drain(done - first, seconds, firer.cpu_seconds() - firer_cpu,
                     cpu_seconds(s.emulator_pid) - emulator_cpu, done)
    finally:
        firer.stop()


def drain_rate(s: Stack, triggers: list[str], count: int, window_s: float = 120) -> float:
    """Fires/s of one firer draining a backlog of `count` messages (see `drain`)."""
    return drain(s, triggers, count, window_s).rate


def baseline_rate(s: Stack, triggers: list[str], count: int, seconds: float) -> float:
    topic = s.topic()
    produce(s, topic, triggers, count)
    fired, elapsed = sequential_baseline.run(s.bootstrap, topic, s.apihost, s.sealing_key, count, seconds)
    return fired / max(1e-9, elapsed)


def latencies(s: Stack, triggers: list[str], rate: float, seconds: float, ours: bool) -> tuple[float, float]:
    """p50 and p99 of produce→fire (the emulator's receive time) at a steady rate. The first second
    of messages is a warm-up, left out of the numbers: the consumer's first fetch positions and
    the first HTTP connections are start-up costs, not the steady state."""
    topic = s.topic()
    since = int(time.time() * 1000)
    stop = threading.Event()
    warmup = int(rate)
    count = int(rate * seconds) + warmup
    if ours:
        firer = Firer(s, topic)
        produce(s, topic, triggers, count, rate_per_s=rate)
        time.sleep(2)
        firer.stop()
    else:
        worker = threading.Thread(target=sequential_baseline.run, args=(
            s.bootstrap, topic, s.apihost, s.sealing_key, count, seconds + 30, stop))
        worker.start()
        produce(s, topic, triggers, count, rate_per_s=rate)
        worker.join(timeout=seconds + 35)
        stop.set()
    fires = s.control("GET", f"fires?since={since}")
    records = fires["fires"] if isinstance(fires, dict) else fires
    samples = sorted(r["time_ms"] - r["payload"]["sent_ms"] for r in records
                     if isinstance(r.get("payload"), dict) and r["payload"].get("i", -1) >= warmup)
    if len(samples) < (count - warmup) * 0.9:
        return float("nan"), float("nan")  # the baseline fell behind: most messages never fired in time
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller counts (a smoke run, numbers are noisier)")
    p.add_argument("--only", choices=["rate", "latency", "rss"], action="append",
                   help="run only these measures (repeatable; default: all)")
    args = p.parse_args(argv)
    only = set(args.only or ["rate", "latency", "rss"])
    backlog = 5_000 if args.quick else 30_000
    rss_messages = 10_000 if args.quick else 100_000
    work = Path(os.environ.get("BENCH_WORK", "/tmp")) / f"firer-bench-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True)
    rows: list[tuple[str, str, str, str]] = []
    with stack(work) as s:
        print("creating 1,000 triggers ...", file=sys.stderr)
        names = create_triggers(s, 1000)
        for latency_ms in (0, 20) if "rate" in only else ():
            s.control("DELETE", "faults")
            if latency_ms:
                s.control("POST", "faults", {"scope": "fires", "latency_ms": latency_ms})
            for distinct in (1, 1000):
                label = f"fires/s, {latency_ms} ms latency, {distinct} trigger{'s' if distinct > 1 else ''}"
                print(f"measuring {label} ...", file=sys.stderr)
                ours = drain_rate(s, names[:distinct], backlog)
                base = baseline_rate(s, names[:distinct], backlog, seconds=10)
                rows.append((label, f"{ours:,.0f}", f"{base:,.0f}", f"{ours / base:,.1f}x"))
        s.control("DELETE", "faults")
        for latency_ms in (0, 20) if "latency" in only else ():
            print(f"measuring produce→fire latency at 200 messages/s, {latency_ms} ms ...", file=sys.stderr)
            s.control("DELETE", "faults")
            if latency_ms:
                s.control("POST", "faults", {"scope": "fires", "latency_ms": latency_ms})
            ours = latencies(s, names, 200, 15, ours=True)
            base = latencies(s, names, 200, 15, ours=False)
            rows.append((f"produce→fire p50 / p99 ms, 200 msg/s, {latency_ms} ms latency",
                         f"{ours[0]:.0f} / {ours[1]:.0f}", f"{base[0]:.0f} / {base[1]:.0f}", ""))
        s.control("DELETE", "faults")
        rss = {}
        many = create_triggers(s, rss_messages) if "rss" in only else []
        for distinct, triggers in (("1", many[:1]), (f"{rss_messages:,}", many)) if many else ():
            print(f"measuring RSS after {rss_messages:,} messages to {distinct} triggers ...", file=sys.stderr)
            topic = s.topic()
            produce(s, topic, triggers, rss_messages)
            firer = Firer(s, topic)
            try:
                wait_until(lambda firer=firer: firer.fired() >= rss_messages, "the RSS run", timeout_s=600)
                rss[distinct] = firer.rss_mb()
            finally:
                firer.stop()
        if rss:
            one, lots = rss.values()
            rows.append((f"firer RSS MB, 1 vs {rss_messages:,} distinct triggers", f"{one:.0f} / {lots:.0f}",
                         "", f"{lots / one:.2f}x"))
    print()
    print("| measure | firer | sequential baseline | ratio |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
