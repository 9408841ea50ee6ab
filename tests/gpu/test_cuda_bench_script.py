"""infra/bench/cuda_full_size.sh: the one prepared run a lent CUDA machine gets (issue 23), checked here first.

That machine comes for a few minutes at a time, so a step that cannot work there is time lost for good. Without
running anything, these tests read the script's own command lines and hold each one to what it will meet:
- every `gpu.bench --full-size` step and the serving step parse with the benchmark's own argument checks (flags,
  variants, batch sizes, catalog ids);
- every speed setting a step times can go on that model's denoiser: a cache kind its class has hooks for (and
  diffusers can run), a regional compile where the class names repeated blocks. A setting that would fall back
  times eager a second time;
- the issue's must-have models come first, eager, and each is timed at batch sizes 1, 2 and 4 (Wan's clip: 1 and 2);
- the wheels the script carries there are the versions this test venv runs.
`make bench-cuda-rehearsal` runs the whole script on this CPU at tiny size (a few minutes: not part of make test).
"""

from __future__ import annotations

import importlib.metadata
import re
import shlex
from pathlib import Path

import diffusers
import pytest

from functions.core.catalog import ModelSpec
from gpu import bench, bench_serving, footprint, full_size, speed

SCRIPT = Path(__file__).resolve().parents[2] / "infra" / "bench" / "cuda_full_size.sh"


def _script() -> str:
    return SCRIPT.read_text().replace("\\\n", " ")  # continuation lines joined


def _steps() -> list[tuple[int, int, list[str]]]:
    """(cap seconds, budget seconds, gpu.bench arguments) of each `step` line."""
    steps = []
    for line in _script().splitlines():
        if match := re.match(r"\s*step (\d+) (\d+) (.+)$", line):
            steps.append((int(match[1]), int(match[2]), shlex.split(match[3])))
    return steps


def _parsed(step_args: list[str], tmp_path: Path):
    argv = [a.replace("$CACHE", str(tmp_path / "cache")) for a in step_args]
    return bench.parse_args(["--full-size", "--jsonl", str(tmp_path / "rows.jsonl"), "--out",
                             str(tmp_path / "benchmarks.md"), "--budget", "10", *argv])


def _denoiser_class(model: ModelSpec) -> type:
    return getattr(diffusers, footprint.component_configs(model.repo)["transformer"]["_class_name"])


def test_the_script_has_steps():
    assert len(_steps()) >= 8


@pytest.mark.parametrize("cap, budget, step_args", _steps(), ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_each_step_parses_and_each_setting_applies_to_its_model(cap, budget, step_args, tmp_path):
    assert budget < cap, "a step's --budget must leave its timeout the time to write the rows"
    args = _parsed(step_args, tmp_path)
    assert args.full_size and args.model_specs
    for model in args.model_specs:
        denoiser = _denoiser_class(model)
        for variant in bench.expand_variants(args.variant or ["eager"]):
            settings = bench.parse_variant(variant, model)
            if settings.cache is not None:
                assert speed.cache_refusal(settings.cache.kind, denoiser) is None, (model.id, variant)
                speed.cache_config(settings.cache, model.family)  # ValueError: no magcache ratios for the family
            if settings.compile == "regional":
                assert getattr(denoiser, "_repeated_blocks", None), (model.id, denoiser.__name__)


def test_a_setting_that_cannot_apply_is_caught(tmp_path):
    """The check above fails where it should: Z-Image's transformer takes no cache hooks, FLUX.2's breaks one."""
    z_image = _parsed(["--models", "z-image-turbo"], tmp_path).model_specs[0]
    klein = _parsed(["--models", "flux2-klein"], tmp_path).model_specs[0]
    assert speed.cache_refusal("first_block", _denoiser_class(z_image)) == "no cache hooks"
    assert "TypeError" in speed.cache_refusal("first_block", _denoiser_class(klein))
    assert speed.cache_refusal("taylorseer", _denoiser_class(klein)) is None
    with pytest.raises(SystemExit):
        _parsed(["--models", "flux2-klein", "--variant", "cache=first_blok"], tmp_path)
    with pytest.raises(SystemExit):
        _parsed(["--models", "flux2-kline"], tmp_path)


def test_every_must_have_is_timed_eager_first_at_each_batch_size(tmp_path):
    """The issue's must-haves come first, eager (what its "done when" needs); the settings after them."""
    eager: dict[str, set[int]] = {}
    first_models: list[str] = []
    for index, (_, _, step_args) in enumerate(_steps()):
        args = _parsed(step_args, tmp_path)
        if index < len(full_size.MUST_HAVE):
            assert args.variant == ["eager"], step_args
            first_models += [m.id for m in args.model_specs]
        if args.variant == ["eager"]:
            for model in args.model_specs:
                eager.setdefault(model.id, set()).update(int(n) for n in args.batch_sizes.split(","))
    assert first_models == list(full_size.MUST_HAVE)
    for model_id in full_size.MUST_HAVE:
        assert eager[model_id] == ({1, 2} if model_id.startswith("wan") else {1, 2, 4}), model_id


def test_the_serving_step_parses(tmp_path):
    match = re.search(r"-m gpu\.bench_serving (.+?) >>", _script())
    assert match, "the serving step is gone"
    argv = [re.sub(r"\$\w+", str(tmp_path), a) for a in shlex.split(match[1])]  # the run's $OUT, $REPORT
    args = bench_serving.parse_args(argv)
    assert [m.id for m in args.model_specs] == ["flux2-klein"]


def test_the_carried_wheels_are_the_versions_the_tests_run():
    match = re.search(r"PACKAGES=\((.+?)\)", _script(), re.DOTALL)
    assert match
    pins = dict(p.split("==") for p in match[1].split())
    assert {"diffusers", "transformers", "torchao", "pydantic"} <= set(pins)
    for name, version in pins.items():
        assert importlib.metadata.version(name) == version, name


@pytest.mark.parametrize("parse", [bench.parse_args, bench_serving.parse_args], ids=["bench", "bench_serving"])
def test_both_benchmarks_print_their_help(parse, capsys):
    with pytest.raises(SystemExit) as exited:
        parse(["--help"])
    assert exited.value.code == 0 and "--jsonl" in capsys.readouterr().out
