"""functions/core/lora_signatures.json: regenerating it gives exactly the committed file (so it cannot go stale), it
covers every base family that takes LoRAs, and the tiny LoRAs fit the tiny signatures, module for module."""

from __future__ import annotations

import json

import pytest
from safetensors import safe_open

from gpu import lora_signatures
from gpu.pipelines import FAMILIES, lora_families
from gpu.tiny import ensure_tiny_lora


@pytest.fixture(scope="module")
def committed():
    return json.loads(lora_signatures.OUTPUT.read_text())


def test_regenerating_gives_the_committed_file():
    assert lora_signatures.render(lora_signatures.signatures()) == lora_signatures.OUTPUT.read_text(), (
        "functions/core/lora_signatures.json is stale: run `python -m gpu.lora_signatures`")


def test_every_base_family_that_takes_loras_is_there(committed):
    assert committed["_generated_by"] == "python -m gpu.lora_signatures"
    bases = {spec.base for spec in FAMILIES.values()} & lora_families()
    assert set(committed["families"]) == bases
    for family, sig in committed["families"].items():
        assert sig["real"] and sig["tiny"], family
        for dims in (*sig["real"].values(), *sig["tiny"].values()):
            assert len(dims) == 2 and all(isinstance(d, int) and d > 0 for d in dims)
    sdxl = committed["families"]["sdxl"]["real"]
    assert {key.split(".")[0] for key in sdxl} == {"unet", "text_encoder", "text_encoder_2"}
    assert sdxl["unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"] == [640, 640]
    assert sdxl["unet.conv_in"] == [4, 320]  # a Conv2d: [in_channels, out_channels]
    flux = committed["families"]["flux"]["real"]
    assert flux["transformer.transformer_blocks.0.attn.to_q"] == [3072, 3072]
    # Only FLUX.1-dev has a guidance embedder: the signature lists what every FLUX.1 pool has.
    assert not any("guidance_embedder" in key for key in flux)


@pytest.mark.parametrize("family", ["flux", "sdxl", "flux2-klein", "zimage", "qwenimage", "wan", "ltx2"])
def test_tiny_loras_fit_the_tiny_signature(committed, tmp_path_factory, family):
    path = ensure_tiny_lora(family, tmp_path_factory.mktemp("sig-loras"), "a")
    tiny = committed["families"][family]["tiny"]
    with safe_open(str(path), "pt") as f:
        for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
            module, part = key.rsplit(".lora_", 1)
            shape = f.get_slice(key).get_shape()
            fan_in, fan_out = tiny[module]
            assert (shape[1] == fan_in) if part.startswith("A") else (shape[0] == fan_out), key
