"""The local front doors: each request becomes a payload-v2 event for the route's function.

Two hosts, as deployed (docs/sync-calls.md):
- FUNCTION_URL, a Lambda function URL: events with the sentinel routeKey "$default" and no path
  parameters, every path goes to the URL's function, and an invocation is cut at the function's timeout
  from template.yaml;
- HTTP_API, an API Gateway HTTP API: routes from template.yaml's HttpApi events (the most specific wins,
  path parameters extracted; an event without a path is the catch-all $default route, which the template's
  api uses), and every integration is cut at 30 s with API Gateway's own answer,
  503 {"message":"Service Unavailable"}.

Both: bodies over 6 MB get 413, binary bodies are base64-encoded, a function response over Lambda's 6 MB
is the platform's error, and the function's response (v2 format, or a bare dict/str) is turned back into
HTTP. Requests are served on threads, so a long synchronous wait never blocks other calls.
"""

from __future__ import annotations

import base64
import contextvars
import json
import re
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from .lambda_runtime import LocalFunction
from .template import DEFAULT_ROUTE

MAX_PAYLOAD = 6 * 1024 * 1024
# Lambda's limit on a buffered (synchronous) invocation's response, behind either host.
MAX_RESPONSE = 6 * 1024 * 1024
# A test-only fault (honoured only when DARKROOM_LOCAL_FAULTS is set): the first request carrying this
# header value runs normally but its response is lost, answered as the platform's 502, as a broken
# connection between the platform and the client would be. Later requests with the same value pass.
FAULT_HEADER = "x-darkroom-local-fault"
_TEXT_TYPES = ("text/", "application/json", "application/x-www-form-urlencoded", "application/xml")


def _is_utf8(body: bytes) -> bool:
    """A "text" body that is not UTF-8 travels base64-encoded, as API Gateway sends bytes it cannot pass as text."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class Route:
    def __init__(self, method: str, path: str, function: LocalFunction) -> None:
        self.method, self.path, self.function = method, path, function
        if path == DEFAULT_ROUTE:
            # The catch-all: any method, any path, chosen only when no other route matches.
            self.regex, self.specificity = re.compile(".*"), (-1, 0)
            return
        pattern = re.sub(r"\{(\w+)\+\}", r"(?P<\1>.+)", path)
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self.regex = re.compile(f"^{pattern}$")
        # Literal segments beat parameters, as in API Gateway's route selection.
        self.specificity = (path.count("/") - path.count("{"), len(path))

    @property
    def route_key(self) -> str:
        # The $default route's events carry routeKey "$default" (API Gateway HTTP API, payload 2.0).
        return DEFAULT_ROUTE if self.path == DEFAULT_ROUTE else f"{self.method} {self.path}"


@dataclass(frozen=True)
class Host:
    """What differs between the two deployed front doors."""

    name: str
    # API Gateway cuts every integration here (seconds); None: only the function's own timeout applies.
    integration_timeout: float | None
    # Routes decide which function runs and give the event its routeKey; a function URL has none.
    routed: bool
    # The platform's answers when the integration fails or is cut.
    failure: tuple[int, str]
    timeout: tuple[int, str]


# Function URLs answer a failed invocation (an error, a timeout, an oversized response) with 502.
FUNCTION_URL = Host("function_url", None, routed=False, failure=(502, '{"Message":"Internal Server Error"}'),
                    timeout=(502, '{"Message":"Internal Server Error"}'))
# HTTP API: 500 for a failed integration, 503 when its 30 s integration timeout cuts the call.
HTTP_API = Host("http_api", 30.0, routed=True, failure=(500, '{"message":"Internal Server Error"}'),
                timeout=(503, '{"message":"Service Unavailable"}'))


class Gateway:
    def __init__(self, routes: list[Route], *, stage: str = "$default", host: Host = FUNCTION_URL,
                 target: LocalFunction | None = None, faults: bool = False) -> None:
        """`routes` from template.yaml. `target`, for a function URL, is the function every other path
        reaches; without one, unmatched paths get the gateway's 404 (in-process test clients). The default
        host is the function URL, the one the README hands out."""
        self.routes = sorted(routes, key=lambda r: r.specificity, reverse=True)
        self.stage = stage
        self.host = host
        self.target = target
        self.faults = faults
        self._faulted: set[str] = set()
        self._lock = threading.Lock()
        self._server = None
        self._thread: threading.Thread | None = None

    # ---- HTTP -> event -> HTTP
    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        for route in self.routes:
            if route.method in (method, "ANY"):
                found = route.regex.match(path)
                if found:
                    return route, found.groupdict()
        return None, {}

    def to_event(self, request: Request, route: Route, params: dict[str, str]) -> dict[str, Any]:
        body = request.get_data()
        content_type = request.headers.get("content-type", "")
        is_text = not body or (any(content_type.startswith(t) for t in _TEXT_TYPES) and _is_utf8(body))
        headers: dict[str, str] = {}
        for key, value in request.headers.items():
            key = key.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        query: dict[str, str] = {}
        for key in request.args:
            query[key] = ",".join(request.args.getlist(key))
        now = time.time()
        # A function URL has no routes: its events carry the sentinel "$default", as AWS documents.
        route_key = route.route_key if self.host.routed else "$default"
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": request.path,
            "rawQueryString": request.query_string.decode(),
            "headers": headers,
            "requestContext": {
                # A function URL with AuthType NONE reports the caller's account as "anonymous".
                "accountId": "123456789012" if self.host.routed else "anonymous",
                "apiId": "local",
                "domainName": request.host,
                "domainPrefix": request.host.split(".")[0],
                "http": {"method": request.method, "path": request.path, "protocol": request.environ.get(
                    "SERVER_PROTOCOL", "HTTP/1.1"), "sourceIp": request.remote_addr or "127.0.0.1",
                         "userAgent": request.headers.get("user-agent", "")},
                "requestId": uuid.uuid4().hex,
                "routeKey": route_key,
                "stage": self.stage,
                "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "timeEpoch": int(now * 1000),
            },
            "isBase64Encoded": not is_text,
        }
        if request.cookies:
            event["cookies"] = [f"{k}={v}" for k, v in request.cookies.items()]
        if query:
            event["queryStringParameters"] = query
        if params and self.host.routed:
            event["pathParameters"] = params
        if body:
            event["body"] = body.decode() if is_text else base64.b64encode(body).decode()
        return event

    @staticmethod
    def to_response(result: Any) -> Response:
        if not isinstance(result, dict) or "statusCode" not in result:
            # Payload v2 lets a function return a bare value: API Gateway sends it as JSON with 200.
            body = result if isinstance(result, str) else json.dumps(result)
            return Response(body, status=200, content_type="application/json")
        body = result.get("body") or ""
        data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
        response = Response(data, status=int(result["statusCode"]))
        for key, value in (result.get("headers") or {}).items():
            response.headers[key] = str(value)
        for key, values in (result.get("multiValueHeaders") or {}).items():
            for value in values:
                response.headers.add(key, str(value))
        for cookie in result.get("cookies") or []:
            response.headers.add("set-cookie", cookie)
        return response

    def wsgi(self, environ: dict, start_response: Any) -> Any:
        request = Request(environ)
        response = self.handle(request)
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        if (request.content_length or 0) > MAX_PAYLOAD:
            return Response(json.dumps({"message": "Request Entity Too Large"}), status=413,
                            content_type="application/json")
        route, params = self.match(request.method, request.path)
        if route is None and self.target is not None:
            route = Route(request.method, request.path, self.target)  # a function URL sends every path on
        if route is None:
            return Response(json.dumps({"message": "Not Found"}), status=404, content_type="application/json")
        return self.invoke(route, self.to_event(request, route, params), fault=request.headers.get(FAULT_HEADER))

    def invoke(self, route: Route, event: dict[str, Any], *, fault: str | None = None) -> Response:
        """Run the function on its own thread and wait as the platform would: up to the function's timeout,
        and no longer than the host's integration timeout. A cut invocation runs on, as in AWS."""
        limit = float(route.function.spec.timeout)
        cut = self.host.timeout
        if self.host.integration_timeout is not None and self.host.integration_timeout < limit:
            limit = self.host.integration_timeout
        else:
            cut = self.host.failure  # the function's own timeout is a failed invocation
        outcome: dict[str, Any] = {}

        def call() -> None:
            try:
                outcome["result"] = route.function.invoke(event)
            except Exception:  # noqa: BLE001 - what the platform answers when the integration fails
                traceback.print_exc()
                outcome["error"] = True

        # The caller's context variables go with the call, as if it ran on the request's own thread.
        context = contextvars.copy_context()
        worker = threading.Thread(target=context.run, args=(call,), daemon=True,
                                  name=f"invoke-{route.function.spec.logical_id}")
        worker.start()
        worker.join(limit)
        if worker.is_alive():
            return self._platform(cut)
        if "error" in outcome:
            return self._platform(self.host.failure)
        if len(json.dumps(outcome["result"], default=str)) > MAX_RESPONSE:
            return self._platform(self.host.failure)  # Lambda refuses a response over 6 MB
        if fault and self.faults and self._first(fault):
            return self._platform(self.host.failure)
        return self.to_response(outcome["result"])

    def _first(self, fault: str) -> bool:
        with self._lock:
            seen = fault in self._faulted
            self._faulted.add(fault)
        return not seen

    @staticmethod
    def _platform(answer: tuple[int, str]) -> Response:
        status, body = answer
        return Response(body, status=status, content_type="application/json")

    # ---- server
    def start(self, host: str, port: int) -> int:
        self._server = make_server(host, port, self.wsgi, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="gateway", daemon=True)
        self._thread.start()
        return self._server.server_port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
