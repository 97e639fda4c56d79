"""Sets the few keys podman needs here in its system-wide containers.conf, keeping everything else.

Why these keys: crun (podman's default runtime on Debian) fails on these machines' hybrid cgroup
layout and on rlimits, so the runtime is runc; and podman's default ulimits cannot be applied inside
this sandbox, so none are set. The file is TOML but is edited as text, line by line, so an
operator's comments and other settings survive (tomllib only reads, and checks the result).

    python3 -m local_stack.container.conf [/etc/containers/containers.conf]
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PATH = Path("/etc/containers/containers.conf")


@dataclass(frozen=True)
class Setting:
    """One `key = value` line under a `[table]`; `value` is already TOML text."""

    table: str
    key: str
    value: str


REQUIRED = (
    Setting("containers", "default_ulimits", "[]"),
    Setting("engine", "runtime", '"runc"'),
)

_TABLE = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-]+)\s*\]\s*(#.*)?$")


def _key_pattern(key: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*{re.escape(key)}\s*=")


def _table_span(lines: list[str], table: str) -> tuple[int, int] | None:
    """(header index, index after the table's last line) of `[table]`, or None when absent."""
    start = None
    for i, line in enumerate(lines):
        match = _TABLE.match(line)
        if not match:
            continue
        if start is not None:
            return start, i
        if match.group(1) == table:
            start = i
    return None if start is None else (start, len(lines))


def _apply(lines: list[str], setting: Setting) -> list[str]:
    wanted = f"{setting.key} = {setting.value}"
    span = _table_span(lines, setting.table)
    if span is None:
        tail = [""] if lines and lines[-1].strip() else []
        return [*lines, *tail, f"[{setting.table}]", wanted]
    start, end = span
    pattern = _key_pattern(setting.key)
    for i in range(start + 1, end):
        if pattern.match(lines[i]):
            return [*lines[:i], wanted, *lines[i + 1:]]
    return [*lines[:start + 1], wanted, *lines[start + 1:]]


def ensure(text: str, settings: tuple[Setting, ...] = REQUIRED) -> str:
    """`text` with every setting present under its table (replacing a different value in place)."""
    lines = text.splitlines()
    for setting in settings:
        lines = _apply(lines, setting)
    result = "\n".join(lines) + "\n"
    parsed = tomllib.loads(result)  # raises if the edit produced invalid TOML
    for setting in settings:
        expected = tomllib.loads(f"v = {setting.value}")["v"]
        if parsed.get(setting.table, {}).get(setting.key) != expected:
            raise ValueError(f"{setting.table}.{setting.key} did not take the value {setting.value}")
    return result


def ensure_file(path: Path = DEFAULT_PATH) -> bool:
    """Writes the settings into `path` (created if absent); True when the file changed."""
    before = path.read_text() if path.exists() else ""
    after = ensure(before)
    if after == before:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(after)
    return True


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else DEFAULT_PATH
    changed = ensure_file(path)
    print(f"{path}: {'updated' if changed else 'already set'} "
          f"({', '.join(f'{s.table}.{s.key} = {s.value}' for s in REQUIRED)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
