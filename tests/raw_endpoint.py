"""An HTTP endpoint on 127.0.0.1 that answers byte by byte as a test scripts it: a head sent at once, then chunks
some time apart, until they run out or the client hangs up. For the answers no HTTP server library sends (headers
trickled a byte at a time, a body that never ends), which only a deadline on a whole request ends."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


@contextmanager
def raw_endpoint(head: bytes, chunks: Iterable[bytes], pause: float) -> Iterator[str]:
    """Yields the endpoint's URL (path /hook). Every connection reads one request and gets `head`, then each of
    `chunks` (shared by all connections) `pause` seconds apart."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                try:
                    conn.sendall(head)
                    for chunk in chunks:
                        if stop.wait(pause):
                            return
                        conn.sendall(chunk)
                except OSError:
                    continue  # the client hung up

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/hook"
    finally:
        stop.set()
        server.close()


def trickled(data: bytes) -> Iterator[bytes]:
    """`data` a byte at a time."""
    return (bytes([b]) for b in data)
