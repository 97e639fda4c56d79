"""Warm action workers, kept per code version: the emulator's stand-in for the invoker's container pool.

The emulator hands over an action's code and one activation; the pool picks an idle warm worker
for that code version (`ActionCode.key`), or initialises a fresh one (a cold start), and runs the
activation on it. Like an OpenWhisk container with concurrency 1, a worker runs one activation at
a time, and module globals survive between the activations of one worker. Up to
`max_workers_per_action` workers run one key at once; more callers wait for a free one.

Workers come from a small stock of prewarmed launcher processes that do not know their code yet
(OpenWhisk's "stem cells"), so a cold start costs the init alone, not the interpreter's start-up.
A worker that timed out, crashed or failed its init is killed, never reused. Idle workers are
killed after `idle_timeout_s`; when an action name shows up with a new key, the old key's workers
are retired (idle ones at once, busy ones when their activation ends).

All mutable state lives in the `ActionPool` and is touched from its event loop only.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local_stack.action_runtime.worker import INTERNAL_ERROR, SUCCESS, Outcome, Worker, now_ms

# Variables of the emulator's environment that a worker inherits; nothing else leaks in (no
# PYTHONPATH, no VIRTUAL_ENV of the project's venv, no credentials).
_PASSED_THROUGH = ("HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")


@dataclass(frozen=True)
class ActionCode:
    key: str  # identity of this code version, e.g. "/guest/pkg/a@0.0.3"; a new key means new workers
    kind: str  # "python:3.11"
    code: str  # source text, or base64 zip when binary
    binary: bool
    main: str = "main"  # entry function name


@dataclass(frozen=True)
class RunRequest:
    params: dict | list  # the merged parameters (the /run "value")
    # The /run top-level fields: namespace, action_name ("/owner/pkg/a"), action_version,
    # activation_id, transaction_id, deadline (epoch-ms string), api_key (only with provide-api-key).
    activation: dict[str, str]
    init_env: dict[str, str]  # params annotated "init": true, stringified (they go to the /init env)
    timeout_ms: int


@dataclass(frozen=True)
class RunResult:
    status: str  # "success" | "application error" | "action developer error" | "whisk internal error"
    result: object  # dict or list; {"error": ...} for failures
    logs: list[str]  # "2026-01-01T00:00:00.000000000Z stdout: text"
    start_ms: int  # the init's start on a cold start, as OpenWhisk's activation start
    end_ms: int
    init_ms: int | None  # set when this run cold-started a worker
    timed_out: bool = False  # the activation hit its time limit (OpenWhisk's "timeout" annotation)


@dataclass
class _KeyPool:
    """The workers of one code version."""

    key: str
    slots: asyncio.Semaphore
    idle: list[Worker] = field(default_factory=list)  # most recently used last
    busy: set[Worker] = field(default_factory=set)
    entered: int = 0  # callers holding or waiting for a slot
    retired: bool = False


def worker_environment(python: str, api_host: str) -> dict[str, str]:
    """The environment a worker process starts with, as a container's: minimal, plus __OW_API_HOST."""
    env = {name: os.environ[name] for name in _PASSED_THROUGH if name in os.environ}
    env.setdefault("LANG", "C.UTF-8")
    # `python` and `pip` inside an action resolve to the runtime venv, as in the runtime image.
    env["PATH"] = str(Path(python).parent) + os.pathsep + os.environ.get("PATH", os.defpath)
    env["__OW_API_HOST"] = api_host
    return env


class ActionPool:
    def __init__(
        self,
        python: str,
        api_host: str,
        max_workers_per_action: int = 4,
        *,
        idle_timeout_s: float = 600.0,
        prewarm: int = 1,
        work_dir: Path | None = None,
    ) -> None:
        if max_workers_per_action < 1:
            raise ValueError("max_workers_per_action must be at least 1")
        self._python = python
        self._env = worker_environment(python, api_host)
        self._max_workers = max_workers_per_action
        self._idle_timeout_s = idle_timeout_s
        self._prewarm = prewarm
        self._work_dir = Path(tempfile.mkdtemp(prefix="ow-actions-", dir=work_dir))
        self._worker_ids = itertools.count(1)
        self._keys: dict[str, _KeyPool] = {}
        # (action name, init env) -> the key it last ran with; a different key replaces that one.
        self._latest_key: dict[tuple[str, str], str] = {}
        self._stem_cells: list[Worker] = []
        self._stem_cells_starting = 0
        self._background: set[asyncio.Task[Any]] = set()
        self._janitor: asyncio.Task[None] | None = None
        self._closed = False

    async def run(self, code: ActionCode, request: RunRequest) -> RunResult:
        """Runs one activation on a warm worker of `code`, cold-starting one when none is idle."""
        if self._closed:
            raise RuntimeError("the action pool is closed")
        if not code.kind.startswith("python"):
            stamp = now_ms()
            return RunResult(INTERNAL_ERROR, {"error": f"the emulator cannot run actions of kind {code.kind}"},
                             [], stamp, stamp, None)
        self._start_janitor()
        keypool = self._key_pool(code, request)
        keypool.entered += 1
        try:
            async with keypool.slots:
                return await self._run_in_slot(keypool, code, request)
        finally:
            keypool.entered -= 1

    async def close(self) -> None:
        """Kills every worker, prewarmed or not, and removes their directories."""
        self._closed = True
        if self._janitor is not None:
            self._janitor.cancel()
        workers = list(self._stem_cells)
        self._stem_cells.clear()
        for keypool in self._keys.values():
            workers.extend(keypool.idle)
            workers.extend(keypool.busy)
            keypool.idle.clear()
        self._keys.clear()
        await asyncio.gather(*(worker.kill() for worker in workers), return_exceptions=True)
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await asyncio.to_thread(shutil.rmtree, self._work_dir, True)

    def worker_count(self, key: str) -> int:
        """Workers of `key`, idle or busy (for tests and diagnostics)."""
        keypool = self._keys.get(key)
        return 0 if keypool is None else len(keypool.idle) + len(keypool.busy)

    async def _run_in_slot(self, keypool: _KeyPool, code: ActionCode, request: RunRequest) -> RunResult:
        worker = self._take_idle(keypool)
        cold = worker is None
        if worker is None:
            try:
                worker = await self._take_stem_cell()
            except OSError as error:
                stamp = now_ms()
                return RunResult(INTERNAL_ERROR, {"error": f"cannot start an action worker: {error}"}, [],
                                 stamp, stamp, None)
        keypool.busy.add(worker)
        init: Outcome | None = None
        if cold:
            init = await self._guarded(keypool, worker, worker.init(
                code.code, code.binary, code.main or "main", _init_env(request), request.timeout_ms))
            if init.status != SUCCESS:
                return RunResult(init.status, init.result, init.logs, init.start_ms, init.end_ms,
                                 init.end_ms - init.start_ms, init.timed_out)
        run = await self._guarded(keypool, worker, worker.run(_run_body(request), request.timeout_ms))
        self._release(keypool, worker)
        if init is None:
            return RunResult(run.status, run.result, run.logs, run.start_ms, run.end_ms, None, run.timed_out)
        return RunResult(run.status, run.result, run.logs, init.start_ms, run.end_ms,
                         init.end_ms - init.start_ms, run.timed_out)

    async def _guarded(self, keypool: _KeyPool, worker: Worker, call: Coroutine[Any, Any, Outcome]) -> Outcome:
        """Awaits a worker call; a worker left mid-call (cancelled, say) or failed is killed."""
        started_ms = now_ms()
        try:
            outcome = await call
        except Exception as error:  # a protocol fault of ours, not the action's: an internal error
            outcome = Outcome(INTERNAL_ERROR, {"error": f"the action worker failed: {error!r}"}, [],
                              started_ms, now_ms())
            worker.healthy = False
        except BaseException:
            keypool.busy.discard(worker)
            self._in_background(worker.kill())
            raise
        if not worker.alive:
            keypool.busy.discard(worker)
            self._in_background(worker.kill())
        return outcome

    def _key_pool(self, code: ActionCode, request: RunRequest) -> _KeyPool:
        name = request.activation.get("action_name")
        if name:
            # Two bindings may run one action with different init params: both stay warm.
            identity = (name, json.dumps(request.init_env, sort_keys=True))
            previous = self._latest_key.get(identity)
            if previous is not None and previous != code.key:
                self._retire(previous)
            self._latest_key[identity] = code.key
        keypool = self._keys.get(code.key)
        if keypool is None:
            keypool = _KeyPool(code.key, asyncio.Semaphore(self._max_workers))
            self._keys[code.key] = keypool
        return keypool

    def _retire(self, key: str) -> None:
        keypool = self._keys.pop(key, None)
        if keypool is None:
            return
        keypool.retired = True
        for worker in keypool.idle:
            self._in_background(worker.kill())
        keypool.idle.clear()

    def _take_idle(self, keypool: _KeyPool) -> Worker | None:
        while keypool.idle:
            worker = keypool.idle.pop()
            if worker.alive:
                return worker
            self._in_background(worker.kill())
        return None

    def _release(self, keypool: _KeyPool, worker: Worker) -> None:
        keypool.busy.discard(worker)
        if worker.alive and not keypool.retired and not self._closed:
            keypool.idle.append(worker)
        else:
            self._in_background(worker.kill())

    async def _take_stem_cell(self) -> Worker:
        worker: Worker | None = None
        while self._stem_cells and worker is None:
            candidate = self._stem_cells.pop()
            if candidate.alive:
                worker = candidate
            else:
                self._in_background(candidate.kill())
        if worker is None:
            worker = await self._spawn()
        self._refill_stem_cells()
        return worker

    def _refill_stem_cells(self) -> None:
        if self._closed:
            return
        missing = self._prewarm - len(self._stem_cells) - self._stem_cells_starting
        for _ in range(max(0, missing)):
            self._stem_cells_starting += 1
            self._in_background(self._start_stem_cell())

    async def _start_stem_cell(self) -> None:
        try:
            worker = await self._spawn()
        except OSError:
            return  # the next cold start spawns its own worker and reports the error
        finally:
            self._stem_cells_starting -= 1
        if self._closed:
            await worker.kill()
        else:
            self._stem_cells.append(worker)

    async def _spawn(self) -> Worker:
        directory = self._work_dir / f"worker-{next(self._worker_ids)}"
        return await Worker.spawn(self._python, directory, self._env)

    def _start_janitor(self) -> None:
        if self._janitor is None or self._janitor.done():
            self._janitor = asyncio.create_task(self._evict_idle_forever())

    async def _evict_idle_forever(self) -> None:
        period_s = max(0.05, min(self._idle_timeout_s / 4, 30.0))
        while not self._closed:
            await asyncio.sleep(period_s)
            self._evict_idle()

    def _evict_idle(self) -> None:
        oldest_ms = now_ms() - self._idle_timeout_s * 1000
        for key, keypool in list(self._keys.items()):
            keep = [worker for worker in keypool.idle if worker.alive and worker.last_used_ms >= oldest_ms]
            for worker in keypool.idle:
                if worker not in keep:
                    self._in_background(worker.kill())
            keypool.idle = keep
            if not keep and not keypool.busy and keypool.entered == 0:
                del self._keys[key]
                for identity in [identity for identity, latest in self._latest_key.items() if latest == key]:
                    del self._latest_key[identity]

    def _in_background(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _init_env(request: RunRequest) -> dict[str, str]:
    """The /init env: the first activation's __OW_* values, then the params annotated init."""
    env = {"__OW_" + key.upper(): value for key, value in request.activation.items()}
    env.update(request.init_env)
    return env


def _run_body(request: RunRequest) -> dict[str, object]:
    body: dict[str, object] = {key: value for key, value in request.activation.items() if key != "value"}
    body["value"] = request.params
    return body
