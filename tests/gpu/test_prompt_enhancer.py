"""The prompt enhancer (gpu/enhance.py): its tiny twin has the real checkpoint's architecture and chat markup, rewrites
deterministically (greedy decoding) within its bound, its output is cleaned of chat-template artefacts, an unusable
rewrite falls back to the original prompt with a note, and the real model fits beside every weights pool's pipeline
with the footprint's margins (tests/gpu/test_footprint.py's rule, the enhancer added)."""

from __future__ import annotations

import json

import pytest

from functions.core.catalog import get_catalog
from gpu import enhance
from gpu.tiny import ensure_tiny_enhancer

# Qwen/Qwen2.5-1.5B-Instruct's config.json (https://huggingface.co/Qwen/Qwen2.5-1.5B-Instruct/blob/main/config.json):
# the architecture the catalog's parameter count is checked against.
QWEN25_15B_INSTRUCT = {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                       "num_attention_heads": 12, "num_key_value_heads": 2, "vocab_size": 151936,
                       "max_position_embeddings": 32768, "tie_word_embeddings": True, "rope_theta": 1000000.0,
                       "rms_norm_eps": 1e-6}


@pytest.fixture(scope="module")
def enhancer_dir(tmp_path_factory):
    return ensure_tiny_enhancer(tmp_path_factory.mktemp("enhancer"))


@pytest.fixture(scope="module")
def spec():
    spec = get_catalog().prompt_enhancer
    assert spec is not None
    return spec


def test_the_tiny_enhancer_has_the_real_architecture_and_chat_markup(enhancer_dir, spec):
    config = json.loads((enhancer_dir / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForCausalLM"] and config["model_type"] == "qwen2"
    loaded = enhance.load_enhancer(enhancer_dir)
    tokenizer = loaded.tokenizer
    assert tokenizer.eos_token == "<|im_end|>"
    assert len(tokenizer("<|im_start|>user\nhi<|im_end|>", add_special_tokens=False).input_ids) == 2 + len("user\nhi")
    text = tokenizer.apply_chat_template([{"role": "system", "content": spec.instruction},
                                          {"role": "user", "content": "a fox"}], tokenize=False,
                                         add_generation_prompt=True)
    assert text.endswith("<|im_start|>user\na fox<|im_end|>\n<|im_start|>assistant\n")


def test_a_rewrite_is_deterministic_bounded_and_clean(enhancer_dir, spec):
    spec = spec.model_copy(update={"max_new_tokens": 32})  # the real code, a shorter bound: a fast test
    first = enhance.rewrite("a lighthouse at dusk", spec, enhancer_dir)
    assert first.enhanced and first.note is None and first.prompt != "a lighthouse at dusk"
    assert 0 < first.tokens <= spec.max_new_tokens
    enhance.clear_cache()  # a fresh load (another container) gives the same rewrite
    again = enhance.rewrite("a lighthouse at dusk", spec, enhancer_dir)
    assert again == first
    other = enhance.rewrite("a red bicycle", spec, enhancer_dir)
    assert other.prompt != first.prompt
    for rewrite in (first, other):
        assert rewrite.prompt == enhance.clean(rewrite.prompt)  # one clean line, no markup left
        assert "\n" not in rewrite.prompt and "<|" not in rewrite.prompt and "\ufffd" not in rewrite.prompt
    assert first.record(spec.id) == {"model": spec.id, "enhanced": True, "tokens": first.tokens}


@pytest.mark.parametrize(("raw", "clean"), [
    ("<|im_start|>assistant\nA fox in fresh snow, golden light.<|im_end|>", "A fox in fresh snow, golden light."),
    ("Here is the rewritten prompt: \"A fox, cinematic\"", "A fox, cinematic"),
    ("Prompt: “a fox at dawn”\n\n", "a fox at dawn"),
    ("<think>the user wants a fox</think>\nA fox\nin snow", "A fox in snow"),
    ("assistant: a fox\x00 in\ufffd snow", "a fox in snow"),
    ("<|endoftext|>", ""),
    ("  \"\" ", ""),
    ("...", ""),
])
def test_chat_template_artefacts_are_stripped(raw, clean):
    assert enhance.clean(raw) == clean


def test_a_rewrite_is_cut_at_the_prompt_limit():
    out = enhance.clean("word " * 2000)
    assert len(out) <= enhance.MAX_PROMPT_CHARS and out.endswith("word")


def test_an_unusable_rewrite_runs_the_original_prompt_with_a_note(enhancer_dir, spec, monkeypatch):
    monkeypatch.setattr(enhance, "generate", lambda *args: ("<|im_start|>assistant\n\"\"<|im_end|>", 3))
    rewrite = enhance.rewrite("a fox", spec, enhancer_dir)
    assert rewrite.prompt == "a fox" and not rewrite.enhanced
    assert "no usable text" in rewrite.note and "original prompt ran" in rewrite.note
    assert rewrite.record(spec.id)["note"] == rewrite.note


def test_the_real_enhancer_fits_beside_every_pool(spec):
    """The catalog's parameter count is the architecture's, and each weights pool's GPU and RAM hold its pipeline and
    the enhancer together with footprint's margins (20% working memory, 10% RAM)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from gpu import footprint

    with torch.device("meta"):
        model = Qwen2ForCausalLM(Qwen2Config(**QWEN25_15B_INSTRUCT))
    assert spec.repo == "Qwen/Qwen2.5-1.5B-Instruct"
    assert footprint.count_parameters(model) == spec.parameters
    extra = spec.parameters * footprint.BF16_BYTES
    for key, pool in get_catalog().weights_pools().items():
        weights = footprint.pipeline_bytes(pool.repo) + extra
        gpu = footprint.gpu_memory_bytes(pool.gpu)
        assert weights * (1 + footprint.WORKING_MEMORY_MARGIN) <= gpu, (
            f"{key}: {weights / 1e9:.1f} GB with the prompt enhancer, over {pool.gpu}'s {gpu / 1e9:.0f} GB with "
            f"{footprint.WORKING_MEMORY_MARGIN:.0%} working memory: run the enhancer elsewhere or pick a larger GPU")
        assert weights * (1 + footprint.RAM_MARGIN) <= pool.memory_gib * footprint.GIB, key
