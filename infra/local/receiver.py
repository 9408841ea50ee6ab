"""A webhook endpoint on loopback, for the benchmarks and the tests: it records every delivery and answers
as told (200 by default, a script of answers, or a function of the request).

Each recorded request is a dict: `path`, `headers` (names lower-cased), `body` (text) and `at` (epoch
seconds when it arrived).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

# (status, seconds to wait before answering, extra response headers)
Answer = tuple[int, float, dict[str, str]]


class WebhookReceiver:
    def __init__(self, script: list[Answer] | None = None,
                 answer: Callable[[dict[str, Any], list[dict[str, Any]]], Answer] | None = None) -> None:
        """`script`: answers for the first requests, in order, then 200s. `answer(request, so_far)`: decides
        each answer itself (so_far includes the request)."""
        self.script = list(script or [])
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self._arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0)).decode(errors="replace")
                request = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                           "body": body, "at": time.time()}
                with receiver._arrived:
                    receiver.requests.append(request)
                    so_far = list(receiver.requests)
                    scripted = receiver.script.pop(0) if receiver.script else None
                    receiver._arrived.notify_all()
                status, delay, headers = scripted or (receiver.answer(request, so_far) if receiver.answer
                                                      else (200, 0.0, {}))
                time.sleep(delay)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender gave up waiting (a timeout test): nothing left to answer

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = self.base_url + "/hook"

    def ids(self) -> Counter:
        """How many deliveries each webhook-id got."""
        with self._arrived:
            return Counter(r["headers"].get("webhook-id", "") for r in self.requests)

    def wait_until(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float) -> bool:
        """Block until `predicate(requests)` holds (checked on each arrival) or `timeout` passes."""
        with self._arrived:
            return self._arrived.wait_for(lambda: predicate(self.requests), timeout=timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
