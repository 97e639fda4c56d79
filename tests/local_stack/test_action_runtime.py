"""The action runtime runs real worker processes the way the python:3.11 runtime runs actions.

Every test starts real launcher processes under the runtime venv (the packages of the real image)
and checks what OpenWhisk would report: status, result, logs, timings, the `__OW_*` environment,
warm-container reuse, zips and shipped virtualenvs.
"""

from __future__ import annotations

import asyncio
import base64
import io
import re
import statistics
import subprocess
import time
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from local_stack.action_runtime import ActionCode, ActionPool, RunRequest, RunResult, ensure_runtime_python
from local_stack.action_runtime import venv as runtime_venv
from local_stack.action_runtime.worker import format_log_line

API_HOST = "http://127.0.0.1:3233"
ACTIVATION = {
    "namespace": "guest",
    "action_name": "/guest/pkg/a",
    "action_version": "0.0.1",
    "activation_id": "0123456789abcdef0123456789abcdef",
    "transaction_id": "tid-1",
    "deadline": "1893456000000",
}
# `wsk activation logs --strip` prints log[39:]: a 30-char timestamp, a space, "stdout: ".
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr): ")

T = TypeVar("T")


@pytest.fixture(scope="session")
def runtime_python() -> str:
    return ensure_runtime_python()


def with_pool(runtime_python: str, body: Callable[[ActionPool], Awaitable[T]], **options: object) -> T:
    async def scenario() -> T:
        pool = ActionPool(runtime_python, API_HOST, **options)  # type: ignore[arg-type]
        try:
            return await body(pool)
        finally:
            await pool.close()

    return asyncio.run(scenario())


def source(text: str, key: str = "/guest/pkg/a@0.0.1", main: str = "main") -> ActionCode:
    return ActionCode(key=key, kind="python:3.11", code=text, binary=False, main=main)


def zipped(files: dict[str, str | bytes], key: str = "/guest/pkg/a@0.0.1") -> ActionCode:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return ActionCode(key=key, kind="python:3.11", code=base64.b64encode(buffer.getvalue()).decode(),
                      binary=True, main="main")


def request(params: dict | list | None = None, timeout_ms: int = 10_000, init_env: dict[str, str] | None = None,
            **activation: str) -> RunRequest:
    return RunRequest(params={} if params is None else params, activation={**ACTIVATION, **activation},
                      init_env=init_env or {}, timeout_ms=timeout_ms)


def texts(result: RunResult) -> list[str]:
    """The log lines as `wsk activation logs --strip` shows them, with their stream."""
    for line in result.logs:
        assert LOG_LINE.match(line), line
    return [f"{line[31:37]}: {line[39:]}" for line in result.logs]


def stream(logs: list[str], name: str) -> list[str]:
    return [line for line in logs if line.startswith(name + ": ")]


def run_once(runtime_python: str, code: ActionCode, req: RunRequest | None = None) -> RunResult:
    return with_pool(runtime_python, lambda pool: pool.run(code, req or request()))


def process_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")  # a zombie left to a container's init that does not reap


# --- outcomes --------------------------------------------------------------------------------


def test_a_dict_result_is_a_success_with_the_printed_lines_as_logs(runtime_python: str) -> None:
    code = source(
        "import sys\n"
        "print('imported')\n"
        "def main(args):\n"
        "    print('hello', args['name'])\n"
        "    print('  on stderr  ', file=sys.stderr)\n"
        "    print('{\"result\": \"not this\"}')\n"
        "    return {'greeting': 'hi ' + args['name']}\n"
    )
    result = run_once(runtime_python, code, request({"name": "kafka"}))
    assert result.status == "success"
    assert result.result == {"greeting": "hi kafka"}
    # What the action printed while it was imported counts toward the first run; OpenWhisk trims lines.
    logs = texts(result)
    assert stream(logs, "stdout") == ["stdout: imported", "stdout: hello kafka", 'stdout: {"result": "not this"}']
    assert stream(logs, "stderr") == ["stderr: on stderr"]
    assert result.init_ms is not None and result.start_ms <= result.end_ms


def test_a_dict_with_a_top_level_error_is_an_application_error(runtime_python: str) -> None:
    result = run_once(runtime_python, source("def main(args):\n    return {'error': 'bad input', 'at': 1}\n"))
    assert result.status == "application error"
    assert result.result == {"error": "bad input", "at": 1}


def test_an_exception_is_an_application_error_with_its_traceback_in_the_logs(runtime_python: str) -> None:
    code = source("def main(args):\n    raise ValueError('no topic given')\n")
    result = run_once(runtime_python, code)
    assert result.status == "application error"
    assert result.result == {"error": "no topic given"}
    logs = texts(result)
    assert "stderr: Traceback (most recent call last):" in logs
    assert "stderr: ValueError: no topic given" in logs
    assert all(line.startswith("stderr: ") for line in logs)


@pytest.mark.parametrize("returned", ["None", "'a string'", "42"])
def test_a_result_that_is_not_a_dict_or_list_is_a_developer_error(runtime_python: str, returned: str) -> None:
    result = run_once(runtime_python, source(f"def main(args):\n    return {returned}\n"))
    assert result.status == "action developer error"
    assert result.result == {"error": "The action did not return a dictionary or array."}


def test_list_params_reach_main_and_a_list_result_is_a_success(runtime_python: str) -> None:
    code = source("def main(args):\n    return list(reversed(args)) + [type(args).__name__]\n")
    result = run_once(runtime_python, code, request([1, "two", {"three": 3}]))
    assert result.status == "success"
    assert result.result == [{"three": 3}, "two", 1, "list"]


def test_an_unserializable_result_is_a_developer_error_and_the_worker_lives_on(runtime_python: str) -> None:
    code = source("def main(args):\n    return {'s': {1, 2}} if args.get('bad') else {'ok': True}\n")

    async def body(pool: ActionPool) -> tuple[RunResult, RunResult]:
        return await pool.run(code, request({"bad": True})), await pool.run(code, request())

    bad, good = with_pool(runtime_python, body)
    assert bad.status == "action developer error"
    assert "not JSON serializable" in str(bad.result)
    assert good.status == "success" and good.init_ms is None


def test_a_custom_main_name_is_called(runtime_python: str) -> None:
    result = run_once(runtime_python, source("def handler(args):\n    return {'via': 'handler'}\n", main="handler"))
    assert result.result == {"via": "handler"}


# --- time limits and crashes -----------------------------------------------------------------


def test_a_run_past_its_timeout_is_killed_and_keeps_the_logs_so_far(runtime_python: str) -> None:
    code = source(
        "import os, subprocess, sys, time\n"
        "def main(args):\n"
        "    if args.get('hang'):\n"
        "        child = subprocess.Popen(['sleep', '60'])\n"
        "        print('child', child.pid)\n"
        "        print('about to hang', file=sys.stderr)\n"
        "        time.sleep(60)\n"
        "    return {'pid': os.getpid()}\n"
    )

    async def body(pool: ActionPool) -> tuple[RunResult, RunResult, RunResult, float]:
        first = await pool.run(code, request())
        started = time.monotonic()
        hung = await pool.run(code, request({"hang": True}, timeout_ms=500))
        elapsed = time.monotonic() - started
        after = await pool.run(code, request())
        return first, hung, after, elapsed

    first, hung, after, elapsed = with_pool(runtime_python, body)
    assert hung.status == "action developer error"
    assert hung.result == {"error": "The action exceeded its time limits of 500 milliseconds."}
    assert hung.timed_out and not first.timed_out
    assert 0.5 <= elapsed < 3
    logs = texts(hung)
    assert "stderr: about to hang" in logs
    child_pid = int(next(line for line in logs if line.startswith("stdout: child ")).split()[-1])
    assert process_gone(first.result["pid"])  # type: ignore[index]
    assert process_gone(child_pid)  # the whole process group goes, not only the launcher
    # The next activation gets a fresh worker (a cold start).
    assert after.status == "success" and after.init_ms is not None
    assert after.result["pid"] != first.result["pid"]  # type: ignore[index]


def test_an_init_past_its_timeout_is_a_developer_error(runtime_python: str) -> None:
    code = source("import time\nprint('loading')\ntime.sleep(60)\ndef main(args):\n    return {}\n")
    result = run_once(runtime_python, code, request(timeout_ms=400))
    assert result.status == "action developer error"
    assert result.result == {"error": "The action exceeded its time limits of 400 milliseconds during initialization."}
    assert result.timed_out
    assert texts(result) == ["stdout: loading"]
    assert result.init_ms is not None


@pytest.mark.parametrize("how", [
    "os._exit(3)",
    "os.kill(os.getpid(), signal.SIGSEGV)",
    "sys.exit(0)",
    "os.system('sleep 30 &'); os._exit(3)",  # a leftover child must not hide the exit
])
def test_a_worker_that_dies_is_a_developer_error_and_is_replaced(runtime_python: str, how: str) -> None:
    code = source(
        "import os, signal, sys\n"
        "def main(args):\n"
        "    if args.get('die'):\n"
        "        print('last words')\n"
        f"        {how}\n"
        "    return {'pid': os.getpid()}\n"
    )

    async def body(pool: ActionPool) -> tuple[RunResult, RunResult, RunResult]:
        return (await pool.run(code, request()), await pool.run(code, request({"die": True})),
                await pool.run(code, request()))

    started = time.monotonic()
    first, died, after = with_pool(runtime_python, body)
    assert time.monotonic() - started < 5
    assert died.status == "action developer error"
    assert died.result == {"error": "The action did not produce a valid response and exited unexpectedly."}
    assert texts(died) == ["stdout: last words"]
    assert after.status == "success" and after.init_ms is not None
    assert after.result["pid"] != first.result["pid"]  # type: ignore[index]


# --- warm workers ----------------------------------------------------------------------------


COUNTER = (
    "import os\n"
    "calls = 0\n"
    "def main(args):\n"
    "    global calls\n"
    "    calls += 1\n"
    "    return {'calls': calls, 'pid': os.getpid()}\n"
)


def test_globals_persist_across_warm_runs_of_one_worker(runtime_python: str) -> None:
    async def body(pool: ActionPool) -> list[RunResult]:
        return [await pool.run(source(COUNTER), request()) for _ in range(3)]

    results = with_pool(runtime_python, body)
    assert [r.result["calls"] for r in results] == [1, 2, 3]  # type: ignore[index]
    assert len({r.result["pid"] for r in results}) == 1  # type: ignore[index]
    assert results[0].init_ms is not None
    assert results[1].init_ms is None and results[2].init_ms is None


def test_a_new_key_gets_fresh_workers_and_retires_the_old_ones(runtime_python: str) -> None:
    old, new = source(COUNTER, key="/guest/pkg/a@0.0.1"), source(COUNTER, key="/guest/pkg/a@0.0.2")

    async def body(pool: ActionPool) -> tuple[list[RunResult], int, int]:
        results = [await pool.run(old, request()), await pool.run(old, request()),
                   await pool.run(new, request(action_version="0.0.2"))]
        await asyncio.sleep(0.2)  # the retired worker is killed in the background
        return results, pool.worker_count(old.key), pool.worker_count(new.key)

    (first, second, third), old_workers, new_workers = with_pool(runtime_python, body)
    assert second.result == {"calls": 2, "pid": first.result["pid"]}  # type: ignore[index]
    assert third.result["calls"] == 1 and third.init_ms is not None  # type: ignore[index]
    assert third.result["pid"] != first.result["pid"]  # type: ignore[index]
    assert (old_workers, new_workers) == (0, 1)
    assert process_gone(first.result["pid"])  # type: ignore[index]


def test_concurrent_runs_of_one_key_use_up_to_the_worker_limit(runtime_python: str) -> None:
    code = source("import os, time\ndef main(args):\n    time.sleep(0.4)\n    return {'pid': os.getpid()}\n")

    async def body(pool: ActionPool) -> tuple[list[RunResult], float, int]:
        started = time.monotonic()
        results = await asyncio.gather(*(pool.run(code, request()) for _ in range(4)))
        return list(results), time.monotonic() - started, pool.worker_count(code.key)

    results, elapsed, workers = with_pool(runtime_python, body, max_workers_per_action=2)
    assert all(r.status == "success" for r in results)
    assert len({r.result["pid"] for r in results}) == 2  # type: ignore[index]
    assert workers == 2
    assert 0.8 <= elapsed < 2.0  # two rounds of two, not four at once and not one at a time
    assert sum(r.init_ms is not None for r in results) == 2


def test_one_action_with_two_init_envs_keeps_both_warm(runtime_python: str) -> None:
    # As the emulator keys code by init env too: two bindings of one action, different init params.
    a, b = source(COUNTER, key="/guest/pkg/a@0.0.1#a"), source(COUNTER, key="/guest/pkg/a@0.0.1#b")

    async def body(pool: ActionPool) -> list[RunResult]:
        results = []
        for code, env in [(a, "a"), (b, "b"), (a, "a"), (b, "b")]:
            results.append(await pool.run(code, request(init_env={"X": env})))
        return results

    results = with_pool(runtime_python, body)
    assert [r.result["calls"] for r in results] == [1, 1, 2, 2]  # type: ignore[index]


def test_a_busy_worker_of_a_replaced_key_is_retired_when_its_run_ends(runtime_python: str) -> None:
    slow = source("import os, time\ndef main(args):\n    time.sleep(0.4)\n    return {'pid': os.getpid()}\n")
    new = source(COUNTER, key="/guest/pkg/a@0.0.2")

    async def body(pool: ActionPool) -> tuple[RunResult, RunResult, int]:
        old_run = asyncio.create_task(pool.run(slow, request()))
        await asyncio.sleep(0.2)
        new_result = await pool.run(new, request(action_version="0.0.2"))
        old_result = await old_run
        await asyncio.sleep(0.2)
        return old_result, new_result, pool.worker_count(slow.key)

    old_result, new_result, old_workers = with_pool(runtime_python, body)
    assert old_result.status == "success" and new_result.status == "success"
    assert old_workers == 0
    assert process_gone(old_result.result["pid"])  # type: ignore[index]


def test_a_cancelled_run_kills_its_worker(runtime_python: str) -> None:
    code = source("import os, time\ndef main(args):\n    print(os.getpid())\n    time.sleep(args.get('s', 0))\n"
                  "    return {'pid': os.getpid()}\n")

    async def body(pool: ActionPool) -> tuple[int, RunResult]:
        first = await pool.run(code, request())
        task = asyncio.create_task(pool.run(code, request({"s": 30})))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.2)
        return first.result["pid"], await pool.run(code, request())  # type: ignore[index]

    pid, after = with_pool(runtime_python, body)
    assert process_gone(pid)
    assert after.status == "success" and after.init_ms is not None


def test_a_worker_that_cannot_start_is_an_internal_error(tmp_path: Path) -> None:
    result = run_once(str(tmp_path / "no-python"), source(COUNTER))
    assert result.status == "whisk internal error"
    assert "cannot start an action worker" in result.result["error"]  # type: ignore[index]


def test_a_kind_other_than_python_is_an_internal_error(runtime_python: str) -> None:
    code = ActionCode(key="/guest/js@0.0.1", kind="nodejs:20", code="function main() {}", binary=False, main="main")
    result = run_once(runtime_python, code)
    assert result.status == "whisk internal error"


def test_idle_workers_are_evicted(runtime_python: str) -> None:
    async def body(pool: ActionPool) -> tuple[RunResult, int]:
        result = await pool.run(source(COUNTER), request())
        await asyncio.sleep(0.8)
        return result, pool.worker_count("/guest/pkg/a@0.0.1")

    result, workers = with_pool(runtime_python, body, idle_timeout_s=0.2)
    assert workers == 0
    assert process_gone(result.result["pid"])  # type: ignore[index]


def test_close_kills_every_worker_including_the_prewarmed_ones(runtime_python: str) -> None:
    async def body(pool: ActionPool) -> tuple[int, list[int]]:
        result = await pool.run(source(COUNTER), request())
        await asyncio.sleep(0.3)  # let the prewarmed worker start
        prewarmed = [worker.pid for worker in pool._stem_cells]
        await pool.close()
        return result.result["pid"], prewarmed  # type: ignore[index]

    pid, prewarmed = with_pool(runtime_python, body, prewarm=1)
    assert len(prewarmed) == 1
    assert process_gone(pid) and process_gone(prewarmed[0])


# --- environment -----------------------------------------------------------------------------


ENVIRONMENT = (
    "import os\n"
    "AT_INIT = {k: v for k, v in os.environ.items() if k.startswith('__OW_') or k == 'DB_URL'}\n"
    "def main(args):\n"
    "    now = {k: v for k, v in os.environ.items() if k.startswith('__OW_') or k == 'DB_URL'}\n"
    "    return {'init': AT_INIT, 'run': now}\n"
)


def test_init_env_and_the_ow_variables_are_set_and_the_api_key_only_when_given(runtime_python: str) -> None:
    async def body(pool: ActionPool) -> tuple[RunResult, RunResult]:
        with_key = await pool.run(source(ENVIRONMENT),
                                  request(init_env={"DB_URL": "db://x"}, api_key="uuid:secret"))
        without_key = await pool.run(source(ENVIRONMENT),
                                     request(init_env={"DB_URL": "db://x"}, activation_id="f" * 32))
        return with_key, without_key

    with_key, without_key = with_pool(runtime_python, body)
    expected = {"__OW_" + k.upper(): v for k, v in ACTIVATION.items()}
    assert with_key.result["init"] == {**expected, "__OW_API_HOST": API_HOST, "__OW_API_KEY": "uuid:secret",  # type: ignore[index]
                                       "DB_URL": "db://x"}
    assert with_key.result["run"] == with_key.result["init"]  # type: ignore[index]
    assert without_key.init_ms is None  # the same warm worker
    assert without_key.result["run"] == {**expected, "__OW_API_HOST": API_HOST,  # type: ignore[index]
                                         "__OW_ACTIVATION_ID": "f" * 32, "DB_URL": "db://x"}


def test_the_worker_environment_does_not_leak_the_emulators(
    runtime_python: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", "/nowhere")
    monkeypatch.setenv("SOME_SECRET", "x")
    code = source(
        "import os, sys\n"
        "def main(args):\n"
        "    return {'env': sorted(os.environ), 'path': sys.path, 'stdin': sys.stdin.read(),\n"
        "            'cwd': os.getcwd(), 'prefix': sys.prefix}\n"
    )
    result = run_once(runtime_python, code).result
    assert isinstance(result, dict)
    assert "SOME_SECRET" not in result["env"] and "PYTHONPATH" not in result["env"]
    assert result["stdin"] == ""
    assert result["path"][0] == result["cwd"]
    assert not any(p.endswith("action_runtime") for p in result["path"])
    assert Path(result["prefix"]).resolve() == Path(runtime_python).parent.parent.resolve()


# --- init failures ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (source(""), "Missing main/no code to execute."),
        (source("def main(args) return {}\n"), "Cannot start action. SyntaxError: "),
        (source("import not_installed_here\n"), "Cannot start action. ModuleNotFoundError: "),
        (source("def other(args):\n    return {}\n"), "Cannot start action. ImportError: cannot import name 'main'"),
        (zipped({"helper.py": "X = 1\n"}), "Zip file does not include main__"),
        (zipped({"__main__.py": "def main(a):\n    return {}\n", "virtualenv/lib/x.py": "# x\n"}),
         "Invalid virtualenv. Zip file does not include 'activate_this.py'."),
        (zipped({"__main__.py": "def main(a):\n    return {}\n", "requirements.txt": "kafka-python\n"}),
         "The zip has a requirements.txt but no virtualenv/ folder."),
    ],
    ids=["empty", "syntax", "missing-module", "missing-main", "zip-without-main", "venv-without-activate",
         "requirements-without-venv"],
)
def test_an_init_failure_is_a_developer_error(runtime_python: str, code: ActionCode, error: str) -> None:
    result = run_once(runtime_python, code)
    assert result.status == "action developer error"
    assert isinstance(result.result, dict) and result.result["error"].startswith(error)
    assert result.init_ms is not None
    assert any(error.split(":")[0] in line for line in result.logs)  # the reason is in the logs too


def test_a_failed_init_is_retried_on_the_next_activation(runtime_python: str) -> None:
    async def body(pool: ActionPool) -> list[RunResult]:
        return [await pool.run(source("raise RuntimeError('boom')\n"), request()) for _ in range(2)]

    results = with_pool(runtime_python, body)
    assert [r.status for r in results] == ["action developer error"] * 2
    assert all("stderr: RuntimeError: boom" in texts(r) for r in results)


# --- zips ------------------------------------------------------------------------------------


def test_a_zip_runs_its_main_with_helpers_packages_and_data_from_its_folder(runtime_python: str) -> None:
    code = zipped({
        "__main__.py": "from helper import twice\nfrom lib.util import name\n"
                       "def main(args):\n    return {'x': twice(args['x']), 'name': name(),"
                       " 'data': open('data.txt').read()}\n",
        "helper.py": "def twice(x):\n    return 2 * x\n",
        "lib/__init__.py": "# package\n",
        "lib/util.py": "def name():\n    return __name__\n",
        "data.txt": "shipped",
    })
    result = run_once(runtime_python, code, request({"x": 21}))
    assert result.status == "success", result
    assert result.result == {"x": 42, "name": "lib.util", "data": "shipped"}


def test_a_zip_with_a_virtualenv_imports_its_packages(runtime_python: str, tmp_path: Path) -> None:
    venv = tmp_path / "virtualenv"
    subprocess.run([runtime_python, "-m", "virtualenv", "--without-pip", "--no-setuptools", "--no-wheel",
                    "-q", str(venv)], check=True)
    package = venv / "lib" / "python3.11" / "site-packages" / "shipped_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("VERSION = '9.9'\n")
    files: dict[str, str | bytes] = {
        "__main__.py": "import shipped_pkg, sys\ndef main(args):\n"
                       "    return {'v': shipped_pkg.VERSION, 'prefix': sys.prefix}\n",
    }
    for path in venv.rglob("*"):
        if path.is_file() and not path.is_symlink():  # as wskdeploy's zipper does
            files[str(path.relative_to(tmp_path))] = path.read_bytes()
    result = run_once(runtime_python, zipped(files))
    assert result.status == "success", result
    assert result.result["v"] == "9.9"  # type: ignore[index]
    assert result.result["prefix"].endswith("/virtualenv")  # type: ignore[index]


# --- logs ------------------------------------------------------------------------------------


def test_log_lines_have_the_openwhisk_format_and_arrive_in_order(runtime_python: str) -> None:
    code = source(
        "import sys\n"
        "def main(args):\n"
        "    for i in range(3):\n"
        "        print('out', i)\n"
        "        print('err', i, file=sys.stderr)\n"
        "    print()\n"
        "    print('no newline at the end', end='')\n"
        "    return {}\n"
    )
    result = run_once(runtime_python, code)
    # Each stream keeps its order; across the two streams the order is that of arrival, which (as
    # with Docker's log driver on OpenWhisk) may differ from the print order by microseconds.
    logs = texts(result)
    assert stream(logs, "stdout") == ["stdout: out 0", "stdout: out 1", "stdout: out 2", "stdout: ",
                                      "stdout: no newline at the end"]
    assert stream(logs, "stderr") == ["stderr: err 0", "stderr: err 1", "stderr: err 2"]
    stamps = [line[:30] for line in result.logs]
    assert stamps == sorted(stamps)
    assert not any("XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX" in line for line in result.logs)


def test_format_log_line_pads_and_trims_like_openwhisk() -> None:
    line = format_log_line(1_767_225_600_000_000_000, "stderr", "\t  text  \n")
    assert line == "2026-01-01T00:00:00.000000000Z stderr: text"
    assert line[39:] == "text"


def test_each_run_gets_only_its_own_logs(runtime_python: str) -> None:
    code = source("def main(args):\n    print('run', args['n'])\n    return {}\n")

    async def body(pool: ActionPool) -> list[RunResult]:
        return [await pool.run(code, request({"n": n})) for n in range(3)]

    assert [texts(r) for r in with_pool(runtime_python, body)] == [[f"stdout: run {n}"] for n in range(3)]


# --- the runtime venv -----------------------------------------------------------------------


def test_the_runtime_venv_has_the_pinned_packages_of_the_runtime_image(runtime_python: str) -> None:
    pins = dict(line.split("==") for line in runtime_venv.REQUIREMENTS.read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    code = source(
        "import sys\nfrom importlib.metadata import version\n"
        "def main(args):\n"
        "    import kafka, requests\n"
        "    return {'versions': {name: version(name) for name in args['names']}, 'python': sys.version[:4]}\n"
    )
    result = run_once(runtime_python, code, request({"names": sorted(pins)}))
    assert result.result == {"versions": pins, "python": "3.11"}


def test_a_changed_requirements_file_rebuilds_the_venv(tmp_path: Path) -> None:
    venv = tmp_path / runtime_venv.VENV_NAME
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    digest = runtime_venv.requirements_digest()
    (venv / runtime_venv.STAMP_NAME).write_text("stale\n")
    assert not runtime_venv._is_current(venv, digest)
    (venv / runtime_venv.STAMP_NAME).write_text(digest + "\n")
    assert runtime_venv._is_current(venv, digest)
    assert runtime_venv.ensure_runtime_python(tmp_path) == str(venv / "bin" / "python")  # no rebuild


# --- latency ---------------------------------------------------------------------------------


def test_warm_runs_cost_a_few_milliseconds_and_cold_starts_tens(runtime_python: str) -> None:
    tiny = "def main(args):\n    return {'ok': True}\n"

    async def body(pool: ActionPool) -> tuple[list[float], list[float]]:
        cold, warm = [], []
        for version in range(5):
            await asyncio.sleep(0.1)  # give the prewarmed worker time to start, as between invokes
            code = source(tiny, key=f"/guest/pkg/a@0.0.{version}")
            started = time.perf_counter()
            await pool.run(code, request(action_version=f"0.0.{version}"))
            cold.append((time.perf_counter() - started) * 1000)
            for _ in range(40):
                started = time.perf_counter()
                await pool.run(code, request(action_version=f"0.0.{version}"))
                warm.append((time.perf_counter() - started) * 1000)
        return cold, warm

    cold, warm = with_pool(runtime_python, body)
    print(f"cold start median {statistics.median(cold):.1f} ms (first {cold[0]:.1f} ms), "
          f"warm run median {statistics.median(warm):.2f} ms")
    assert statistics.median(warm) < 5
    assert statistics.median(cold) < 200
