"""Benchmark: what the firer costs next to a bare aiohttp client doing the same requests, in one run.

    .venv/bin/python -m bench.firer_cost [--quick] [--repeats N] [--workers N (default 2)]
        [--sides shared,bare,...] [--latencies 0,20] [--profile DIR]

Starts its own Kafka broker and emulator on 127.0.0.1 (bench/firer_bench.py's stack), creates 1,000
triggers and, for controller latency 0 ms and 20 ms (the emulator's fault injection), measures
against that same emulator:

- the firer (`python -m consumer`, the product) draining a backlog of N envelopes, one token shared
  by all messages: fires/s, and CPU seconds per 10,000 fires (utime+stime of its process, from
  /proc/<pid>/stat, over the window from its first fire to its last);
- the same with a credential sealed separately for each message, as the `produce` action makes them
  (v2 tokens), and again with v1 (Fernet) tokens, as every sealer wrote them before v2;
- a bare aiohttp client in its own process, POSTing the same requests (URL, headers, body) with the
  same connector limits as the firer's settings, straight at the emulator without Kafka: fires/s
  (the controller's limit, measured the same way) and CPU seconds per 10,000 POSTs; on asyncio's
  own loop (the goal's measure: a bare aiohttp client), and again on uvloop, the loop the firer
  runs on (consumer/__main__.py), to show what of the gap the loop closes and what the firer's own
  work closes;
- the emulator's own CPU per request during each, to show whether it was the bottleneck;
- with ``--workers N`` (N > 1; 2 unless told otherwise), also the firer with ``WORKERS=1`` and with ``WORKERS=N`` (N
  processes in one container, consumer/workers.py), one shared token, measured the same way:
  the firer first holds all its partitions, then the backlog is produced (else the first worker
  drains most of it before the second has joined): fires/s, the scaling, and CPU per 10,000
  fires of the supervisor and all its workers together.

``--sides`` and ``--latencies`` narrow a run to some sides (a quick A/B while changing the firer: the
table then shows only the rows those sides make); ``--profile DIR`` records the firer with py-spy
while each of its one-process sides drains, and the bare client while it posts (collapsed stacks,
threads apart, only the thread holding the GIL: CPU, not waits). On this project's VMs py-spy's
samples gather at the next system call (e.g. every ``asyncio.get_running_loop()``, which calls
getpid), so read a profile by function, inclusive, not by line.

CPU per unit of work is the figure to compare across machines: absolute fires/s follow the machine
and its load (printed with the table). Every side runs alone, one after the other, in each repeat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import aiohttp
import requests
import uvloop

from bench import firer_bench
from bench.firer_bench import (
    GUEST,
    PARTITIONS,
    REPO_ROOT,
    ConsumerProcess,
    Stack,
    cpu_seconds,
    create_triggers,
    drain,
    message_data,
    produce,
    stack,
    wait_until,
)
from consumer.settings import Settings
from deploy.ports import consecutive_free_ports
from messaging_lib.credentials import Sealer
from messaging_lib.envelope import encode_data
from messaging_lib.topics import trigger_url

TRIGGERS = 1000
LATENCIES_MS = (0, 20)
GOAL_CPU_RATIO = 1.5
GOAL_TOKEN_SLOWDOWN = 0.10


@dataclass(frozen=True)
class Side:
    """One measured side of one repeat: requests done, wall seconds, CPU seconds of the side's own
    process and of the emulator over the same window."""

    requests: float
    seconds: float
    cpu_s: float
    emulator_cpu_s: float

    @property
    def rate(self) -> float:
        return self.requests / max(1e-9, self.seconds)

    @property
    def cpu_per_10k(self) -> float:
        return self.cpu_s / max(1.0, self.requests) * 10_000

    @property
    def emulator_us_per_request(self) -> float:
        return self.emulator_cpu_s / max(1.0, self.requests) * 1e6


SIDES = ("shared", "bare", "bare-uvloop", "per-message", "v1", "workers")


@dataclass
class Repeat:
    """The sides measured at one latency, in one repeat, plus the load average around them; a side
    left out of the run (``--sides``) is None, and the rows that need it are not shown."""

    shared: Side | None
    per_message: Side | None
    bare: Side | None
    per_message_v1: Side | None
    load: tuple[float, float]
    workers: tuple[Side, Side] | None = None  # the firer with WORKERS=1 and WORKERS=N, when asked for
    bare_uvloop: Side | None = None  # the bare client on uvloop, as the firer runs (consumer/__main__.py)


@dataclass(frozen=True)
class ClientLimits:
    """The firer's HTTP client settings (consumer/settings.py defaults), which the bare client copies."""

    connections: int
    timeout_s: float

    @classmethod
    def of_firer(cls) -> ClientLimits:
        defaults = {f.name: f.default for f in fields(Settings)}
        return cls(int(defaults["max_concurrent_fires"]), float(defaults["fire_timeout_s"]))


# --- the bare client (runs in its own process: `python -m bench.firer_cost --bare`) ---


@dataclass(frozen=True)
class BareSpec:
    """What the parent sends the bare client on stdin (the API key stays off the command line)."""

    apihost: str
    names: list[str]
    count: int
    connections: int
    timeout_s: float
    api_key: str = field(repr=False)
    on_uvloop: bool = False


async def _post_all(spec: BareSpec, go: Callable[[], None]) -> dict[str, float]:
    """Warm up one request per connection slot, call go() (the parent's CPU mark), then POST
    spec.count requests with one long-lived task per connection slot: a lean client, no per-request task of ours."""
    user, _, password = spec.api_key.partition(":")
    headers = {"Content-Type": "application/json", "Authorization": aiohttp.encode_basic_auth(user, password)}
    total = spec.connections + spec.count
    work = [(trigger_url(spec.apihost, "guest", spec.names[i % len(spec.names)]), encode_data(message_data(i)))
            for i in range(total)]
    connector = aiohttp.TCPConnector(limit=spec.connections, limit_per_host=spec.connections, keepalive_timeout=60)
    errors = 0
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=spec.timeout_s)) as session:
        async def post(url: str, body: bytes) -> None:
            nonlocal errors
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    errors += response.status >= 300
            except (TimeoutError, aiohttp.ClientError):
                errors += 1

        async def slot(queue: list[tuple[str, bytes]]) -> None:
            while queue:
                await post(*queue.pop())

        await asyncio.gather(*(post(*w) for w in work[:spec.connections]))
        go()
        timed = work[spec.connections:][::-1]  # popped from the end: in order
        cpu, started = cpu_seconds(), time.monotonic()
        await asyncio.gather(*(slot(timed) for _ in range(spec.connections)))
        seconds, cpu = time.monotonic() - started, cpu_seconds() - cpu
    return {"requests": spec.count, "errors": errors, "seconds": seconds, "cpu_s": cpu}


def bare_main() -> int:
    spec = BareSpec(**json.loads(sys.stdin.readline()))

    def go() -> None:
        print("warm", flush=True)
        sys.stdin.readline()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop if spec.on_uvloop else None) as runner:
        print(json.dumps(runner.run(_post_all(spec, go))), flush=True)
    return 0


def bare_side(s: Stack, names: list[str], count: int, limits: ClientLimits, timeout_s: float = 300,
              on_uvloop: bool = False) -> Side:
    """The bare client's side: its own process, the emulator's CPU marked around its timed window."""
    spec = {"apihost": s.apihost, "names": names, "count": count, "connections": limits.connections,
            "timeout_s": limits.timeout_s, "api_key": GUEST, "on_uvloop": on_uvloop}
    child = subprocess.Popen([sys.executable, "-m", "bench.firer_cost", "--bare"], cwd=REPO_ROOT, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    watchdog = threading.Timer(timeout_s, child.kill)  # bounded: a stuck client ends, and so does its read
    watchdog.start()
    try:
        child.stdin.write(json.dumps(spec) + "\n")
        child.stdin.flush()
        if child.stdout.readline().strip() != "warm":
            raise RuntimeError("the bare client failed to warm up (see its stderr)")
        spy = _py_spy(child.pid, f"bare-{uuid.uuid4().hex[:6]}") if PROFILE_DIR is not None else None
        emulator_cpu = cpu_seconds(s.emulator_pid)
        child.stdin.write("go\n")
        child.stdin.flush()
        line = child.stdout.readline()
        emulator_cpu = cpu_seconds(s.emulator_pid) - emulator_cpu
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        if not line:
            raise RuntimeError(f"the bare client gave no result within {timeout_s:g} s (see its stderr)")
        result = json.loads(line)
        child.wait(timeout_s)
    finally:
        watchdog.cancel()
        if child.poll() is None:
            child.kill()
    if result["errors"]:
        raise RuntimeError(f"the bare client had {result['errors']} failed requests")
    return Side(result["requests"], result["seconds"], result["cpu_s"], emulator_cpu)


# --- the firer's sides and the run ---


# How often the firer's /metrics is read while it drains. Each read renders every metric (about
# 3 ms of the firer's CPU, in its share): at firer_bench's 50 ms that was ~5 % of the firer's CPU
# in a py-spy profile; at 250 ms it is ~1 %, and the window's end is known within 250 ms.
METRICS_POLL_S = 0.25


class V1Sealer(Sealer):
    """A sealer that writes v1 (Fernet) tokens, as every sealer did before v2: the per-message
    case of before, measured in the same run (the firer opens both formats)."""

    def __init__(self, keys: list[str], **kwargs: Any) -> None:
        super().__init__(keys, **kwargs)
        self._seals_v2 = False


PROFILE_DIR: Path | None = None  # --profile: py-spy records each one-process firer side and the bare client here


def _py_spy(pid: int, name: str) -> subprocess.Popen[bytes]:
    """py-spy recording process ``pid`` into PROFILE_DIR/<name>.txt until it gets SIGINT."""
    assert PROFILE_DIR is not None
    out = PROFILE_DIR / f"{name}.txt"
    spy = subprocess.Popen([os.environ.get("PY_SPY", "py-spy"), "record", "--pid", str(pid), "--format", "raw",
                            "--threads", "--gil", "--rate", "200", "--output", str(out)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"  profiling into {out}", file=sys.stderr)
    return spy


class ProfiledFirer(firer_bench.Firer):
    """The bench's firer process, recorded by py-spy (``$PY_SPY`` or on PATH; pinned in
    bench/requirements-profile.txt) from the moment it holds its partitions until it is stopped."""

    def __init__(self, s: Stack, topic: str) -> None:
        super().__init__(s, topic)
        assert PROFILE_DIR is not None
        try:
            self.spy = _py_spy(self.proc.pid, f"firer-{topic}")
        except OSError:
            super().stop()  # no py-spy: the firer started above must not outlive the run
            raise

    def stop(self) -> None:
        self.spy.send_signal(signal.SIGINT)
        self.spy.wait(60)
        super().stop()


def firer_side(s: Stack, names: list[str], count: int, token_per_message: bool, v1: bool = False) -> Side:
    if v1:  # firer_bench.produce seals with firer_bench.Sealer
        setattr(firer_bench, "Sealer", V1Sealer)  # noqa: B010 (a module attribute, replaced for this side)
    if PROFILE_DIR is not None:  # firer_bench.drain starts a firer_bench.Firer
        setattr(firer_bench, "Firer", ProfiledFirer)  # noqa: B010
    try:
        d = drain(s, names, count, token_per_message=token_per_message, poll_s=METRICS_POLL_S)
    finally:
        setattr(firer_bench, "Sealer", Sealer)  # noqa: B010
        setattr(firer_bench, "Firer", ProfiledFirer.__mro__[1])  # noqa: B010
    if d.total < count:
        raise RuntimeError(f"the firer fired {d.total:.0f} of {count} in its window")
    return Side(d.fired, d.seconds, d.firer_cpu_s, d.emulator_cpu_s)


class Workers(ConsumerProcess):
    """`python -m consumer` with WORKERS=n: worker i serves its metrics on port + i, so the ports
    are chosen here (ConsumerProcess picks one free port)."""

    def __init__(self, s: Stack, topic: str, workers: int) -> None:
        self.port = consecutive_free_ports(workers)
        self.ports = [self.port + i for i in range(workers)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "consumer"], cwd=REPO_ROOT, stderr=subprocess.STDOUT,
            stdout=open(s.work / f"firer-{topic}.log", "wb"),  # noqa: SIM115
            env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": s.bootstrap, "OPENWHISK_APIHOST": s.apihost,
                 "SEALING_KEYS": s.sealing_key, "TRIGGER_MESSAGES_TOPIC": topic, "FIRER_GROUP": f"g-{topic}",
                 "DEAD_LETTER_TOPIC": f"{topic}-dl", "LOG_LEVEL": "INFO", "WORKERS": str(workers),
                 "HTTP_PORT": str(self.port), "HTTP_HOST": "127.0.0.1"})
        try:  # every worker holds partitions, and all of them are held: no rebalance in the window
            wait_until(lambda: self._all_assigned(), "every worker's partitions")
        except BaseException:
            self.stop()
            raise

    def _all_assigned(self) -> bool:
        held = [self._metric(port, "firer_assigned_partitions") for port in self.ports]
        return min(held) > 0 and sum(held) == PARTITIONS

    def _metric(self, port: int, name: str) -> float:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith(name) and not line.startswith("#"))

    def fired(self) -> float:
        return sum(self._metric(port, "firer_messages_fired_total") for port in self.ports)

    def cpu_seconds(self) -> float:
        """The supervisor's CPU and its workers' (its children, /proc/<pid>/task/<pid>/children)."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return cpu_seconds(self.proc.pid) + sum(cpu_seconds(pid) for pid in children)


def workers_side(s: Stack, names: list[str], count: int, workers: int, window_s: float = 120,
                 poll_s: float = METRICS_POLL_S) -> Side:
    """The firer with WORKERS=workers draining a backlog produced once it holds all partitions,
    measured from its first fire to its last, as `firer_bench.drain` does."""
    topic = s.topic()
    firer = Workers(s, topic, workers)
    try:
        produce(s, topic, names, count)
        wait_until(lambda: firer.fired() > 0, "the first fire")
        started, first = time.monotonic(), firer.fired()
        firer_cpu, emulator_cpu = firer.cpu_seconds(), cpu_seconds(s.emulator_pid)
        done = first
        while done < count and time.monotonic() - started < window_s:
            time.sleep(poll_s)
            done = firer.fired()
        seconds = time.monotonic() - started
        cpu, emulator = firer.cpu_seconds() - firer_cpu, cpu_seconds(s.emulator_pid) - emulator_cpu
    finally:
        firer.stop()
    if done < count:
        raise RuntimeError(f"the firer with {workers} workers fired {done:.0f} of {count} in its window")
    return Side(done - first, seconds, cpu, emulator)


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def measure(s: Stack, names: list[str], count: int, limits: ClientLimits, workers: int,
            sides: Sequence[str] = SIDES) -> Repeat:
    before = load_average()
    shared = bare = per_message = per_message_v1 = None
    if "shared" in sides:
        print("  firer, one shared token ...", file=sys.stderr)
        shared = firer_side(s, names, count, token_per_message=False)
    if "bare" in sides:
        print("  bare aiohttp client ...", file=sys.stderr)
        bare = bare_side(s, names, count, limits)
    bare_uvloop = None
    if "bare-uvloop" in sides:
        print("  bare aiohttp client on uvloop ...", file=sys.stderr)
        bare_uvloop = bare_side(s, names, count, limits, on_uvloop=True)
    if "per-message" in sides:
        print("  firer, a token per message ...", file=sys.stderr)
        per_message = firer_side(s, names, count, token_per_message=True)
    if "v1" in sides:
        print("  firer, a v1 (Fernet) token per message ...", file=sys.stderr)
        per_message_v1 = firer_side(s, names, count, token_per_message=True, v1=True)
    scaled = None
    if workers > 1 and "workers" in sides:
        print(f"  firer, WORKERS=1 and WORKERS={workers}, one shared token ...", file=sys.stderr)
        scaled = workers_side(s, names, count, 1), workers_side(s, names, count, workers)
    return Repeat(shared, per_message, bare, per_message_v1, (before, load_average()), scaled, bare_uvloop)


def need(side: Side | None) -> Side:
    """A side a row needs; it was left out of this run (--sides) when None, and the row is skipped."""
    assert side is not None, "left out of this run"
    return side


def shown(values: Sequence[float], spec: str) -> str:
    """One value, or the median with the range of the repeats."""
    if len(values) == 1:
        return format(values[0], spec)
    return f"{format(statistics.median(values), spec)} ({format(min(values), spec)}-{format(max(values), spec)})"


Value = Callable[[Repeat], float]
ROWS: list[tuple[str, tuple[Value, ...], str]] = [
    ("fires/s: firer, one shared token", (lambda r: need(r.shared).rate,), ",.0f"),
    ("fires/s: firer, a token sealed per message", (lambda r: need(r.per_message).rate,), ",.0f"),
    ("fires/s: bare aiohttp client (the controller's limit)", (lambda r: need(r.bare).rate,), ",.0f"),
    ("**firer fires/s ÷ bare client's** (shared token)", (lambda r: need(r.shared).rate / need(r.bare).rate,), ".2f"),
    ("CPU s per 10,000: firer, shared token", (lambda r: need(r.shared).cpu_per_10k,), ".2f"),
    ("CPU s per 10,000: firer, token per message", (lambda r: need(r.per_message).cpu_per_10k,), ".2f"),
    ("CPU s per 10,000: bare aiohttp client", (lambda r: need(r.bare).cpu_per_10k,), ".2f"),
    (f"**firer CPU ÷ bare CPU** per request (goal ≤ {GOAL_CPU_RATIO})",
     (lambda r: need(r.shared).cpu_per_10k / need(r.bare).cpu_per_10k,), ".2f"),
    ("CPU s per 10,000: bare aiohttp client on uvloop (the firer's loop)",
     (lambda r: need(r.bare_uvloop).cpu_per_10k,), ".2f"),
    ("firer CPU ÷ bare CPU on uvloop, both", (lambda r: need(r.shared).cpu_per_10k / need(r.bare_uvloop).cpu_per_10k,),
     ".2f"),
    (f"token per message ÷ shared: fires/s (goal ≥ {1 - GOAL_TOKEN_SLOWDOWN:.2f})",
     (lambda r: need(r.per_message).rate / need(r.shared).rate,), ".2f"),
    (f"token per message ÷ shared: CPU per fire (goal ≤ {1 + GOAL_TOKEN_SLOWDOWN:.2f})",
     (lambda r: need(r.per_message).cpu_per_10k / need(r.shared).cpu_per_10k,), ".2f"),
    ("before v2: a v1 (Fernet) token per message ÷ shared: CPU per fire",
     (lambda r: need(r.per_message_v1).cpu_per_10k / need(r.shared).cpu_per_10k,), ".2f"),
    ("emulator CPU µs per request: during the firer (shared token) / the bare client",
     (lambda r: need(r.shared).emulator_us_per_request, lambda r: need(r.bare).emulator_us_per_request), ".0f"),
    ("load average (1 min) before / after", (lambda r: r.load[0], lambda r: r.load[1]), ".1f"),
]


def worker_rows(workers: int) -> list[tuple[str, tuple[Value, ...], str]]:
    def one(r: Repeat) -> Side:
        assert r.workers is not None
        return r.workers[0]

    def many(r: Repeat) -> Side:
        assert r.workers is not None
        return r.workers[1]
    return [
        (f"fires/s: firer, WORKERS=1 / WORKERS={workers}, shared token", (lambda r: one(r).rate,
                                                                        lambda r: many(r).rate), ",.0f"),
        (f"**WORKERS={workers} ÷ WORKERS=1**: fires/s", (lambda r: many(r).rate / one(r).rate,), ".2f"),
        (f"fires/s ÷ bare client's: WORKERS=1 / WORKERS={workers}", (lambda r: one(r).rate / need(r.bare).rate,
                                                                    lambda r: many(r).rate / need(r.bare).rate), ".2f"),
        (f"CPU s per 10,000: WORKERS=1 / WORKERS={workers} (supervisor and workers)",
         (lambda r: one(r).cpu_per_10k, lambda r: many(r).cpu_per_10k), ".2f"),
        (f"emulator CPU µs per request: WORKERS=1 / WORKERS={workers}",
         (lambda r: one(r).emulator_us_per_request, lambda r: many(r).emulator_us_per_request), ".0f"),
    ]


def table(results: dict[int, list[Repeat]], workers: int = 1) -> str:
    """Markdown, a column per latency; a row of several values shows them as 'a / b'."""
    latencies = list(results)
    lines = ["| measure | " + " | ".join(f"{ms} ms controller latency" for ms in latencies) + " |",
             "|---|" + "---|" * len(latencies)]
    for label, values, spec in ROWS + (worker_rows(workers) if workers > 1 else []):
        try:
            cells = [" / ".join(shown([value(r) for r in results[ms]], spec) for value in values)
                     for ms in latencies]
        except (AttributeError, AssertionError):  # a side this row needs was left out (--sides)
            continue
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown CPU")
    return f"{os.cpu_count()} CPUs ({model}), Python {sys.version.split()[0]}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a smaller backlog (a smoke run, numbers are noisier)")
    p.add_argument("--repeats", type=int, default=1, help="repeats of every measure (median and range shown)")
    p.add_argument("--messages", type=int, help="backlog per side (default 30,000; 5,000 with --quick)")
    p.add_argument("--workers", type=int, default=2,
                   help="also measure the firer with WORKERS=N processes (N > 1; default 2), against one "
                        "process; 1: leave that out")
    p.add_argument("--sides", default=",".join(SIDES),
                   help=f"the sides to measure, comma-separated (default all: {','.join(SIDES)})")
    p.add_argument("--latencies", default=",".join(map(str, LATENCIES_MS)),
                   help="controller latencies in ms, comma-separated (default 0,20)")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="py-spy the firer while it drains (collapsed stacks into DIR; py-spy on PATH or $PY_SPY)")
    p.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)  # the bare client's own process
    args = p.parse_args(argv)
    if args.bare:
        return bare_main()
    sides = [side for side in args.sides.split(",") if side]
    if unknown := set(sides) - set(SIDES):
        p.error(f"unknown sides: {', '.join(sorted(unknown))}")
    latencies = [int(ms) for ms in args.latencies.split(",") if ms]
    if args.profile is not None:
        global PROFILE_DIR
        args.profile.mkdir(parents=True, exist_ok=True)
        PROFILE_DIR = args.profile
    count = args.messages or (5_000 if args.quick else 30_000)
    limits = ClientLimits.of_firer()
    work = Path(os.environ.get("BENCH_WORK", "/tmp")) / f"firer-cost-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True)
    started = time.monotonic()
    results: dict[int, list[Repeat]] = {ms: [] for ms in latencies}
    with stack(work) as s:
        print(f"creating {TRIGGERS:,} triggers ...", file=sys.stderr)
        names = create_triggers(s, TRIGGERS)
        for repeat in range(args.repeats):
            for latency_ms in latencies:
                print(f"repeat {repeat + 1}/{args.repeats}, {latency_ms} ms latency, {count:,} messages:",
                      file=sys.stderr)
                s.control("DELETE", "faults")
                if latency_ms:
                    s.control("POST", "faults", {"scope": "fires", "latency_ms": latency_ms})
                results[latency_ms].append(measure(s, names, count, limits, args.workers, sides))
        s.control("DELETE", "faults")
    print()
    print(f"{count:,} fires per side to {TRIGGERS:,} triggers, {args.repeats} repeat(s); firer and bare client: "
          f"{limits.connections} connections, {limits.timeout_s:g} s timeout; {machine()}; "
          f"{time.monotonic() - started:.0f} s in all")
    print()
    print(table(results, args.workers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
