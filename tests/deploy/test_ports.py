"""The port helpers deploy.sh --local and the test stack share."""

from __future__ import annotations

import socket

from deploy.ports import EPHEMERAL_RANGE, consecutive_free_ports, free_port, port_is_free


def test_a_free_port_is_free_until_something_listens_on_it() -> None:
    port = free_port()
    assert 0 < port < 65536
    assert port_is_free(port)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        assert not port_is_free(port)


def test_consecutive_free_ports_are_all_free_and_below_the_ephemeral_range() -> None:
    first = consecutive_free_ports(3)
    ephemeral_low = int(EPHEMERAL_RANGE.read_text().split()[0])
    assert first >= 10000 and first + 3 <= ephemeral_low
    assert all(port_is_free(first + i) for i in range(3))
