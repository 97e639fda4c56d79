"""Soak: firers killed with -9 in a loop under steady load, with today's and the new membership settings.

    .venv/bin/python -m bench.soak [--minutes 3] [--rate 200] [--firers 3] [--kill-every 20]
                                   [--only new|today] [--code DIR]

Starts its own Kafka broker and emulator on 127.0.0.1, then per configuration: a fresh topic of
12 partitions, 100 triggers, ``--firers`` firer processes, a producer at ``--rate`` messages/s,
and every ``--kill-every`` seconds a ``kill -9`` of one firer (round robin) with a replacement
started at once. When the time is up it stops producing, waits for every message to fire, and
reads the emulator's fire log: lost messages, duplicates, order violations per trigger, and per
kill the longest gap between two fires of any partition in the window that kill opened (the
killed member's partitions waiting for the takeover, and any partition a rebalance stopped).

Configurations: ``new`` (the defaults: session 10 s, heartbeat 1 s, an instance id per pod slot)
and ``today`` (session 45 s, heartbeat 3 s, no instance id: kafka-python's defaults, what the
firer ran with before issue 12). ``--code DIR`` runs the firers from another checkout (e.g. a
``git archive`` of an older commit) to measure code from before a change.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import requests
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from bench.firer_bench import GUEST, REPO_ROOT, ConsumerProcess, Stack, create_triggers, stack, wait_until
from local_stack.kafka import free_port
from messaging_lib import envelope
from messaging_lib.credentials import Sealer

PARTITIONS = 12
TRIGGERS = 100
CONFIGS: dict[str, dict[str, str]] = {
    "new": {},  # the defaults; CONSUMER_INSTANCE_ID is set per slot below
    "today": {"KAFKA_SESSION_TIMEOUT_MS": "45000", "KAFKA_HEARTBEAT_INTERVAL_MS": "3000"},
}


# --- analysis (pure; the chaos tests use it too) ---------------------------------------------------


@dataclass(frozen=True)
class Fire:
    """One accepted fire as the emulator logged it."""

    time_ms: int
    trigger: str
    i: int


@dataclass
class Verdict:
    sent: int
    fires: int
    lost: list[int]
    duplicates: int
    order_violations: int
    gaps_ms: list[int] = field(default_factory=list)  # per kill: longest fire gap of any partition

    @property
    def duplicate_pct(self) -> float:
        return 100.0 * self.duplicates / max(1, self.sent)


def analyse(sent: dict[int, tuple[str, int]], fires: Iterable[Fire], kills_ms: list[int],
            end_ms: int | None = None) -> Verdict:
    """``sent``: message i -> (trigger, partition). Order: a trigger's first fires of its messages
    come in send order (duplicates replay a tail, they never reorder). Gaps: per kill window
    [kill, next kill), the longest time a partition with messages waiting went without a fire."""
    fires = sorted(fires, key=lambda f: f.time_ms)
    seen: set[int] = set()
    last_first: dict[str, int] = {}
    order_violations = 0
    by_partition: dict[int, list[int]] = defaultdict(list)
    for fire in fires:
        if fire.i not in sent:
            continue
        by_partition[sent[fire.i][1]].append(fire.time_ms)
        if fire.i in seen:
            continue
        seen.add(fire.i)
        if fire.i < last_first.get(fire.trigger, -1):
            order_violations += 1
        last_first[fire.trigger] = fire.i
    counted = sum(1 for f in fires if f.i in sent)
    last_ms = end_ms or (fires[-1].time_ms if fires else 0)
    windows = list(zip(kills_ms, [*kills_ms[1:], last_ms], strict=True)) if kills_ms else []
    gaps = [max((_longest_gap(times, start, stop) for times in by_partition.values()), default=0)
            for start, stop in windows]
    return Verdict(len(sent), counted, sorted(set(sent) - seen), counted - len(seen), order_violations, gaps)


def _longest_gap(times: list[int], start: int, stop: int) -> int:
    """Longest interval between consecutive fires that overlaps [start, stop)."""
    longest = 0
    for before, after in itertools.pairwise(times):
        if after > start and before < stop:
            longest = max(longest, after - before)
    return longest


def fires_since(apihost: str, since_ms: int) -> list[Fire]:
    """Accepted fires of the soak's payloads, from the emulator's fire log."""
    body = requests.get(f"{apihost}/_emulator/fires", params={"since": since_ms}, timeout=120).json()
    out = []
    for record in body["fires"]:
        payload = record.get("payload")
        if record["status"] in (202, 204) and isinstance(payload, dict) and "soak" in payload:
            out.append(Fire(record["time_ms"], record["trigger"], payload["i"]))
    return out


# --- one run ---


class SoakFirer(ConsumerProcess):
    """One `python -m consumer` firer, started from ``code`` (this checkout or another one); its
    metrics are the benchmarks' ConsumerProcess's, only how it starts and stops differs."""

    def __init__(self, log_path: Path, env: dict[str, str], code: Path) -> None:
        self.port = free_port()
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "consumer"], cwd=code, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, **env, "HTTP_PORT": str(self.port), "HTTP_HOST": "127.0.0.1",
                     "PYTHONPATH": str(code)})

    def stop(self) -> None:
        """A firer that ignores SIGTERM for 60 s is killed, and the soak goes on (no raise)."""
        try:
            super().stop()
        except subprocess.TimeoutExpired:
            self.proc.wait()


class Load(threading.Thread):
    """Produces at a steady rate until stopped; remembers each message's trigger and partition."""

    def __init__(self, s: Stack, topic: str, triggers: list[str], rate: float, run: str) -> None:
        super().__init__(daemon=True)
        self._s, self._topic, self._triggers, self._rate, self._run = s, topic, triggers, rate, run
        self.sent: dict[int, tuple[str, int]] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        token = Sealer([self._s.sealing_key]).seal(GUEST, ["/guest/*"])
        producer = KafkaProducer(bootstrap_servers=self._s.bootstrap, linger_ms=5, acks="all")
        started, i = time.monotonic(), 0
        while not self.stopping.is_set():
            time.sleep(max(0.0, started + i / self._rate - time.monotonic()))
            trigger = f"/guest/{self._triggers[i % len(self._triggers)]}"
            env = envelope.new_envelope(source="/soak", trigger=trigger, credential=token,
                                        data={"soak": self._run, "i": i})
            future = producer.send(self._topic, key=trigger.encode(), value=envelope.to_structured(env),
                                   headers=envelope.structured_headers())
            future.add_callback(lambda md, i=i, trigger=trigger: self.sent.__setitem__(i, (trigger, md.partition)))
            i += 1
        producer.flush()
        producer.close()


def firer_env(s: Stack, topic: str, config: str, slot: int) -> dict[str, str]:
    env = {"KAFKA_BOOTSTRAP_SERVERS": s.bootstrap, "OPENWHISK_APIHOST": s.apihost, "SEALING_KEYS": s.sealing_key,
           "TRIGGER_MESSAGES_TOPIC": topic, "FIRER_GROUP": f"soak-{topic}", "DEAD_LETTER_TOPIC": f"{topic}-dl",
           "LOG_LEVEL": "INFO", **CONFIGS[config]}
    if config == "new":
        env["CONSUMER_INSTANCE_ID"] = f"soak-{slot}"  # a pod's stable name: its replacement takes its place
    return env


def soak(s: Stack, config: str, minutes: float, rate: float, firers: int, kill_every_s: float,
         code: Path | None) -> Verdict:
    topic = f"soak-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=s.bootstrap)
    admin.create_topics([NewTopic(topic, PARTITIONS, 1), NewTopic(f"{topic}-dl", 1, 1)])
    admin.close()
    triggers = create_triggers(s, TRIGGERS)
    slots = [_start(s, topic, config, slot, code) for slot in range(firers)]
    for proc in slots:
        wait_until(lambda proc=proc: proc.metric("firer_assigned_partitions") > 0, "a firer's partitions", 180)
    since_ms = int(time.time() * 1000)
    load = Load(s, topic, triggers, rate, topic)
    load.start()
    kills_ms: list[int] = []
    ends = time.monotonic() + minutes * 60
    victim = 0
    while time.monotonic() + kill_every_s <= ends:
        time.sleep(kill_every_s)
        slots[victim].proc.kill()
        kills_ms.append(int(time.time() * 1000))
        slots[victim].proc.wait()
        slots[victim] = _start(s, topic, config, victim, code)
        print(f"[{config}] kill {len(kills_ms)} of slot {victim}", file=sys.stderr)
        victim = (victim + 1) % firers
    time.sleep(max(0.0, ends - time.monotonic()))
    load.stopping.set()
    load.join()
    end_ms = int(time.time() * 1000)
    try:
        wait_until(lambda: {f.i for f in fires_since(s.apihost, since_ms)} >= set(load.sent), "every message fired",
                   timeout_s=300)
    except RuntimeError as e:
        print(f"[{config}] {e}", file=sys.stderr)
    for proc in slots:
        proc.stop()
    return analyse(load.sent, fires_since(s.apihost, since_ms), kills_ms, end_ms)


def _start(s: Stack, topic: str, config: str, slot: int, code: Path | None) -> SoakFirer:
    return SoakFirer(s.work / f"{config}-{slot}-{time.monotonic_ns()}.log", firer_env(s, topic, config, slot),
                     code or REPO_ROOT)


def table(results: dict[str, Verdict], kill_every_s: float) -> str:
    names = list(results)
    lines = ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]

    def row(label: str, cells: Iterable[str]) -> None:
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    row("messages sent", (f"{v.sent:,}" for v in results.values()))
    row("lost", (str(len(v.lost)) for v in results.values()))
    row("duplicates", (f"{v.duplicates:,} ({v.duplicate_pct:.2f} %)" for v in results.values()))
    row("order violations", (str(v.order_violations) for v in results.values()))
    row("max fire gap, any kill", (f"{max(v.gaps_ms, default=0) / 1000:.1f} s" for v in results.values()))
    kills = max(len(v.gaps_ms) for v in results.values())
    for k in range(kills):
        row(f"kill {k + 1} (+{(k + 1) * kill_every_s:.0f} s): max fire gap",
            (f"{v.gaps_ms[k] / 1000:.1f} s" if k < len(v.gaps_ms) else "" for v in results.values()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--rate", type=float, default=200.0, help="messages/s")
    p.add_argument("--firers", type=int, default=3)
    p.add_argument("--kill-every", type=float, default=20.0, help="seconds between kills")
    p.add_argument("--only", choices=list(CONFIGS), action="append", help="run only these configurations")
    p.add_argument("--code", type=Path, help="run the firers from this checkout instead")
    p.add_argument("--json", type=Path, help="also write the verdicts here")
    args = p.parse_args(argv)
    work = Path(os.environ.get("BENCH_WORK", "/tmp")) / f"soak-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True)
    results: dict[str, Verdict] = {}
    with stack(work) as s:
        for config in args.only or list(CONFIGS):
            print(f"soak: {config}, {args.minutes} min, {args.rate:.0f} msg/s, {args.firers} firers, "
                  f"kill -9 every {args.kill_every:.0f} s", file=sys.stderr)
            results[config] = soak(s, config, args.minutes, args.rate, args.firers, args.kill_every,
                                   args.code.resolve() if args.code else None)
    print(table(results, args.kill_every))
    if args.json:
        args.json.write_text(json.dumps({k: {**v.__dict__, "lost": v.lost[:100]} for k, v in results.items()}))
    print(f"logs: {work}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
