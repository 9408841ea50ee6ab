"""`make openapi`: docs/openapi.json, the OpenAPI document the API serves (GET /openapi.json); a test fails when
it is stale (tests/integration/test_openapi.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from functions.api import openapi
from functions.api.app import app


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    Path(args[0] if args else "docs/openapi.json").write_text(openapi.document_json(app), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
