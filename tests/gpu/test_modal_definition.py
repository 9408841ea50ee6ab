"""What gpu/modal_app.py asks Modal for, read from modal's own objects: each function's image (its Dockerfile
layers, as Modal would build them), each class's resources and autoscaler settings. And the weights download,
run for real (huggingface_hub's snapshot_download) under its image's exact environment, against a Hub stand-in
on loopback: the one image baked HF_HUB_OFFLINE=1 into the download too, so no weights ever reached the Volume.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hub_standin import HubStandIn, Repo

from functions.core.catalog import get_catalog

ROOT = Path(__file__).resolve().parents[2]
# Every GPU class the catalog's models name: each must exist in the app, and each is checked below.
GPU_CLASSES = sorted({m.modal_class for m in get_catalog().models})


def _raw(obj):
    from modal._utils.async_utils import synchronizer

    return synchronizer._translate_in(obj)


def _closure(function) -> dict:
    return dict(zip(function.__code__.co_freevars, [c.cell_contents for c in (function.__closure__ or ())]))


def _dockerfile_commands(image) -> list[str]:
    """Every Dockerfile command of the image and its bases, base first, as Modal's builder writes them."""
    from modal._image import LATEST_IMAGE_BUILDER_VERSION, _Image

    cells = _closure(image._load)
    bases = [v for v in cells.values() if isinstance(v, _Image)]
    bases += [b for v in cells.values() if isinstance(v, dict) for b in v.values() if isinstance(b, _Image)]
    commands = [c for base in bases for c in _dockerfile_commands(base)]
    if cells.get("dockerfile_function"):
        commands += cells["dockerfile_function"](LATEST_IMAGE_BUILDER_VERSION).commands
    return commands


def image_env(image) -> dict[str, str]:
    env = {}
    for command in _dockerfile_commands(_raw(image)):
        if command.startswith("ENV "):
            key, _, value = command[4:].partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env


def image_files(image) -> dict[str, str]:
    """The local files an image adds to its containers (add_local_file), by the path they have there."""
    from modal._image import _Image
    from modal.mount import _Mount, _MountFile

    files, seen, todo = {}, set(), [_raw(image)]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        for value in _closure(current._load).values():
            if isinstance(value, _Image):
                todo.append(value)
            elif isinstance(value, _Mount):
                files.update({str(e.remote_path): str(e.local_file) for e in value._entries or []
                              if isinstance(e, _MountFile)})
    return files


def function_image(function):
    return _raw(function)._spec.image


def class_definition(cls) -> dict:
    """What Modal is asked to create for a class: resources from its spec, the rest from the definition."""
    service = _raw(cls._get_class_service_function())
    cells = _closure(service._load)
    return {"gpu": service._spec.gpus, "memory": service._spec.memory, "image": service._spec.image,
            "max_containers": cells["autoscaler_settings"].max_containers,
            "startup_timeout": cells["startup_timeout"], "timeout": cells["timeout"],
            "retries": cells["retry_policy"].retries if cells.get("retry_policy") else 0,
            "snapshot": cells["enable_memory_snapshot"], "concurrent_inputs": cells["max_concurrent_inputs"],
            "scaledown_window": cells["autoscaler_settings"].scaledown_window}


# ---------------------------------------------------------------- images


def test_the_gpu_classes_run_offline_and_the_download_online():
    from gpu import modal_app

    download_env = image_env(function_image(modal_app.download))
    assert "HF_HUB_OFFLINE" not in download_env
    for name in GPU_CLASSES:
        env = image_env(class_definition(getattr(modal_app, name))["image"])
        assert env["HF_HUB_OFFLINE"] == "1", name  # a job never reaches for the Hub
        assert {k: v for k, v in env.items() if k != "HF_HUB_OFFLINE"} == download_env, name


def _checker_repo() -> dict[str, Repo]:
    """The output safety checker's repo: every download fetches it (every model's jobs run it)."""
    return {get_catalog().moderation.checker.repo: Repo({"config.json": b"{}", "preprocessor_config.json": b"{}",
                                                          "model.safetensors": b"c" * 256})}


def _enhancer_repo() -> dict[str, Repo]:
    """The prompt enhancer's repo: every download fetches it (any model's job may ask for enhance_prompt)."""
    return {get_catalog().prompt_enhancer.repo: Repo({"config.json": b"{}", "tokenizer.json": b"{}",
                                                      "model.safetensors": b"e" * 128,
                                                      "pytorch_model.bin": b"never downloaded"})}


def _hub_repos() -> dict[str, Repo]:
    """sdxl-turbo's repo at its pinned commit, and the background remover's on a branch (resolved by the download);
    the safety checker's too."""
    catalog = get_catalog()
    sdxl, remover = catalog.model("sdxl-turbo"), catalog.background_remover
    from gpu.weights import is_commit

    assert sdxl.pinned and not is_commit(remover.revision)  # both kinds of revision
    return {
        sdxl.repo: Repo({"model_index.json": b'{"_class_name": "StableDiffusionXLPipeline"}',
                         "unet/config.json": b"{}", "unet/diffusion_pytorch_model.safetensors": b"w" * 4096,
                         "unet/diffusion_pytorch_model.bin": b"never downloaded"}, commit=sdxl.revision),
        remover.repo: Repo({"config.json": b"{}", "preprocessor_config.json": b"{}", "model.safetensors": b"s" * 512}),
        **_checker_repo(),
        **_enhancer_repo(),
    }


def _run_download(env: dict[str, str], weights_dir: Path, models: str) -> subprocess.CompletedProcess:
    """`download.local()` in a fresh interpreter whose environment is `env` (and what running Python needs),
    with the Volume's mount point moved to a temporary directory."""
    code = (
        "import json, sys\n"
        "from gpu import modal_app\n"
        "modal_app.WEIGHTS_DIR = sys.argv[1]\n"
        "modal_app.weights = type('Volume', (), {'commit': lambda self: None})()\n"
        "print('RESULT ' + json.dumps(modal_app.download.local(models=sys.argv[2])))\n"
    )
    base = {"PATH": os.environ["PATH"], "HOME": str(weights_dir.parent / "home"), "PYTHONPATH": str(ROOT),
            "HF_HOME": str(weights_dir.parent / "hf-home")}
    return subprocess.run([sys.executable, "-c", code, str(weights_dir), models], env=base | env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)


def test_the_download_fetches_the_pinned_commit_under_its_image_env(tmp_path):
    from gpu import modal_app, weights

    catalog = get_catalog()
    sdxl, remover = catalog.model("sdxl-turbo"), catalog.background_remover
    repos = _hub_repos()
    with HubStandIn(repos) as hub:
        env = image_env(function_image(modal_app.download)) | {"HF_ENDPOINT": hub.endpoint, "HF_TOKEN": "hf_test"}
        done = _run_download(env, tmp_path / "weights", "sdxl-turbo")
        assert done.returncode == 0, done.stderr[-3000:]
        # The pinned commit is fetched as is; the branch is resolved first (model info), then fetched by commit.
        assert f"GET /api/models/{remover.repo}/revision/{remover.revision}" in hub.requests
        assert not [r for r in hub.requests if f"/api/models/{sdxl.repo}/revision/" in r]

    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert set(result) == {"sdxl-turbo", "sdxl-turbo-edit", remover.id, catalog.moderation.checker.id,
                           catalog.prompt_enhancer.id}
    enhancer = catalog.prompt_enhancer
    enhancer_dir = weights.resolve(tmp_path / "weights", enhancer.repo, enhancer.revision)
    assert (enhancer_dir / "model.safetensors").read_bytes() == b"e" * 128
    assert not (enhancer_dir / "pytorch_model.bin").exists()
    checker = catalog.moderation.checker
    assert (weights.resolve(root := tmp_path / "weights", checker.repo, checker.revision)
            / "model.safetensors").read_bytes() == b"c" * 256
    root = tmp_path / "weights"
    loaded = weights.resolve(root, sdxl.repo, sdxl.revision)
    assert loaded == root / sdxl.repo / sdxl.revision
    assert (loaded / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() == b"w" * 4096
    assert not (loaded / "unet" / "diffusion_pytorch_model.bin").exists()  # other formats are not fetched
    commit = repos[remover.repo].commit
    assert weights.resolve(root, remover.repo, remover.revision) == root / remover.repo / commit
    assert f"-> {commit}" in done.stdout


def test_video_models_come_without_the_background_remover(tmp_path):
    from gpu import modal_app

    ltx, remover = get_catalog().model("ltx-video"), get_catalog().background_remover
    repos = {ltx.repo: Repo({"model_index.json": b"{}", "transformer/config.json": b"{}",
                             "ltx-video-2b-v0.9.safetensors": b"a single-file checkpoint, not downloaded"}),
             **_checker_repo(), **_enhancer_repo()}
    with HubStandIn(repos) as hub:
        env = image_env(function_image(modal_app.download)) | {"HF_ENDPOINT": hub.endpoint}
        done = _run_download(env, tmp_path / "weights", "ltx-video")
        assert not [r for r in hub.requests if remover.repo in r]
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.split("RESULT ", 1)[1]) == ["ltx-video", "ltx-video-i2v",
                                                              get_catalog().prompt_enhancer.id,
                                                              get_catalog().moderation.checker.id]
    (commit_dir,) = (tmp_path / "weights" / ltx.repo).glob("[0-9a-f]*")
    assert (commit_dir / "transformer" / "config.json").exists()
    assert not (commit_dir / "ltx-video-2b-v0.9.safetensors").exists()  # outside the catalog's allow_patterns


def test_a_builtin_adapter_is_downloaded_as_its_one_file(tmp_path):
    """qwen-image-lightning: Qwen-Image's files (once, whichever pool on them asks) and, from the adapter's repo,
    only the file it fuses, into that repo's own commit directory, where the worker finds it."""
    from gpu import modal_app, weights, worker

    catalog = get_catalog()
    fast, remover = catalog.model("qwen-image-lightning"), catalog.background_remover
    adapter = fast.adapter
    repos = {fast.repo: Repo({"model_index.json": b"{}", "transformer/config.json": b"{}",
                              "transformer/diffusion_pytorch_model.safetensors": b"q" * 1024}),
             adapter.repo: Repo({adapter.weight_name: b"l" * 256, "Qwen-Image-Lightning-4steps-V2.0.safetensors": b"4",
                                 "Qwen-Image-Edit-Lightning-8steps-V1.0.safetensors": b"e"}),
             remover.repo: Repo({"config.json": b"{}", "model.safetensors": b"s" * 512}), **_checker_repo(),
             **_enhancer_repo()}
    with HubStandIn(repos) as hub:
        env = image_env(function_image(modal_app.download)) | {"HF_ENDPOINT": hub.endpoint}
        done = _run_download(env, tmp_path / "weights", "qwen-image,qwen-image-lightning")
        assert done.returncode == 0, done.stderr[-3000:]
        fetched = [r for r in hub.requests if r.startswith("GET") and "/resolve/" in r]
        assert len([r for r in fetched if "diffusion_pytorch_model" in r]) == 1  # one repo, one download
        assert [r for r in fetched if adapter.repo in r] == [
            r for r in fetched if adapter.weight_name in r and adapter.repo in r]

    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert set(result) == {"qwen-image", "qwen-image-edit", "qwen-image-lightning", "qwen-image-lightning-edit",
                           remover.id, catalog.moderation.checker.id, catalog.prompt_enhancer.id}
    root = tmp_path / "weights"
    lora_dir = weights.resolve(root, adapter.repo, adapter.revision)
    assert sorted(p.name for p in lora_dir.iterdir() if not p.name.startswith(".")) == [adapter.weight_name]
    assert weights.resolve(root, fast.repo, fast.revision) == root / fast.repo / repos[fast.repo].commit
    os.environ["DARKROOM_WEIGHTS"] = str(root)
    try:
        assert worker.adapter_file(fast) == lora_dir / adapter.weight_name
        assert worker.builtin_adapter(catalog.weights_pool(fast.weights)).path == lora_dir / adapter.weight_name
        assert worker.builtin_adapter(catalog.model("qwen-image")) is None
        (lora_dir / adapter.weight_name).unlink()
        with pytest.raises(weights.WeightsMissing, match="--download-weights qwen-image-lightning"):
            worker.adapter_file(fast)
    finally:
        del os.environ["DARKROOM_WEIGHTS"]


def test_on_modal_each_repo_is_fetched_by_its_own_call_and_one_failure_stops_none_of_the_others(monkeypatch,
                                                                                                  capsys):
    """Deployed, `download` fans out one `fetch_weights` call per repo (each with its own time limit); a repo that
    fails is named, after every other has been fetched, and the download fails."""
    from gpu import modal_app

    assert _closure(_raw(modal_app.fetch_weights)._load)["timeout"] == modal_app.FETCH_TIMEOUT_SECONDS
    asked = []

    class FetchCalls:
        @staticmethod
        def starmap(runs, **options):
            assert options == {"return_exceptions": True}
            for repo, revision, patterns, ignore_others in runs:
                asked.append((repo, revision, patterns))
                yield RuntimeError("Hub unreachable") if repo == "Qwen/Qwen-Image" else ("c0ffee", None)

    monkeypatch.setattr(modal_app.modal, "is_local", lambda: False)
    monkeypatch.setattr(modal_app, "fetch_weights", FetchCalls)
    with pytest.raises(RuntimeError, match=r"weights not downloaded: Qwen/Qwen-Image \("):
        modal_app.download.local(models="")
    repos = [(repo, revision) for repo, revision, _ in asked]
    catalog = get_catalog()
    assert sorted(repos) == sorted({(p.repo, p.revision) for p in catalog.weights_pools().values()}
                                   | {(p.adapter.repo, p.adapter.revision) for p in catalog.weights_pools().values()
                                      if p.adapter} | {(catalog.background_remover.repo, catalog.background_remover.revision),
                                                       (catalog.prompt_enhancer.repo, catalog.prompt_enhancer.revision),
                                                       (catalog.moderation.checker.repo,
                                                        catalog.moderation.checker.revision)})
    assert len(repos) == len(set(repos))  # one call per repo: no two containers write one commit directory
    out = capsys.readouterr().out
    assert "Qwen/Qwen-Image@main FAILED: RuntimeError('Hub unreachable')" in out
    assert "black-forest-labs/FLUX.1-schnell@768d12a373ed5cc9ef9a9dea7504dc09fcc14842 -> c0ffee" in out


def test_every_model_downloads_its_pipeline_folders_and_no_single_file_checkpoint():
    """A repo with no allow_patterns came whole: FLUX.1's and SDXL-Turbo's single-file checkpoints (some 24 GB each)
    beside the diffusers folders the pipeline loads. Each pool names its files, and they cover every folder of the
    model's configuration (gpu/model_configs, copied from the repo)."""
    from fnmatch import fnmatch

    from gpu import footprint

    for pool in get_catalog().weights_pools().values():
        assert pool.allow_patterns, f"{pool.repo}: no allow_patterns, so the whole repo would be downloaded"
        assert "model_index.json" in pool.allow_patterns, pool.repo
        for component in footprint.component_configs(pool.repo):
            inside = f"{component}/diffusion_pytorch_model.safetensors"
            assert any(fnmatch(inside, p) for p in pool.allow_patterns), f"{pool.repo}: {component}/ not downloaded"
        assert not any(fnmatch(name, p) for p in pool.allow_patterns
                       for name in ("flux1-schnell.safetensors", "sd_xl_turbo_1.0_fp16.safetensors", "ae.safetensors"))


def test_the_inference_image_env_could_not_have_downloaded(tmp_path):
    """The same download under the GPU classes' env (the one image before) never reaches the stand-in."""
    from gpu import modal_app

    with HubStandIn(_hub_repos()) as hub:
        env = image_env(class_definition(modal_app.SDXLGenerator)["image"]) | {"HF_ENDPOINT": hub.endpoint}
        done = _run_download(env, tmp_path / "weights", "sdxl-turbo")
        assert hub.requests == []
    assert done.returncode != 0 and "weights not downloaded" in done.stderr, done.stderr[-2000:]
    failures = [line for line in done.stdout.splitlines() if "FAILED" in line]  # each repo, and why
    assert failures and all("offline" in f.lower() or "LocalEntryNotFoundError" in f for f in failures), done.stdout


def test_a_second_download_keeps_the_files_a_snapshot_was_taken_with(tmp_path):
    """A branch that moved is fetched into a new directory; the old commit's files stay, and the download says
    a redeploy picks the new one up."""
    from gpu import modal_app, weights

    remover = get_catalog().background_remover
    repos = _hub_repos()
    with HubStandIn(repos) as hub:
        env = image_env(function_image(modal_app.download)) | {"HF_ENDPOINT": hub.endpoint}
        assert _run_download(env, tmp_path / "weights", "sdxl-turbo").returncode == 0
        old = repos[remover.repo].commit
        hub.repos[remover.repo] = Repo({"config.json": b'{"v": 2}', "model.safetensors": b"t" * 512})
        again = _run_download(env, tmp_path / "weights", "sdxl-turbo")
    assert again.returncode == 0, again.stderr[-2000:]
    new = hub.repos[remover.repo].commit
    root = tmp_path / "weights"
    assert (root / remover.repo / old / "model.safetensors").read_bytes() == b"s" * 512  # untouched
    assert weights.resolve(root, remover.repo, remover.revision) == root / remover.repo / new
    assert f"was {old}: redeploy" in again.stdout


def test_missing_weights_are_one_clear_error(tmp_path):
    from gpu import weights

    sdxl = get_catalog().model("sdxl-turbo")
    with pytest.raises(weights.WeightsMissing, match="--download-weights sdxl-turbo"):
        weights.resolve(tmp_path, sdxl.repo, sdxl.revision, model="sdxl-turbo")
    (tmp_path / sdxl.repo / sdxl.revision).mkdir(parents=True)  # files, but no completion marker: cut short
    with pytest.raises(weights.WeightsMissing, match="incomplete"):
        weights.resolve(tmp_path, sdxl.repo, sdxl.revision, model="sdxl-turbo")


# ---------------------------------------------------------------- classes


def _definitions_under(env: dict[str, str]) -> dict:
    """Each class's definition as `modal deploy` would see it, with `env` set when it imports the app."""
    code = (
        "import json\n"
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT / 'tests' / 'gpu')!r})\n"
        "from test_modal_definition import class_definition\n"
        "from gpu import modal_app\n"
        "out = {n: {k: v for k, v in class_definition(getattr(modal_app, n)).items() if k != 'image'}\n"
        f"       for n in {GPU_CLASSES!r}}}\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env, "PYTHONPATH": str(ROOT / "tests")},
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_each_class_reserves_its_models_memory_gpu_and_startup_time():
    from gpu import modal_app

    catalog = get_catalog()
    for name in GPU_CLASSES:
        definition = class_definition(getattr(modal_app, name))
        models = [m for m in catalog.models if m.modal_class == name]
        assert definition["gpu"] == models[0].gpu, name
        # Modal's default is 128 MiB: the pipeline is held in RAM before the snapshot.
        assert definition["memory"] == max(m.memory_gib for m in models) * 1024, name
        assert definition["memory"] >= 16 * 1024, name
        assert definition["startup_timeout"] == catalog.class_startup_timeout(name) >= 300, name
        # Modal stops an input past the class's timeout: the longest any of its models' jobs may run
        assert definition["timeout"] == catalog.class_run_timeout(name) == max(m.run_timeout for m in models), name
        assert definition["snapshot"] is True and definition["retries"] >= 1, name
        assert definition["scaledown_window"] == max(m.scaledown_window for m in models), name


def test_the_container_cap_is_the_deployed_parameter_per_pool():
    """`darkroom deploy` passes the stack's MaxGpuConcurrency to `modal deploy` as DARKROOM_MAX_GPU_CONTAINERS:
    each class instance (one per set of weights) is capped at it. Without it, .spawn() scaled without bound."""
    from gpu import pools

    assert {d["max_containers"] for d in _definitions_under({pools.MAX_CONTAINERS_ENV: "3"}).values()} == {3}
    default = {d["max_containers"] for d in _definitions_under({pools.MAX_CONTAINERS_ENV: ""}).values()}
    assert default == {pools.DEFAULT_MAX_CONTAINERS}


def test_a_pool_that_takes_several_jobs_at_once_makes_its_class_concurrent(tmp_path):
    """catalog Serving.concurrent_inputs becomes @modal.concurrent(max_inputs=...) on the pool's class (Modal sets it
    per class: the largest of its pools'); a class whose pools take one job at a time is not concurrent."""
    import copy

    import yaml

    models = yaml.safe_load((ROOT / "functions/core/catalog.yaml").read_text())["models"]
    pool = [copy.deepcopy(m) for m in models if m["id"] in ("flux-schnell", "flux-schnell-edit")]
    for model in pool:
        model["serving"] = {"concurrent_inputs": 4, "batch_images": 4, "batch_wait_ms": 20}
    extra = tmp_path / "serving.yaml"
    extra.write_text(yaml.safe_dump({"models": pool}))
    definitions = _definitions_under({"DARKROOM_CATALOG_EXTRA": str(extra)})
    assert definitions["FluxGenerator"]["concurrent_inputs"] == 4
    assert {d["concurrent_inputs"] for name, d in definitions.items() if name != "FluxGenerator"} == {None}


def test_the_operators_catalog_additions_reach_the_containers(tmp_path):
    """The classes are defined from DARKROOM_CATALOG_EXTRA where `modal deploy` runs (a pinned revision, a model, its
    speed and serving settings); the containers must read the same file, or a class would load and snapshot another
    catalog's weights than the one its instance was named for (a pinned revision's pool not found at start)."""
    import yaml

    extra = tmp_path / "pins.yaml"
    models = yaml.safe_load((ROOT / "functions/core/catalog.yaml").read_text())["models"]
    pinned = [dict(m, revision="0123456789abcdef0123456789abcdef01234567") for m in models
              if m["id"] in ("sdxl-turbo", "sdxl-turbo-edit")]
    extra.write_text(yaml.safe_dump({"models": pinned}))
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(ROOT / 'tests' / 'gpu')!r})\n"
        "from test_modal_definition import class_definition, function_image, image_env, image_files\n"
        "from gpu import modal_app\n"
        "images = {'download': function_image(modal_app.download),\n"
        "          'SDXLGenerator': class_definition(modal_app.SDXLGenerator)['image']}\n"
        "print(json.dumps({name: [image_env(i).get('DARKROOM_CATALOG_EXTRA'), image_files(i)]\n"
        "                  for name, i in images.items()}))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DARKROOM_CATALOG_EXTRA": str(extra), "PYTHONPATH": str(ROOT / "tests")},
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    from gpu import modal_app

    for name, (env_value, files) in seen.items():
        assert env_value == modal_app.CATALOG_EXTRA_IN_IMAGE, name
        assert files == {modal_app.CATALOG_EXTRA_IN_IMAGE: str(extra)}, name
    # and without the variable, the images add nothing
    from gpu import modal_app

    assert "DARKROOM_CATALOG_EXTRA" not in image_env(function_image(modal_app.download))
    assert image_files(function_image(modal_app.download)) == {}
