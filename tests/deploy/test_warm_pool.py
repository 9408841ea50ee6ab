"""Warm pools: N containers of a model kept up on Modal (`darkroom warm`, `darkroom deploy --warm`), off by default.

Modal is a stand-in for `modal.Cls.from_name(...)(model=…).update_autoscaler(...)` that records each call; the
real SDK's signature is checked too, so the stand-in cannot drift from what the deploy calls.
"""

from __future__ import annotations

import inspect

import pytest
from conftest import WORKSPACE_ID, base_env, darkroom

from functions.core.catalog import get_catalog
from infra.deploy import warm_pool
from infra.deploy.config import DeployConfig
from infra.deploy.plan import deploy_steps, parameter_overrides
from infra.prices import PRICES


class RecordingModal:
    def __init__(self) -> None:
        self.calls: list[dict] = []

    def from_name(self, app_name: str, class_name: str, *, environment_name: str | None = None):
        recorder = self

        class Instance:
            def __init__(self, **parameters) -> None:
                self.parameters = parameters

            def update_autoscaler(self, **settings) -> None:
                recorder.calls.append({"app": app_name, "env": environment_name, "class": class_name,
                                       "parameters": self.parameters, "settings": settings})

        return Instance


@pytest.fixture
def recording_modal(monkeypatch) -> RecordingModal:
    import modal

    recording = RecordingModal()
    monkeypatch.setattr(modal.Cls, "from_name", recording.from_name)
    return recording


def test_pools_are_per_catalog_model_on_its_modal_class():
    pools = warm_pool.parse(["flux-schnell=1", "ltx-video=2,sdxl-turbo=0"])
    catalog = get_catalog()
    assert [(p.model, p.containers) for p in pools] == [("flux-schnell", 1), ("ltx-video", 2), ("sdxl-turbo", 0)]
    for pool in pools:
        spec = catalog.model(pool.model)
        assert (pool.modal_class, pool.gpu) == (spec.modal_class, spec.gpu)
    assert warm_pool.parse(["flux-schnell=1", "flux-schnell=3"])[0].containers == 3  # the last one wins
    assert warm_pool.parse([]) == []


@pytest.mark.parametrize("value,message", [
    ("flux-schnell", "MODEL=N"), ("flux-schnell=-1", "MODEL=N"), ("flux-schnell=two", "MODEL=N"),
    ("no-such-model=1", "not a catalog model"), ("flux-schnell=11", "at most 10"),
])
def test_bad_pools_are_refused_naming_the_item(value, message):
    with pytest.raises(ValueError, match=message):
        warm_pool.parse([value])


def test_cost_per_hour_is_the_gpu_and_container_list_price():
    (pool,) = warm_pool.parse(["flux-schnell=2"])
    per_second = (PRICES["modal_gpu_second"][pool.gpu] + warm_pool.CONTAINER_CPU_CORES * PRICES["modal_cpu_core_second"]
                  + warm_pool.CONTAINER_MEMORY_GIB * PRICES["modal_memory_gib_second"])
    assert pool.cost_per_hour == round(2 * 3600 * per_second, 2)
    assert warm_pool.parse(["flux-schnell=0"])[0].cost_per_hour == 0


def test_apply_sets_min_containers_on_each_models_instance(recording_modal):
    warm_pool.apply(warm_pool.parse(["flux-schnell=1", "ltx-video=0"]), app_name="darkroom", environment="prod")
    assert recording_modal.calls == [
        {"app": "darkroom", "env": "prod", "class": "FluxGenerator", "parameters": {"model": "flux-schnell"},
         "settings": {"min_containers": 1}},
        {"app": "darkroom", "env": "prod", "class": "LTXVideoGenerator", "parameters": {"model": "ltx-video"},
         "settings": {"min_containers": 0}},
    ]


def test_the_stand_in_matches_the_installed_modal_sdk():
    import modal

    assert "environment_name" in inspect.signature(modal.Cls.from_name).parameters
    assert "min_containers" in inspect.signature(modal.cls._Obj.update_autoscaler).parameters


def test_deploy_applies_the_pools_right_after_modal_deploy(recording_modal):
    config = DeployConfig(warm=["flux-schnell=1"])
    steps = deploy_steps(config, "us-east-1", parameter_overrides(config, WORKSPACE_ID, ""), None)
    titles = [s.title for s in steps]
    # `modal deploy` resets every pool to the class's static zero: the pools come straight after it.
    assert titles.index("Keep warm containers") == titles.index("Deploy the GPU app on Modal") + 1
    assert "flux-schnell: 1 warm H100 container(s)" in steps[1].shown
    steps[1].run(None, cwd=None)
    assert [c["settings"] for c in recording_modal.calls] == [{"min_containers": 1}]


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
