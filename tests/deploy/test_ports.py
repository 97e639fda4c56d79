"""The port helpers deploy.sh --local and the test stack share."""

from __future__ import annotations

import socket

from deploy.ports import free_port, port_is_free


def test_a_free_port_is_free_until_something_listens_on_it() -> None:
    port = free_port()
    assert 0 < port < 65536
    assert port_is_free(port)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        assert not port_is_free(port)
