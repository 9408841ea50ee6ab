"""Loading several families at once from a fresh interpreter: diffusers' lazy first imports are not
thread-safe, so the worker pool and the warm-up must never race on them (a bug the e2e suite caught)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys, threading
from pathlib import Path
from gpu.pipelines import load_pipeline
from gpu.tiny import ensure_tiny_pipeline
cache = Path(sys.argv[1])
errors = []
def go(family):
    try:
        load_pipeline(family, ensure_tiny_pipeline(family, cache))
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=go, args=(f,)) for f in ("flux", "sdxl", "flux-img2img", "ltx")]
for t in threads: t.start()
for t in threads: t.join()
print(errors)
sys.exit(1 if errors else 0)
"""


def test_first_loads_from_several_threads_do_not_race(tmp_path):
    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=repo, capture_output=True,
                            text=True, timeout=240, check=False, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
