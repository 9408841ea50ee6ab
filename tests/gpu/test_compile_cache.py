"""A compiled model compiles before its first job (gpu/worker.py, warm_up), and its compiled artifacts are kept for the
next container (gpu/compile_cache.py, torch's save_cache_artifacts / load_cache_artifacts).

Two fresh processes, each with an inductor cache directory of its own (as two containers have), warm up the tiny FLUX
pipeline compiled regionally: the first compiles its graphs and saves them; the second loads that file and compiles
none, every graph coming from the cache. About a minute on this CPU (two inductor warm-ups).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gpu import compile_cache

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from functions.core.catalog import SpeedSettings, get_catalog
    from gpu import pipelines, worker
    from gpu.tiny import ensure_tiny_pipeline

    root, cache = Path(sys.argv[1]), Path(sys.argv[2])
    ensure_tiny_pipeline("flux", root)
    speed = SpeedSettings(compile="regional")
    base = get_catalog().model("flux-schnell")
    model = base.model_copy(update={"speed": speed,
                                    "defaults": base.defaults.model_copy(update={"width": 64, "height": 48})})
    pipe = pipelines.load_pipeline("flux", root / "tiny-flux-v1", speed=speed)
    saved = worker.warm_up(model, pipe, "flux", "cpu", cache)
    print("RESULT " + json.dumps({"saved": saved, "report": pipelines.speed_report(pipe)}))
""")


def _container(tmp_path: Path, name: str, tiny: Path, cache: Path) -> dict:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / f"inductor-{name}"),
           "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny), str(cache)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


@pytest.mark.timeout(900)  # two inductor warm-ups in fresh processes: about 90 s idle, several minutes under load
def test_the_second_container_loads_what_the_first_compiled(tmp_path):
    from gpu.speed import cxx_compiler

    if cxx_compiler() is None:
        pytest.fail("inductor needs a C++ compiler on this machine (the Makefile's install provides one)")
    cache, tiny_root = tmp_path / "compile-cache", tmp_path / "tiny"  # the first process builds the tiny FLUX
    first = _container(tmp_path, "a", tiny_root, cache)
    assert first["saved"] is True
    assert "0 graphs from the cache (0.0 MB loaded)" in first["report"]["warm_up"]
    assert first["report"]["warm_up"].startswith("64x48, 2 steps: ")
    files = list(cache.glob(f"*{compile_cache.SUFFIX}"))
    assert len(files) == 1 and files[0].stat().st_size > 0

    second = _container(tmp_path, "b", tiny_root, cache)
    assert second["saved"] is False  # nothing new to keep
    note = second["report"]["warm_up"]
    assert ", 0 compiled" in note and " graphs from the cache" in note and not note.count(" 0 graphs from"), note
    assert list(cache.glob(f"*{compile_cache.SUFFIX}")) == files


def test_the_key_names_what_compiled_code_depends_on():
    shape = {"width": 1024, "height": 1024, "frames": None}
    one = compile_cache.key("flux-schnell@abc", '{"compile":"regional"}', "cpu", shape)
    assert one == compile_cache.key("flux-schnell@abc", '{"compile":"regional"}', "cpu", dict(shape))
    assert len({one,
                compile_cache.key("flux-dev@abc", '{"compile":"regional"}', "cpu", shape),
                compile_cache.key("flux-schnell@abc", '{"compile":"full"}', "cpu", shape),
                compile_cache.key("flux-schnell@abc", '{"compile":"regional"}', "cpu", {**shape, "width": 512})}) == 4


def test_nothing_saved_is_nothing_loaded(tmp_path):
    assert compile_cache.load(tmp_path / "absent.bin") == 0


def test_an_uncompiled_model_warms_up_only_before_a_gpu_snapshot(tmp_path):
    """Before a GPU snapshot every model runs one generation (the kernels it loads are then in the snapshot); without
    one an uncompiled model has nothing to warm up. Neither saves compiled artifacts."""
    from functions.core.catalog import get_catalog
    from gpu import pipelines, worker
    from gpu.tiny import ensure_tiny_pipeline

    ensure_tiny_pipeline("flux", tmp_path)
    base = get_catalog().model("flux-schnell")
    model = base.model_copy(update={"defaults": base.defaults.model_copy(update={"width": 64, "height": 48})})
    pipe = pipelines.load_pipeline("flux", tmp_path / "tiny-flux-v1")
    cache = tmp_path / "compile-cache"
    assert worker.warm_up(model, pipe, "flux", "cpu", cache) is False
    assert "warm_up" not in pipelines.speed_report(pipe)
    assert worker.warm_up(model, pipe, "flux", "cpu", cache, always=True) is False
    assert pipelines.speed_report(pipe)["warm_up"].startswith("64x48, 2 steps: ")
    assert pipelines.speed_report(pipe)["warm_up"].endswith("s; not compiled")
    assert not cache.exists()
