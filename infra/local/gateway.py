"""A local API Gateway HTTP API: each request becomes a payload-v2 event for the route's function.

Routes come from template.yaml's HttpApi events. Like API Gateway: the most specific route wins, path
parameters are extracted, bodies over 6 MB get 413, binary bodies are base64-encoded, and the function's
response (v2 format, or a bare dict/str) is turned back into HTTP.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from .lambda_runtime import LocalFunction

MAX_PAYLOAD = 6 * 1024 * 1024
_TEXT_TYPES = ("text/", "application/json", "application/x-www-form-urlencoded", "application/xml")


class Route:
    def __init__(self, method: str, path: str, function: LocalFunction) -> None:
        self.method, self.path, self.function = method, path, function
        pattern = re.sub(r"\{(\w+)\+\}", r"(?P<\1>.+)", path)
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self.regex = re.compile(f"^{pattern}$")
        # Literal segments beat parameters, as in API Gateway's route selection.
        self.specificity = (path.count("/") - path.count("{"), len(path))

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


class Gateway:
    def __init__(self, routes: list[Route], *, stage: str = "$default") -> None:
        self.routes = sorted(routes, key=lambda r: r.specificity, reverse=True)
        self.stage = stage
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
        is_text = not body or any(content_type.startswith(t) for t in _TEXT_TYPES)
        headers: dict[str, str] = {}
        for key, value in request.headers.items():
            key = key.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        query: dict[str, str] = {}
        for key in request.args:
            query[key] = ",".join(request.args.getlist(key))
        now = time.time()
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route.route_key,
            "rawPath": request.path,
            "rawQueryString": request.query_string.decode(),
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "local",
                "domainName": request.host,
                "domainPrefix": request.host.split(".")[0],
                "http": {"method": request.method, "path": request.path, "protocol": request.environ.get(
                    "SERVER_PROTOCOL", "HTTP/1.1"), "sourceIp": request.remote_addr or "127.0.0.1",
                         "userAgent": request.headers.get("user-agent", "")},
                "requestId": uuid.uuid4().hex,
                "routeKey": route.route_key,
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
        if params:
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
        if route is None:
            return Response(json.dumps({"message": "Not Found"}), status=404, content_type="application/json")
        try:
            result = route.function.invoke(self.to_event(request, route, params))
        except Exception:  # noqa: BLE001 - what API Gateway answers when the integration fails
            import traceback

            traceback.print_exc()
            return Response(json.dumps({"message": "Internal Server Error"}), status=500,
                            content_type="application/json")
        return self.to_response(result)

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
