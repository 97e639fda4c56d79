"""One action worker: a launcher subprocess (a warm container), its channels, and call outcomes.

A worker is started before its code is known (like OpenWhisk's prewarmed "stem cell" containers),
is initialised once with one version of an action's code, then runs one activation at a time.
This module owns the parent's side of the protocol spoken by `launcher.py`: the command pipe
(the child's stdin), the result pipe (an extra fd), and the two log streams, which it splits into
activations at the end-of-activation marker and formats like OpenWhisk's activation logs. It also
classifies every outcome of an init or a run into an activation status, in one place (`_classify`
and the failure paths of `init` and `run`).

A worker that timed out, crashed, failed its init or lost a log marker is killed with its whole
process group and must not be reused (`healthy` is False).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

LAUNCHER = Path(__file__).resolve().parent / "launcher.py"
SENTINEL = b"XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX\n"

SUCCESS = "success"
APPLICATION_ERROR = "application error"
DEVELOPER_ERROR = "action developer error"
INTERNAL_ERROR = "whisk internal error"

# Messages as OpenWhisk words them (core/controller/.../http/ErrorResponse.scala `Messages`, and
# the actionloop proxy for the non-dictionary result).
ABNORMAL_INIT = "The action did not initialize and exited unexpectedly."
ABNORMAL_RUN = "The action did not produce a valid response and exited unexpectedly."
NOT_A_DICTIONARY = "The action did not return a dictionary or array."

LOG_LINE_LIMIT = 1 << 20  # a longer printed line reaches the logs in pieces of this size
RESULT_LIMIT = 64 << 20
LOG_MARKER_GRACE_S = 2.0  # how long a run waits for its markers after its result arrived
READER_DRAIN_S = 1.0  # how long a killed worker's log readers may take to reach end of file
# Scala's String.trim, which OpenWhisk applies to every log line: strips chars <= U+0020.
_TRIM = "".join(chr(code) for code in range(33))


def timed_out_message(timeout_ms: int, init: bool) -> str:
    suffix = " during initialization." if init else "."
    return f"The action exceeded its time limits of {timeout_ms} milliseconds{suffix}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def format_log_line(time_ns: int, stream: str, text: str) -> str:
    """A line as OpenWhisk's DockerToActivationLogStore writes it: padded timestamp, stream, text."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"
    return f"{stamp:<30} {stream}: {text.strip(_TRIM)}"


@dataclass(frozen=True)
class Outcome:
    """What one init or run ended with; `status` is an activation status."""

    status: str
    result: object
    logs: list[str]
    start_ms: int
    end_ms: int
    timed_out: bool = False


@dataclass(order=True, frozen=True)
class _LogLine:
    seq: int
    time_ns: int
    stream: str = field(compare=False)
    text: str = field(compare=False)

    def formatted(self) -> str:
        return format_log_line(self.time_ns, self.stream, self.text)


@dataclass
class _StreamLog:
    """One stream's lines: closed segments (one per activation) and the segment being filled."""

    segments: asyncio.Queue[list[_LogLine]] = field(default_factory=asyncio.Queue)
    current: list[_LogLine] = field(default_factory=list)
    eof: bool = False

    async def next_segment(self, timeout_s: float) -> list[_LogLine] | None:
        """The next closed segment; [] once the stream ended; None when the marker never came."""
        if not self.segments.empty():
            return self.segments.get_nowait()
        if self.eof:
            return []
        try:
            return await asyncio.wait_for(self.segments.get(), timeout_s)
        except TimeoutError:
            return None

    def take_all(self) -> list[_LogLine]:
        lines: list[_LogLine] = []
        while not self.segments.empty():
            lines.extend(self.segments.get_nowait())
        lines.extend(self.current)
        self.current = []
        return lines


class _LogCollector:
    """Follows stdout and stderr, stamping each line on arrival and cutting at the markers."""

    def __init__(self, stdout: asyncio.StreamReader, stderr: asyncio.StreamReader) -> None:
        self._seq = itertools.count()
        self._streams = {"stdout": _StreamLog(), "stderr": _StreamLog()}
        self._tasks = [
            asyncio.create_task(self._follow("stdout", stdout)),
            asyncio.create_task(self._follow("stderr", stderr)),
        ]

    async def _follow(self, name: str, reader: asyncio.StreamReader) -> None:
        stream = self._streams[name]
        while (line := await _read_line(reader)) is not None:
            marker = line.endswith(SENTINEL)
            if marker:
                line = line[: -len(SENTINEL)]
            if line or not marker:  # text printed without a newline just before the marker counts
                text = line.decode("utf-8", errors="replace").removesuffix("\n")
                stream.current.append(_LogLine(next(self._seq), time.time_ns(), name, text))
            if marker:
                stream.segments.put_nowait(stream.current)
                stream.current = []
        stream.segments.put_nowait(stream.current)
        stream.current = []
        stream.eof = True

    async def activation(self, timeout_s: float) -> tuple[list[str], bool]:
        """The logs of the activation that just ended, and whether both markers arrived."""
        lines: list[_LogLine] = []
        complete = True
        for stream in self._streams.values():
            segment = await stream.next_segment(timeout_s)
            if segment is None:
                complete = False
                segment = stream.take_all()
            lines.extend(segment)
        return [line.formatted() for line in sorted(lines)], complete

    async def remainder(self, timeout_s: float) -> list[str]:
        """Everything not yet handed out, once the readers reached end of file (or gave up)."""
        _, pending = await asyncio.wait(self._tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        lines = [line for stream in self._streams.values() for line in stream.take_all()]
        return [line.formatted() for line in sorted(lines)]


async def _read_line(reader: asyncio.StreamReader) -> bytes | None:
    try:
        return await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as error:
        return error.partial or None
    except asyncio.LimitOverrunError as error:
        return await reader.readexactly(error.consumed)


class _Exited(Exception):
    """The worker process went away before it answered."""


class Worker:
    """One launcher process. Not safe for concurrent calls: the pool gives it one at a time."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        results: asyncio.StreamReader,
        results_transport: asyncio.BaseTransport,
        directory: Path,
    ) -> None:
        assert process.stdout is not None and process.stderr is not None
        self._process = process
        self._results = results
        self._results_transport = results_transport
        self._logs = _LogCollector(process.stdout, process.stderr)
        self.directory = directory
        self.healthy = True
        self.last_used_ms = now_ms()
        self._killed = False

    @classmethod
    async def spawn(cls, python: str, directory: Path, env: dict[str, str]) -> Worker:
        """Starts a launcher in `directory` (its cwd, where the code goes), waiting for its init."""
        directory.mkdir(parents=True, exist_ok=True)
        read_fd, write_fd = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                python, str(LAUNCHER), str(write_fd),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=(write_fd,),
                cwd=directory,
                env=env,
                start_new_session=True,  # its own process group, so a kill takes its children too
                limit=LOG_LINE_LIMIT,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        results = asyncio.StreamReader(limit=RESULT_LIMIT)
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(results), os.fdopen(read_fd, "rb", buffering=0)
        )
        return cls(process, results, transport, directory)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        """Reusable: healthy, and its process has not exited while it sat idle."""
        return self.healthy and self._process.returncode is None

    async def init(self, code: str, binary: bool, main: str, env: dict[str, str], timeout_ms: int) -> Outcome:
        """Loads the code. On success the status is SUCCESS and its logs wait for the first run."""
        start_ms = now_ms()
        command = {"init": {"code": code, "binary": binary, "main": main, "env": env}}
        try:
            answer = await self._exchange(command, timeout_ms)
        except TimeoutError:
            return await self._fail(start_ms, timed_out_message(timeout_ms, init=True), timed_out=True)
        except _Exited:
            return await self._fail(start_ms, ABNORMAL_INIT)
        if "error" in answer:
            return await self._fail(start_ms, str(answer["error"]))
        return Outcome(SUCCESS, None, [], start_ms, now_ms())

    async def run(self, activation: dict[str, object], timeout_ms: int) -> Outcome:
        """Runs one activation: `activation` is the /run body, params under "value"."""
        start_ms = now_ms()
        try:
            answer = await self._exchange({"run": activation}, timeout_ms)
        except TimeoutError:
            return await self._fail(start_ms, timed_out_message(timeout_ms, init=False), timed_out=True)
        except _Exited:
            return await self._fail(start_ms, ABNORMAL_RUN)
        end_ms = now_ms()
        logs, complete = await self._logs.activation(LOG_MARKER_GRACE_S)
        if not complete:  # the action broke its own stdout or stderr: later logs cannot be split
            self.healthy = False
        self.last_used_ms = now_ms()
        status, result = _classify(answer)
        return Outcome(status, result, logs, start_ms, end_ms)

    async def kill(self) -> list[str]:
        """Kills the process group, removes the directory; returns the logs not handed out yet."""
        self.healthy = False
        if self._killed:
            return []
        self._killed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)
        await self._process.wait()
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._results_transport.close()
        logs = await self._logs.remainder(READER_DRAIN_S)
        await asyncio.to_thread(shutil.rmtree, self.directory, True)
        return logs

    async def _exchange(self, command: dict[str, object], timeout_ms: int) -> dict[str, object]:
        stdin = self._process.stdin
        assert stdin is not None
        try:
            async with asyncio.timeout(timeout_ms / 1000):
                stdin.write(json.dumps(command, ensure_ascii=False).encode("utf-8") + b"\n")
                await stdin.drain()
                line = await self._results.readline()
        except (BrokenPipeError, ConnectionResetError) as error:
            raise _Exited from error
        except ValueError as error:  # an answer longer than RESULT_LIMIT
            raise _Exited from error
        if not line:
            raise _Exited
        return json.loads(line)

    async def _fail(self, start_ms: int, error: str, timed_out: bool = False) -> Outcome:
        end_ms = now_ms()
        logs = await self.kill()
        return Outcome(DEVELOPER_ERROR, {"error": error}, logs, start_ms, end_ms, timed_out)


def _classify(answer: dict[str, object]) -> tuple[str, object]:
    if "unserializable" in answer:
        detail = answer["unserializable"]
        return DEVELOPER_ERROR, {"error": f"The action returned a value that is not JSON serializable ({detail})."}
    value = answer.get("value")
    if isinstance(value, dict):
        return (APPLICATION_ERROR if "error" in value else SUCCESS), value
    if isinstance(value, list):
        return SUCCESS, value
    return DEVELOPER_ERROR, {"error": NOT_A_DICTIONARY}
