"""Builds every artifact and rewrites the size table in docs/artifacts.md (`make artifacts-doc`)."""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from infra.build import artifacts, contents

BEGIN = "<!-- sizes:begin (make artifacts-doc) -->"
END = "<!-- sizes:end -->"
MB = 1_000_000


def _largest(site: Path, count: int = 3) -> str:
    sizes = {}
    for name, info in contents.distributions(site).items():
        top_level = info / "top_level.txt"
        names = top_level.read_text().split() if top_level.exists() else [name.replace("-", "_")]
        sizes[name] = sum(contents.unzipped_size(site / n) if (site / n).is_dir() else 0 for n in names)
    biggest = sorted(sizes.items(), key=lambda item: -item[1])[:count]
    return ", ".join(f"{name} {size / MB:.1f}" for name, size in biggest)


def table() -> str:
    template = artifacts.load_template()
    rows = ["| Artifact | Built for | Unzipped (MB) | Distributions | Largest (MB) |",
            "|---|---|---:|---:|---|"]
    with tempfile.TemporaryDirectory(prefix="darkroom-artifacts-") as scratch:
        for logical_id in [*artifacts.function_ids(template), artifacts.SDK_LAYER]:
            art = artifacts.artifact(logical_id, template)
            root = artifacts.build(art, Path(scratch) / logical_id)
            site = root / "python" if art.kind == "layer" else root
            rows.append(f"| {logical_id} | {art.target.runtime}, {art.target.architecture} "
                        f"| {contents.unzipped_size(root) / MB:.1f} | {len(contents.distributions(site))} "
                        f"| {_largest(site)} |")
    return "\n".join(rows)


def main(doc: str) -> None:
    path = Path(doc)
    text = path.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{doc}: no {BEGIN} ... {END} block to rewrite")
    path.write_text(pattern.sub(lambda _: f"{BEGIN}\n{table()}\n{END}", text))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/artifacts.md")
