"""The local moto server's port is held by its parent for the server's whole life: no other program can take
it between the choice and the bind, or while a killed server is started again."""

import errno
import signal
import socket

import httpx
import pytest

from infra.local.moto_server import MotoServer


def _bind_fails(port: int) -> bool:
    with socket.socket() as other:
        # SO_REUSEADDR: only a listening socket blocks the bind, not the TIME_WAIT of a closed connection.
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            other.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def test_the_port_is_reserved_before_start_and_across_a_restart():
    server = MotoServer()
    try:
        assert _bind_fails(server.port), "the port is free for anyone until the server process binds it"
        server.start()
        first = server.process
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        assert _bind_fails(server.port), "a killed server gave its port away"
        endpoint = server.start()
        assert server.process.pid != first.pid
        assert httpx.get(f"{endpoint}/moto-api/", timeout=5).status_code == 200
    finally:
        server.close()
    assert not _bind_fails(server.port), "close() keeps the port"


def test_an_explicit_port_that_is_taken_fails_at_once():
    with socket.create_server(("127.0.0.1", 0)) as taken, pytest.raises(OSError) as raised:
        MotoServer(port=taken.getsockname()[1])
    assert raised.value.errno == errno.EADDRINUSE
