"""Command line: run the emulator until SIGTERM or SIGINT.

    python -m local_stack.emulator --host 127.0.0.1 --port 3233 --runtime-python PATH
        [--namespaces-file F] [--fires-per-minute N --invocations-per-minute N
        --concurrent-invocations N] [--max-payload-bytes N] [--max-blocking-wait-ms N]
        [--fires-log-max N] [--access-log] [--state-file PATH]

Prints `emulator listening on http://HOST:PORT` once it accepts requests (`--port 0` picks a
free port and prints it). With `--state-file` the entities (packages, actions, triggers, rules)
are loaded from PATH on start and written back to it after every change (persistence.py).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import socket
import sys
from dataclasses import replace
from pathlib import Path

from aiohttp import web

from .app import build_app, build_emulator
from .config import DEFAULT_MAX_PAYLOAD_BYTES, EmulatorConfig, ThrottleLimits
from .identities import IdentityError, default_specs, load_specs
from .persistence import StateFile, StateFileError


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m local_stack.emulator", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3233)
    p.add_argument("--runtime-python", default=sys.executable,
                   help="python that runs actions (the python:3.11 runtime venv)")
    p.add_argument("--namespaces-file", type=Path)
    defaults = ThrottleLimits()
    p.add_argument("--fires-per-minute", type=int, default=defaults.fires_per_minute)
    p.add_argument("--invocations-per-minute", type=int, default=defaults.invocations_per_minute)
    p.add_argument("--concurrent-invocations", type=int, default=defaults.concurrent_invocations)
    p.add_argument("--max-payload-bytes", type=int, default=DEFAULT_MAX_PAYLOAD_BYTES)
    p.add_argument("--max-blocking-wait-ms", type=int, default=60_000)
    p.add_argument("--fires-log-max", type=int, default=200_000)
    p.add_argument("--max-workers-per-action", type=int, default=4)
    p.add_argument("--public-url", help="base URL actions see as __OW_API_HOST (default http://HOST:PORT)")
    p.add_argument("--access-log", action="store_true", help="log every request (slow)")
    p.add_argument("--log-level", default="WARNING")
    p.add_argument("--state-file", type=Path,
                   help="keep the entities in this file across restarts (loaded on start, saved on change)")
    return p.parse_args(argv)


def _absolute(program: str) -> str:
    """A path for the workers to run from any directory; a bare name is looked up on PATH.
    (No symlink resolution: a venv's python must keep its own path to find its packages.)"""
    if os.sep not in program:
        return shutil.which(program) or program
    return os.path.abspath(program)


def config_from(args: argparse.Namespace, port: int) -> EmulatorConfig:
    return EmulatorConfig(
        host=args.host, port=port, runtime_python=_absolute(args.runtime_python), namespaces_file=args.namespaces_file,
        default_limits=ThrottleLimits(args.fires_per_minute, args.invocations_per_minute,
                                      args.concurrent_invocations),
        max_payload_bytes=args.max_payload_bytes, max_blocking_wait_ms=args.max_blocking_wait_ms,
        fires_log_max=args.fires_log_max, max_workers_per_action=args.max_workers_per_action,
        access_log=args.access_log, public_url=args.public_url)


async def serve(args: argparse.Namespace) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    config = config_from(args, sock.getsockname()[1])
    specs = default_specs()
    if config.namespaces_file is not None:
        specs += load_specs(config.namespaces_file)
    emulator = build_emulator(config, specs)
    state = StateFile(args.state_file, emulator.store) if args.state_file is not None else None
    if state is not None:
        count = state.load()
        print(f"emulator state: {count} entities loaded from {args.state_file}", flush=True)
    app = build_app(emulator)
    runner = web.AppRunner(app, access_log=logging.getLogger("aiohttp.access") if config.access_log else None,
                           handle_signals=False)
    await runner.setup()
    await web.SockSite(runner, sock, backlog=1024).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"emulator listening on {replace(config, public_url=None).api_host}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        if state is not None:
            state.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(args))
    except (IdentityError, StateFileError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
