"""Runs Python actions for the emulator the way OpenWhisk's python:3.11 runtime does.

`pool.ActionPool` is the whole interface: the emulator gives it an action's code and one
activation and gets back the activation's status, result, logs and timings. Workers are real
subprocesses under the runtime venv built by `venv.ensure_runtime_python()`; `launcher.py` is the
program inside them. See README.md.
"""

from local_stack.action_runtime.pool import ActionCode, ActionPool, RunRequest, RunResult
from local_stack.action_runtime.venv import ensure_runtime_python

__all__ = ["ActionCode", "ActionPool", "RunRequest", "RunResult", "ensure_runtime_python"]
