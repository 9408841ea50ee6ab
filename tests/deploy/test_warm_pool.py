"""Warm pools: N containers of a model kept up on Modal (`darkroom warm`, `darkroom deploy --warm`), off by default.

Modal is a stand-in for `modal.Cls.from_name(...)(weights=…).update_autoscaler(...)` and the weights Volume that
records each call, checked against the installed SDK's signatures (tests/modal_standin.py).
"""

from __future__ import annotations

import pytest
from conftest import WORKSPACE_ID, base_env, darkroom
from modal_standin import RecordingModal

from functions.core.catalog import get_catalog
from infra.deploy import warm_pool
from infra.deploy.config import DeployConfig
from infra.deploy.plan import deploy_steps, parameter_overrides
from infra.prices import PRICES


@pytest.fixture
def recording_modal(monkeypatch, tmp_path) -> RecordingModal:
    """The modal SDK stand-in (signatures checked against the installed SDK), with the weights Volume a local
    directory laid out as the download lays it out."""
    from gpu.weights import WEIGHTS_VOLUME

    recording = RecordingModal(volumes={WEIGHTS_VOLUME: tmp_path / "volume"})
    (tmp_path / "volume").mkdir()
    return recording.install(monkeypatch)


def downloaded(recording: RecordingModal, model_id: str) -> None:
    """Lay the model's weights out on the stand-in Volume, complete, as gpu/modal_app.py's download does."""
    from gpu import weights
    from gpu.weights import WEIGHTS_VOLUME

    spec = get_catalog().model(model_id)
    root = recording.volumes[WEIGHTS_VOLUME]
    commit = spec.revision if weights.is_commit(spec.revision) else "c" * 40
    (root / weights.commit_path(spec.repo, commit)).mkdir(parents=True)
    weights.mark_complete(root, spec.repo, spec.revision, commit, [])
    weights.point(root, spec.repo, spec.revision, commit)


def test_pools_are_per_set_of_weights_on_its_modal_class():
    pools = warm_pool.parse(["flux-schnell=1", "ltx-video=2,sdxl-turbo=0"])
    catalog = get_catalog()
    assert [(p.model, p.containers) for p in pools] == [("flux-schnell", 1), ("ltx-video", 2), ("sdxl-turbo", 0)]
    for pool in pools:
        spec = catalog.model(pool.model)
        assert (pool.weights, pool.modal_class, pool.gpu) == (spec.weights, spec.modal_class, spec.gpu)
    # One pool serves a text model and its edit model: naming both is one pool, the last one named wins.
    (pool,) = warm_pool.parse(["flux-schnell=1", "flux-schnell-edit=3"])
    assert (pool.containers, set(pool.served)) == (3, {"flux-schnell", "flux-schnell-edit"})
    assert warm_pool.parse([]) == []


@pytest.mark.parametrize("value,message", [
    ("flux-schnell", "MODEL=N"), ("flux-schnell=-1", "MODEL=N"), ("flux-schnell=two", "MODEL=N"),
    ("no-such-model=1", "not a catalog model"), ("flux-schnell=11", "at most 10"),
])
def test_bad_pools_are_refused_naming_the_item(value, message):
    with pytest.raises(ValueError, match=message):
        warm_pool.parse([value])


def test_cost_per_hour_is_the_gpu_the_class_memory_and_cpu_at_list_price():
    """A warm container is billed for the memory its class reserves (gpu/modal_app.py: the catalog's memory_gib),
    not a guess: FLUX's pipeline is held in RAM before its snapshot."""
    (pool,) = warm_pool.parse(["flux-schnell=2"])
    assert pool.memory_gib == get_catalog().class_memory_gib("FluxGenerator") >= 32
    per_second = (PRICES["modal_gpu_second"][pool.gpu] + warm_pool.CONTAINER_CPU_CORES * PRICES["modal_cpu_core_second"]
                  + pool.memory_gib * PRICES["modal_memory_gib_second"])
    assert pool.cost_per_hour == round(2 * 3600 * per_second, 2)
    assert warm_pool.parse(["flux-schnell=0"])[0].cost_per_hour == 0


def test_apply_sets_min_containers_on_each_weights_instance(recording_modal):
    downloaded(recording_modal, "flux-schnell")
    skipped = warm_pool.apply(warm_pool.parse(["flux-schnell=1", "ltx-video=0"]), app_name="darkroom",
                              environment="prod")
    assert skipped == []
    catalog = get_catalog()
    assert [(c["app"], c["env"], c["class"], c["parameters"], c["settings"]) for c in recording_modal.of("autoscaler")] == [
        ("darkroom", "prod", "FluxGenerator", {"weights": catalog.model("flux-schnell").weights}, {"min_containers": 1}),
        ("darkroom", "prod", "LTXVideoGenerator", {"weights": catalog.model("ltx-video").weights},
         {"min_containers": 0}),
    ]
    assert {c["env"] for c in recording_modal.of("volume")} == {"prod"}


def test_pools_of_weights_not_on_the_volume_are_not_warmed(recording_modal):
    """A warm container of weights the Volume lacks fails its start again and again, billed: released instead."""
    downloaded(recording_modal, "sdxl-turbo")
    pools = warm_pool.parse(["flux-schnell=1", "sdxl-turbo=1", "playground-v2=1"])
    skipped = warm_pool.apply(pools, app_name="darkroom", environment="main")
    assert [p.model for p in skipped] == ["flux-schnell", "playground-v2"]  # playground-v2: a branch, not recorded
    assert {c["parameters"]["weights"]: c["settings"]["min_containers"] for c in recording_modal.of("autoscaler")} == {
        p.weights: (1 if p.model == "sdxl-turbo" else 0) for p in pools}


def test_a_pool_with_a_builtin_adapter_is_warmed_only_with_the_adapter_file_on_the_volume(recording_modal):
    """qwen-image-lightning loads Qwen-Image's files and fuses one file of its adapter's repo: both must be there."""
    from gpu import weights
    from gpu.weights import WEIGHTS_VOLUME

    downloaded(recording_modal, "qwen-image-lightning")  # Qwen-Image's own files
    pools = warm_pool.parse(["qwen-image-lightning=1"])

    def skipped() -> list[str]:
        return [p.model for p in warm_pool.apply(pools, app_name="darkroom", environment="main")]

    assert skipped() == ["qwen-image-lightning"]  # no adapter download at all
    adapter = get_catalog().model("qwen-image-lightning").adapter
    root, commit = recording_modal.volumes[WEIGHTS_VOLUME], "d" * 40
    (root / weights.commit_path(adapter.repo, commit)).mkdir(parents=True)
    weights.mark_complete(root, adapter.repo, adapter.revision, commit, [])
    weights.point(root, adapter.repo, adapter.revision, commit)
    assert skipped() == ["qwen-image-lightning"]  # its repo's commit, but not its file
    (root / weights.commit_path(adapter.repo, commit) / adapter.weight_name).write_bytes(b"lora")
    assert skipped() == []


def test_deploy_applies_the_pools_after_the_download_and_the_app(recording_modal):
    config = DeployConfig(warm=["flux-schnell=1"], download_weights=["flux-schnell"])
    steps = deploy_steps(config, "us-east-1", parameter_overrides(config, WORKSPACE_ID, ""), None)
    titles = [s.title for s in steps]
    # `modal deploy` resets every pool to the class's static zero, and the weights must be there first.
    assert titles.index("Download weights into the Modal Volume (flux-schnell)") < titles.index(
        "Deploy the GPU app on Modal") < titles.index("Keep warm containers") == len(titles) - 1
    warm = steps[-1]
    assert "flux-schnell: 1 warm H100 container(s)" in warm.shown
    downloaded(recording_modal, "flux-schnell")
    warm.run(None, cwd=None)
    assert [c["settings"] for c in recording_modal.of("autoscaler")] == [{"min_containers": 1}]


def test_a_pool_without_weights_fails_its_step_but_not_the_deploy(recording_modal):
    config = DeployConfig(warm=["flux-schnell=1"])
    steps = deploy_steps(config, "us-east-1", parameter_overrides(config, WORKSPACE_ID, ""), None)
    warm = steps[-1]
    assert warm.optional
    with pytest.raises(RuntimeError, match="--download-weights flux-schnell"):
        warm.run(None, cwd=None)


def test_no_pool_by_default():
    config = DeployConfig()
    steps = deploy_steps(config, "us-east-1", parameter_overrides(config, WORKSPACE_ID, ""), None)
    assert "Keep warm containers" not in [s.title for s in steps]


def test_warm_dry_run_prints_the_cost_and_changes_nothing(fake_tools, tmp_path):
    result = darkroom(["warm", "flux-schnell=1", "--dry-run"], base_env(tmp_path, fake_tools), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (pool,) = warm_pool.parse(["flux-schnell=1"])
    assert f"about ${pool.cost_per_hour:.2f}/h" in result.stdout
    assert fake_tools.calls() == []


def test_warm_without_a_modal_token_is_one_clear_line(fake_tools, tmp_path):
    result = darkroom(["warm", "flux-schnell=1"], base_env(tmp_path, fake_tools), tmp_path)
    assert result.returncode == 1
    assert "Could not update the warm pool" in result.stdout and "Traceback" not in result.stdout + result.stderr


def test_deploy_refuses_a_bad_pool_before_anything_runs(fake_tools, tmp_path):
    result = darkroom(["deploy", "--dry-run", "--warm", "nope=1"], base_env(tmp_path, fake_tools), tmp_path)
    assert result.returncode == 2 and "not a catalog model" in result.stdout + result.stderr
    assert fake_tools.calls() == []
