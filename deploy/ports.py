"""Local TCP ports on 127.0.0.1: a free one, or whether a given one is free.

deploy.sh --local picks its ports with these (`python -m deploy.tool free-port | port-free PORT`),
and the test stack (local_stack.kafka) imports them from here: deploy/ is product code and must not
depend on the test stack, so the shared helpers live on this side. Standard library only.
"""

from __future__ import annotations

import socket


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
