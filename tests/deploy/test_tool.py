"""python -m deploy.tool: every documented subcommand is parsed and dispatched, failures are one
sentence with exit status 1 (2 for usage), and a malformed key is named as such, never echoed."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from deploy import tool
from deploy.ports import free_port
from tests.fixtures.tools import REPO_ROOT


def _documented() -> set[str]:
    """The subcommands the module docstring lists (`free-port | port-free PORT` names two)."""
    names: set[str] = set()
    for line in (tool.__doc__ or "").splitlines():
        if line.strip().startswith("python -m deploy.tool "):
            usage = line.split("#")[0].split("python -m deploy.tool ", 1)[1]
            names.update(re.findall(r"(?:^|\|\s*)([a-z][a-z-]+)", usage))
    return names


def _parsed() -> set[str]:
    parser = tool._parser()
    [subparsers] = [a for a in parser._actions if a.dest == "command"]
    return set(subparsers.choices)


def run_tool(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The tool as deploy.sh runs it: a process of its own, from the repository root."""
    environ = {k: v for k, v in os.environ.items() if k != "OW_AUTH"} | env
    return subprocess.run([sys.executable, "-m", "deploy.tool", *args], cwd=REPO_ROOT, env=environ,
                          capture_output=True, text=True, timeout=60)


def test_the_dispatch_table_covers_every_documented_and_parsed_subcommand() -> None:
    documented = _documented()
    assert len(documented) == 17, documented
    assert set(tool.COMMANDS) == documented == _parsed()


@pytest.mark.parametrize("argv", [["no-such-command"], [], ["topics"], ["port-free", "not-a-number"]])
def test_usage_errors_exit_2(argv: list[str]) -> None:
    done = run_tool(*argv)
    assert done.returncode == 2, done.stderr
    assert "usage: python -m deploy.tool" in done.stderr


def test_a_key_without_a_colon_is_named_malformed_not_missing_and_not_echoed() -> None:
    done = run_tool("check-openwhisk", "--apihost", f"http://127.0.0.1:{free_port()}", OW_AUTH="garbage-key-text")
    assert done.returncode == 1
    assert "deploy.sh: error: the OpenWhisk key must be UUID:KEY" in done.stderr
    assert "check --auth" in done.stderr
    assert "no OpenWhisk key" not in done.stderr
    assert "garbage-key-text" not in done.stderr + done.stdout
    assert done.stdout == ""


def test_a_missing_key_still_says_so() -> None:
    done = run_tool("deployed-keys", "--apihost", f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 1
    assert "no OpenWhisk key: pass --auth UUID:KEY" in done.stderr


def test_an_unreachable_host_is_one_sentence_with_exit_1() -> None:
    done = run_tool("check-openwhisk", "--apihost", f"http://127.0.0.1:{free_port()}/", OW_AUTH="uuid:secret")
    assert done.returncode == 1
    [message] = [line for line in done.stderr.splitlines() if line.strip()]
    assert message.startswith("deploy.sh: error: the OpenWhisk API at http://127.0.0.1:")
    assert "is unreachable" in message and "check --apihost" in message
    assert "secret" not in done.stderr


def test_new_key_prints_a_fernet_key() -> None:
    done = run_tool("new-key")
    assert done.returncode == 0
    Fernet(done.stdout.strip().encode())  # raises if it is not one
