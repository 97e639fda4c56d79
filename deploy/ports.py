"""Local TCP ports on 127.0.0.1: a free one, or whether a given one is free.

deploy.sh --local picks its ports with these (`python -m deploy.tool free-port | port-free PORT`),
and the test stack (local_stack.kafka) imports them from here: deploy/ is product code and must not
depend on the test stack, so the shared helpers live on this side. Standard library only.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PICK = 10000


def free_port() -> int:
    """A port nothing listens on now (the kernel's pick); another process may take it before we do."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether we could bind `port` on 127.0.0.1 now (SO_REUSEADDR: a port in TIME_WAIT counts as free)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def consecutive_free_ports(count: int) -> int:
    """A port p such that p .. p+count-1 are free now, picked below the kernel's ephemeral range.

    A run of ports for processes that bind them later (a consumer's workers serve HTTP_PORT + i):
    the kernel hands ports of its ephemeral range to outgoing connections at any moment, so a
    neighbour of a free_port() pick can be taken by a client socket before the worker binds it.
    """
    top = _ephemeral_low() - count
    for _ in range(200):
        first = random.randrange(LOWEST_PICK, top)
        if all(port_is_free(first + i) for i in range(count)):
            return first
    raise RuntimeError(f"no {count} consecutive free ports between {LOWEST_PICK} and {top}")


def _ephemeral_low() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default
