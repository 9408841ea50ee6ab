"""A profile of the api function's hot path (warm submits and status reads), with pyinstrument.

    python -m infra.bench.profile [--requests 50]

The api handler is invoked on this thread with the gateway's own events (pyinstrument follows one thread),
against a moto server, the key cached as in a warm Lambda. Writes docs/profiles/hot-path.txt (the HTML
view, ~4 MB, only with --html).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pyinstrument import Profiler
from werkzeug.test import EnvironBuilder

from .harness import Harness, image_body, in_process_stack

PROFILES = Path(__file__).resolve().parents[2] / "docs" / "profiles"


def _invoke(harness: Harness, method: str, path: str, body: dict | None = None) -> dict:
    request = EnvironBuilder(path=path, method=method, json=body, headers=harness.headers).get_request()
    route, params = harness.gateway.match(method, request.path)
    assert route is not None, path
    return route.function.invoke(harness.gateway.to_event(request, route, params))


def profile(requests: int = 50, out_dir: Path = PROFILES, *, html: bool = False) -> list[Path]:
    with in_process_stack(env={"DARKROOM_KEY_CACHE_TTL_SECONDS": "3600"}) as harness:
        first = _invoke(harness, "POST", "/api/run", image_body())  # warm: clients, key cache, catalog
        job_path = f"/api/generations/{json.loads(first['body'])['id']}"
        _invoke(harness, "GET", job_path)
        profiler = Profiler(interval=0.0005)
        profiler.start()
        for i in range(requests):
            _invoke(harness, "POST", "/api/run", image_body(i))
            _invoke(harness, "GET", job_path)
        profiler.stop()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "hot-path.txt"]
    written[0].write_text(profiler.output_text(unicode=True, color=False, show_all=False))
    if html:
        written.append(out_dir / "hot-path.html")
        written[1].write_text(profiler.output_html())
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--html", action="store_true", help="also write pyinstrument's HTML view")
    args = parser.parse_args(argv)
    for path in profile(args.requests, html=args.html):
        print(path)


if __name__ == "__main__":
    main()
