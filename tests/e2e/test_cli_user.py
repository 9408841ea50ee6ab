"""The user's `darkroom` commands against the real `darkroom dev` stack, through the public HTTP API only.

The quick start's promise runs as a user runs it: `darkroom generate image "…" --out ./out` as a subprocess,
in a folder with nothing but .darkroom/dev.env. The other commands go through typer's CliRunner (the same
entry point, in-process, faster) and check the `--json` documents and the error lines.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import imageio_ffmpeg
import pytest
import typer
import yaml
from PIL import Image

from infra.cli import app
from infra.client import ApiError, resolve_config

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

DARKROOM = Path(sys.executable).with_name("darkroom")
SMALL = "256x256"


def png(path: Path, color=(200, 40, 40), size=(96, 64)) -> Path:
    Image.new("RGB", size, color).save(path, format="PNG")
    return path


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DARKROOM_URL", "DARKROOM_API_KEY")}
    return env | {"COLUMNS": "200"} | extra


def decode(path: Path) -> Image.Image:
    image = Image.open(io.BytesIO(path.read_bytes()))
    image.load()
    return image


# ---------------------------------------------------------------- the done-when, as a user runs it


def test_make_dev_to_an_image_on_disk(stack, tmp_path):
    """From a folder holding only .darkroom/dev.env: no flags, no env vars, a PNG in ./out."""
    (tmp_path / ".darkroom").mkdir()
    shutil.copy(stack.env_file, tmp_path / ".darkroom" / "dev.env")
    result = subprocess.run([str(DARKROOM), "generate", "image", "a lighthouse at dawn", "--size", SMALL,
                             "--out", "./out"], cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                            timeout=240, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    files = list((tmp_path / "out").iterdir())
    assert len(files) == 1 and files[0].suffix == ".png", files
    image = decode(files[0])
    assert image.format == "PNG" and image.size == (256, 256)
    gen_id = files[0].stem
    assert gen_id in result.stdout and "saved" in result.stdout and "done" in result.stdout, result.stdout
    assert "done" in result.stderr, result.stderr  # the live display ends on its final state


def test_dev_signs_its_outputs_with_a_test_certificate_the_check_command_reads(stack, tmp_path):
    """`darkroom dev` made a test chain in its data directory and said so; the image a user downloads carries a
    C2PA manifest it signed, which `darkroom provenance check` reads (Trusted with the test root as anchor)."""
    root = stack.data_dir / "provenance" / "root.pem"
    assert root.exists() and "made a local test certificate" in stack.log_path.read_text(errors="replace")
    (tmp_path / ".darkroom").mkdir()
    shutil.copy(stack.env_file, tmp_path / ".darkroom" / "dev.env")
    result = subprocess.run([str(DARKROOM), "generate", "image", "a lighthouse at dawn", "--size", SMALL, "--out",
                             "./out"], cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=240,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    (image,) = (tmp_path / "out").iterdir()
    result = subprocess.run([str(DARKROOM), "provenance", "check", str(image), "--json", "--trust-anchors", str(root)],
                            env=clean_env(), capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["manifest"]["validation_state"] == "Trusted", report
    assert report["manifest"]["claim_generator"].startswith("Darkroom") and report["manifest"]["model"]
    assert report["manifest"]["actions"][0]["action"] == "c2pa.created"
    assert not report["watermark"]["found"]  # off unless the deployment (DARKROOM_PROVENANCE_WATERMARK) says so


def test_unreachable_url_is_one_clear_line(tmp_path):
    result = subprocess.run([str(DARKROOM), "models", "--url", "http://127.0.0.1:9", "--api-key", "dr_x"],
                            cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "http://127.0.0.1:9" in lines[0] and "darkroom dev" in lines[0], lines


def test_no_stack_configured_says_how_to_start_one(tmp_path):
    result = subprocess.run([str(DARKROOM), "account"], cwd=tmp_path, env=clean_env(), capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "DARKROOM_URL" in result.stderr and "darkroom dev" in result.stderr, result.stderr


# ---------------------------------------------------------------- generate


def test_generate_json_n2_downloads_both(cli, tmp_path):
    out = tmp_path / "out"
    doc = cli.json("generate", "image", "two foxes", "--size", SMALL, "-n", "2", "--seed", "7", "--out", str(out))
    assert doc["status"] == "success" and doc["type"] == "image", doc
    assert len(doc["outputs"]) == 2 and doc["payload"]["seed"] == 7 and doc["payload"]["n"] == 2
    assert sorted(doc["files"]) == sorted(str(p) for p in out.iterdir()) and len(doc["files"]) == 2
    for path in doc["files"]:
        assert decode(Path(path)).size == (256, 256)


def test_generate_with_style_and_a_local_reference(cli, tmp_path):
    ref = png(tmp_path / "ref.png")
    # A model whose guidance is on by default, so that the preset's negative prompt is used.
    doc = cli.json("generate", "image", "a cat", "--size", SMALL, "--style", "pixel-art", "--ref", str(ref),
                   "--format", "webp", "--seed", "3", "--model", "playground-v2")
    assert doc["status"] == "success", doc
    assert doc["tool"] == "edit-image" and doc["model"].endswith("-edit"), doc
    # The preset was applied by the API: its template around the prompt, its negative prompt added.
    assert doc["payload"]["prompt"].startswith("pixel art of a cat"), doc["payload"]
    assert "blurry" in doc["payload"]["negative_prompt"]
    assert doc["payload"]["image_urls"][0].startswith("upload://up_"), doc["payload"]
    assert doc["output"].split("?")[0].endswith(".webp")


def test_generate_video_out_is_an_mp4(cli, tmp_path):
    doc = cli.json("generate", "video", "waves at dusk", "--size", SMALL, "--duration", "1", "--steps", "2",
                   "--out", str(tmp_path))
    assert doc["status"] == "success" and doc["type"] == "video", doc
    [path] = doc["files"]
    assert path.endswith(".mp4")
    reader = imageio_ffmpeg.read_frames(path)
    meta = next(reader)
    assert tuple(meta["size"]) == (256, 256) and sum(1 for _ in reader) == doc["metadata"]["frames"]


def test_no_wait_then_get_list_and_cancel(cli, tmp_path):
    created = cli.json("generate", "image", "a heron", "--size", SMALL, "--no-wait")
    assert set(created) == {"id", "status", "tool", "createdAt"} and created["status"] == "processing"
    gen_id = created["id"]
    # Without --json, --no-wait prints the id alone (for $(…)); canceled a few milliseconds after its submit,
    # while the first one still holds the worker, so it is still queued.
    plain = cli("generate", "image", "a second heron", "--size", SMALL, "--no-wait")
    [second] = plain.stdout.split()
    canceled = cli.json("cancel", second)
    assert canceled["status"] == "error" and canceled["error"] == "Generation was canceled", canceled

    done = cli.json("get", gen_id, "--watch", "--out", str(tmp_path))
    assert done["id"] == gen_id and done["status"] == "success"
    assert decode(Path(done["files"][0])).format == "PNG"
    assert cli.json("get", gen_id)["output"]
    failed = cli("get", second, "--watch", code=1)  # a canceled generation is not a success
    assert "canceled" in failed.stderr

    listed = cli.json("list", "--status", "success", "--limit", "100")
    assert gen_id in {g["id"] for g in listed["data"]} and second not in {g["id"] for g in listed["data"]}
    assert all(g["status"] == "success" for g in listed["data"])
    assert listed["pagination"]["limit"] == 100
    assert second in {g["id"] for g in cli.json("list", "--status", "canceled")["data"]}
    table = cli("list", "--limit", "5")
    assert gen_id in table.stdout and "of" in table.stdout.splitlines()[-1]

    # A finished generation cannot be canceled: the API's 409 message, exit 1.
    refused = cli("cancel", gen_id, code=1)
    assert "already finished" in refused.stderr and refused.stdout == ""
    doc = cli.json("cancel", "f" * 24, code=1)
    assert doc["error"]["status"] == 404 and "not found" in doc["error"]["message"]


def test_share_then_unshare(cli):
    gen_id = cli.json("generate", "image", "a kite over dunes", "--size", SMALL)["id"]
    link = cli("share", gen_id).stdout.strip()  # without --json: the link alone (for $(…))
    assert f"/shared/media/{gen_id}-" in link
    with httpx.Client(timeout=30) as anonymous:  # the share page needs no key
        assert anonymous.get(link).status_code == 200
        assert cli.json("share", gen_id) == {"id": gen_id, "public": True, "share_url": link}  # same link twice
        off = cli("share", gen_id, "--off")
        assert "private" in off.stdout
        assert cli.json("get", gen_id).get("shareUrl") is None
        assert anonymous.get(link).status_code == 404
        renewed = cli.json("share", gen_id)["share_url"]
        assert renewed != link and anonymous.get(renewed).status_code == 200
    missing = cli.json("share", "f" * 24, code=1)
    assert missing["error"]["status"] == 404 and "not found" in missing["error"]["message"]


# ---------------------------------------------------------------- catalog, files, account


def test_catalog_commands(cli):
    models = {m["id"]: m for m in cli.json("models")}
    assert {"flux-schnell", "playground-v2", "ltx-video"} <= set(models)
    assert models["ltx-video"]["creditsPerSecond"] > 0 and "creditsPerSecond" not in models["flux-schnell"]
    table = cli("models").stdout
    # Names with brackets survive the rich table (not eaten as markup), even where a narrow terminal wraps them.
    assert "FLUX.1" in table and "[schnell]" in table
    assert f"{models['ltx-video']['creditsPerSecond']:g}/s" in table and "/image" in table
    tools = {t["slug"] for t in cli.json("tools")}
    assert {"create-image", "edit-image", "create-video", "image-to-video"} <= tools
    styles = {s["slug"] for s in cli.json("styles")}
    assert {"pixel-art", "cinematic"} <= styles
    assert "pixel-art" in cli("styles").stdout


def test_account(cli, stack):
    doc = cli.json("account")
    assert doc["workspace"]["id"] == "dev" and isinstance(doc["credits"], int | float)
    assert "image:generate" in doc["key"]["scopes"]
    assert "credits" in cli("account").stdout


def test_upload_then_use_the_reference(cli, tmp_path):
    uploaded = cli.json("upload", str(png(tmp_path / "frame.png", color=(10, 200, 90))))
    assert uploaded["reference"].startswith("upload://up_") and uploaded["content_type"] == "image/png"
    reference = cli("upload", str(png(tmp_path / "again.png"))).stdout.strip()
    assert reference.startswith("upload://up_")
    doc = cli.json("generate", "image", "make it glow", "--size", SMALL, "--ref", reference, "--strength", "0.6",
                   "--model", "flux-schnell")
    assert doc["status"] == "success" and doc["tool"] == "edit-image", doc

    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    refused = cli("upload", str(text), code=1)
    assert "Unsupported file type" in refused.stderr
    missing = cli("upload", str(tmp_path / "nope.png"), code=1)
    assert "No such file" in missing.stderr


# ---------------------------------------------------------------- errors carry the API's own words


def test_unknown_model_is_the_apis_message(cli):
    result = cli("generate", "image", "x", "--model", "no-such-model", code=1)
    assert "Unknown model 'no-such-model'" in result.stderr and result.stdout == ""
    doc = cli.json("generate", "image", "x", "--model", "no-such-model", code=1)
    assert doc["error"]["status"] == 400
    assert [e["field"] for e in doc["error"]["errors"]] == ["model"]


def test_bad_field_names_the_field(cli):
    result = cli("generate", "image", "x", "--size", "100x100", code=1)
    assert "input.size" in result.stderr and "256..2048" in result.stderr
    result = cli("generate", "image", "x", "--style", "no-such-style", code=1)
    assert "input.style" in result.stderr and "pixel-art" in result.stderr


def test_bad_key_is_401(cli, stack):
    result = cli.runner.invoke(app, ["account", "--url", stack.url, "--api-key", "dr_not_a_key"])
    assert result.exit_code == 1 and "Invalid API key" in result.stderr, result.stderr
    result = cli.runner.invoke(app, ["models", "--json", "--url", stack.url, "--api-key", "dr_not_a_key"])
    assert result.exit_code == 1 and json.loads(result.stdout)["error"]["status"] == 401


# ---------------------------------------------------------------- where the URL and key come from


def write_env(path: Path, url: str, key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"DARKROOM_URL={url}\nDARKROOM_API_KEY={key}\n")


def test_config_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("DARKROOM_URL", raising=False)
    monkeypatch.delenv("DARKROOM_API_KEY", raising=False)
    data = tmp_path / ".darkroom"
    write_env(data / "deploy.env", "https://abc.lambda-url.us-east-1.on.aws/", "dr_deployed")
    deployed = resolve_config(data_dir=data)
    assert (deployed.url, deployed.api_key) == ("https://abc.lambda-url.us-east-1.on.aws", "dr_deployed")

    write_env(data / "dev.env", "http://127.0.0.1:8000", "dr_local")
    local = resolve_config(data_dir=data)
    assert (local.url, local.api_key) == ("http://127.0.0.1:8000", "dr_local")

    # A URL chosen elsewhere takes the key of the file with that URL, never another host's key.
    chosen = resolve_config(url="https://abc.lambda-url.us-east-1.on.aws", data_dir=data)
    assert chosen.api_key == "dr_deployed"
    with pytest.raises(ApiError, match="No API key for https://elsewhere.example"):
        resolve_config(url="https://elsewhere.example", data_dir=data)

    monkeypatch.setenv("DARKROOM_URL", "https://env.example")
    monkeypatch.setenv("DARKROOM_API_KEY", "dr_env")
    from_env = resolve_config(data_dir=data)
    assert (from_env.url, from_env.api_key) == ("https://env.example", "dr_env")
    flags = resolve_config(url="https://flag.example", api_key="dr_flag", data_dir=data)
    assert (flags.url, flags.api_key, flags.source) == ("https://flag.example", "dr_flag", "--url")


# ---------------------------------------------------------------- the agent skill teaches real commands


def test_skill_md_names_real_commands_and_options():
    text = (Path(__file__).resolve().parents[2] / "SKILL.md").read_text()
    _, front, body = text.split("---", 2)
    meta = yaml.safe_load(front)
    assert meta["name"] == "darkroom" and 20 < len(meta["description"]) <= 1024
    root = typer.main.get_command(app)
    shown = [line.split("#")[0].split() for line in body.splitlines() if line.startswith("darkroom ")]
    assert len(shown) >= 8
    for words in shown:
        command = root.commands[words[1]]  # KeyError: SKILL.md teaches a command that does not exist
        rest = words[2:]
        while hasattr(command, "commands") and rest:  # a group (generate, loras): its subcommand
            command = command.commands[rest.pop(0)]
        options = {opt for param in command.params for opt in param.opts}
        for word in words:
            if word.startswith("-"):
                assert word in options, f"SKILL.md: `{' '.join(words)}`: {word} is not an option of it"
