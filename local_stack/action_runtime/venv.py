"""The Python that action workers run under: a venv shaped like the python:3.11 runtime image.

Actions must see the packages of the real runtime image (kafka-python 2.0.2, requests 2.32.2, ...),
not the project's dev venv, or a test could pass here and fail on a real OpenWhisk. So the worker
processes run under their own venv, built once from `local_stack/runtime/requirements.txt` with
`python3.11 -m venv` and pip. A hash of the requirements file is stored inside the venv as the last
build step, so an interrupted build or a changed file rebuilds it; a file lock keeps two processes
(the emulator and a test session, say) from building it at the same time.

    python -m local_stack.action_runtime.venv     # builds if needed, prints the venv's python
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO_ROOT / "local_stack" / "runtime" / "requirements.txt"
VENV_NAME = "runtime-venv"
STAMP_NAME = ".requirements.sha256"
# Bump to force a rebuild when the way the venv is built changes.
BUILD_FORMAT = "1"


class RuntimeVenvError(RuntimeError):
    """The runtime venv could not be built; the message says what failed."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("LOCAL_STACK_CACHE", REPO_ROOT / ".cache"))


def requirements_digest(requirements: Path = REQUIREMENTS) -> str:
    digest = hashlib.sha256(BUILD_FORMAT.encode())
    digest.update(requirements.read_bytes())
    return digest.hexdigest()


def ensure_runtime_python(cache_dir: Path | None = None) -> str:
    """Returns the runtime venv's python, building the venv first when missing or stale."""
    venv_dir = (cache_dir or default_cache_dir()) / VENV_NAME
    venv_dir.parent.mkdir(parents=True, exist_ok=True)
    wanted = requirements_digest()
    python = venv_dir / "bin" / "python"
    if _is_current(venv_dir, wanted):
        return str(python)
    with open(venv_dir.parent / f"{VENV_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _is_current(venv_dir, wanted):  # another process may have built it meanwhile
            _build(venv_dir, wanted)
    return str(python)


def _is_current(venv_dir: Path, wanted: str) -> bool:
    stamp = venv_dir / STAMP_NAME
    return (venv_dir / "bin" / "python").exists() and stamp.exists() and stamp.read_text().strip() == wanted


def _base_python() -> str:
    found = shutil.which("python3.11")
    if found:
        return found
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    raise RuntimeVenvError("python3.11 is not on PATH; the python:3.11 action runtime needs it")


def _build(venv_dir: Path, digest: str) -> None:
    _progress(f"building the action runtime venv in {venv_dir} (once; takes a minute)")
    if venv_dir.exists():
        shutil.rmtree(venv_dir)
    _run([_base_python(), "-m", "venv", str(venv_dir)])
    python = str(venv_dir / "bin" / "python")
    _progress(f"installing {REQUIREMENTS.relative_to(REPO_ROOT)}")
    _run([python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q",
          "-r", str(REQUIREMENTS)])
    (venv_dir / STAMP_NAME).write_text(digest + "\n")
    _progress("action runtime venv ready")


def _run(command: list[str]) -> None:
    # pip's own output goes to stderr too, so stdout carries only the path printed by main().
    completed = subprocess.run(command, stdout=sys.stderr, stderr=sys.stderr, check=False)
    if completed.returncode != 0:
        raise RuntimeVenvError(f"{' '.join(command)} failed with exit code {completed.returncode}")


def _progress(message: str) -> None:
    print(f"[runtime-venv] {message}", file=sys.stderr, flush=True)


def main() -> int:
    try:
        print(ensure_runtime_python())
    except RuntimeVenvError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
