"""The program inside one action worker process: the python:3.11 runtime's launcher, emulated.

It runs under the runtime venv's python (the packages of the real image), so it imports nothing
from the project, only the standard library. It plays both halves of the real runtime: the
actionloop proxy's `/init` (decode the code, extract a zip, find `__main__.py`, activate a shipped
`virtualenv/`) and the Python launcher's `/run` loop (set `__OW_*`, call `main(value)`).

Channels, as in the actionloop proxy:
  * commands arrive one JSON object per line on the pipe handed over as stdin; the launcher moves
    that pipe off fd 0 first, so the action itself reads an empty stdin;
  * answers leave one JSON object per line on the result pipe (the fd given as argv[1], the real
    proxy's fd 3), never mixed with what the action prints;
  * stdout and stderr are the action's logs. After each run, and after a failed init, the marker
    line `XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX` is written to both, before the answer, so the
    parent knows where the activation's logs end. What an action prints while it is imported
    (at init) carries over into the first run's logs, as on OpenWhisk.

Commands and answers:
  {"init": {"code", "binary", "main", "env"}}  ->  {"ok": true} | {"error": "..."} (then exit)
  {"run": {"value", "namespace", ...}}          ->  {"value": <main's return>} | {"unserializable": "..."}
"""

import contextlib
import json
import os
import sys
import traceback

SENTINEL = b"XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX\n"
ENTRY_MODULE = "main__"
ZIP_MAGIC = b"PK\x03\x04"


class InitError(Exception):
    """The action cannot start; the message is what the activation's result says."""


def main():
    result_fd = int(sys.argv[1])
    os.set_inheritable(result_fd, False)  # a process the action starts must not hold it open
    results = os.fdopen(result_fd, "wb")
    commands = _take_command_pipe()
    # The action's folder (the cwd) takes the place of the launcher's own folder on sys.path,
    # as when the real launcher runs from the action's folder.
    if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
        sys.path.pop(0)
    sys.path.insert(0, os.getcwd())
    # Lines reach the parent as they are printed, so their timestamps and order are meaningful.
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)

    line = commands.readline()
    if not line:
        return
    entry = _init(json.loads(line)["init"], results)
    _answer(results, _encode({"ok": True}))
    activation_vars = {name for name in os.environ if name.startswith("__OW_") and name != "__OW_API_HOST"}
    for line in commands:
        activation = json.loads(line)["run"]
        activation_vars = _set_activation_env(activation, activation_vars)
        value = _call(entry, activation.get("value", {}))
        answer = _encode_result(value)
        _write_sentinels()
        _answer(results, answer)


def _take_command_pipe():
    commands = os.fdopen(os.dup(0), "rb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return commands


def _init(request, results):
    try:
        for name, value in request.get("env", {}).items():
            os.environ[name] = value if isinstance(value, str) else json.dumps(value)
        _install_code(request.get("code") or "", bool(request.get("binary")))
        _activate_virtualenv()
        return _import_entry(request.get("main") or "main")
    except InitError as error:
        _fail_init(results, str(error))
    except BaseException as error:  # the action's import may raise anything, even SystemExit
        traceback.print_exc()
        _fail_init(results, f"Cannot start action. {type(error).__name__}: {error}")
    raise AssertionError("unreachable")


def _install_code(code, binary):
    if not code:
        raise InitError("Missing main/no code to execute.")
    if not binary:
        _write_entry(code.encode("utf-8"))
        return
    import base64

    data = base64.b64decode(code)
    if not data.startswith(ZIP_MAGIC):
        _write_entry(data)
        return
    _extract_zip(data)
    if not os.path.isfile("__main__.py"):
        raise InitError("Zip file does not include main__")
    os.rename("__main__.py", f"{ENTRY_MODULE}.py")
    if os.path.exists("requirements.txt") and not os.path.isdir("virtualenv"):
        raise InitError(
            "The zip has a requirements.txt but no virtualenv/ folder. The real runtime would run "
            "'pip install -r requirements.txt' at init, with network access; this emulator does not "
            "install packages at init. Ship them in a virtualenv/ folder of the zip instead."
        )


def _write_entry(data):
    with open(f"{ENTRY_MODULE}.py", "wb") as entry:
        entry.write(data)


def _extract_zip(data):
    import io
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            archive.extractall(".")
    except zipfile.BadZipFile as error:
        raise InitError(f"Cannot extract the action's zip: {error}") from error


def _activate_virtualenv():
    venv = os.path.abspath("virtualenv")
    if not os.path.isdir(venv):
        return
    script = os.path.join(venv, "bin", "activate_this.py")
    if not os.path.exists(script):
        raise InitError("Invalid virtualenv. Zip file does not include 'activate_this.py'.")
    with open(script) as source:
        exec(compile(source.read(), script, "exec"), {"__file__": script})


def _import_entry(name):
    module = __import__(ENTRY_MODULE)
    entry = getattr(module, name, None)
    if entry is None:
        raise ImportError(f"cannot import name '{name}' from '{ENTRY_MODULE}'")
    return entry


def _fail_init(results, message):
    print(message, file=sys.stderr)
    _write_sentinels()
    _answer(results, _encode({"error": message}))
    sys.exit(1)


def _set_activation_env(activation, previous):
    current = {"__OW_" + key.upper() for key in activation if key != "value"}
    for name in previous - current:
        os.environ.pop(name, None)
    for key, value in activation.items():
        if key != "value":
            os.environ["__OW_" + key.upper()] = value if isinstance(value, str) else json.dumps(value)
    return current


def _call(entry, value):
    try:
        return entry(value)
    except Exception as error:
        traceback.print_exc()
        return {"error": str(error)}


def _encode_result(value):
    try:
        return _encode({"value": value})
    except (TypeError, ValueError) as error:
        return _encode({"unserializable": f"{type(value).__name__}: {error}"})


def _encode(message):
    return json.dumps(message, ensure_ascii=False).encode("utf-8") + b"\n"


def _write_sentinels():
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):  # the action may have replaced or closed the stream
            stream.flush()
    for fd in (1, 2):
        with contextlib.suppress(OSError):  # the action closed fd 1 or 2: the parent sees EOF instead
            os.write(fd, SENTINEL)


def _answer(results, answer):
    results.write(answer)
    results.flush()


if __name__ == "__main__":
    main()
