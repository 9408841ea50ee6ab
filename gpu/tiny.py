"""Tiny random-weight pipelines, built offline, for tests and the local stack.

They are saved with `save_pretrained` (safetensors + model_index.json), so `gpu.pipelines.load_pipeline`
loads them through exactly the same `from_pretrained` path as real weights. Only the sizes are tiny:
the VAEs still downsample as the real ones do (8x for images; 32x spatially and 8x in time for LTX) and
the pipelines take the same arguments as the real models.

Derived families share their base family's directory, as the real ones share a repo: `sdxl-img2img`
and `sdxl-inpaint` read `tiny-sdxl-v1`, `ltx-i2v` reads `tiny-ltx-v1`, `zimage-inpaint` reads `tiny-zimage-v1`,
`wan-i2v` reads `tiny-wan-v1`.

The background remover (gpu/background.py) has a tiny twin too: the real checkpoint's architecture
(MobileViT DeepLabV3) at a 64 px input, saved with its image processor, loaded by the same Auto classes; so has
the output safety checker (gpu/moderation.py): a ViT image classifier at 32 px, labels normal and nsfw.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpu.model_io import MODEL_IO_LOCK

if TYPE_CHECKING:
    from diffusers import AutoencoderKL, DiffusionPipeline

# Bump when a config below changes, so stale caches are not reused.
TINY_VERSION = "v1"

_CLIP_MAX_LENGTH = 77  # CLIP's position embeddings; SDXL pads prompts to tokenizer.model_max_length.
_T5_MAX_LENGTH = 512  # FluxPipeline's largest max_sequence_length.


def ensure_tiny_pipeline(family: str, cache_dir: Path) -> Path:
    """Return `cache_dir/tiny-<base family>-v1`, building it first if it is missing."""
    from gpu.pipelines import family_spec

    base = family_spec(family).base
    with MODEL_IO_LOCK:  # building imports diffusers' model classes: one thread at a time
        return build_tiny_pipeline(base, Path(cache_dir) / f"tiny-{base}-{TINY_VERSION}")


def build_tiny_pipeline(family: str, dest: Path, *, seed: int = 0) -> Path:
    """Build a tiny random pipeline of `family` and save it at `dest`; a no-op if it is already there.

    Safe against concurrent builders (pytest-xdist workers, threads): each one writes a private temp dir
    next to `dest` and renames it into place, so `dest` is either absent or complete.
    """
    builders = _builders()
    if family not in builders:
        raise ValueError(f"no tiny pipeline for family {family!r}; known: {sorted(builders)}")
    return _save_once(Path(dest), "model_index.json", builders[family], seed)


def _builders() -> dict[str, Any]:
    """Each base family's tiny builder (it returns the pipeline, in memory, from the global RNG)."""
    return {"sdxl": _build_sdxl, "flux": _build_flux, "ltx": _build_ltx, "zimage": _build_zimage,
            "flux2-klein": _build_flux2_klein, "wan": _build_wan_ti2v, "wan-flf2v": _build_wan_flf2v,
            "ltx2": _build_ltx2, "qwenimage": _build_qwen_image, "wan-a14b": _build_wan_a14b,
            "wan-a14b-i2v": _build_wan_a14b_i2v, "flux2-dev": _build_flux2_dev,
            "qwenimage-edit-plus": _build_qwen_image_edit_plus}


def build_tiny(family: str) -> DiffusionPipeline:
    """The tiny pipeline of `family`'s base family, in memory (seed 0, as ensure_tiny_pipeline saves it), without
    touching the caller's RNG."""
    import torch

    from gpu.pipelines import family_spec

    base = family_spec(family).base
    builders = _builders()
    if base not in builders:
        raise ValueError(f"no tiny pipeline for family {base!r}; known: {sorted(builders)}")
    with MODEL_IO_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return builders[base]()


# --- tiny LoRAs ------------------------------------------------------------------------------------

# The attention projections every tiny denoiser has (PEFT matches them as module-name suffixes).
TINY_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


def build_tiny_lora(family: str, dest: Path, *, seed: int, rank: int = 4) -> Path:
    """A random LoRA for the tiny pipeline of `family`'s base family, saved at `dest` (a .safetensors file) in
    diffusers' format by the pipeline class's own `save_lora_weights` (keys `transformer.<module>.lora_A.weight`,
    or `unet.` for SDXL), on the denoiser's attention projections. Its A and B are both random (unlike PEFT's
    default zero B), scaled so that at scale 1 it changes the output visibly; alpha is the rank (scaling 1).
    Written atomically: `dest` is either absent or complete."""
    import torch


    with MODEL_IO_LOCK:
        from peft import LoraConfig
        from peft.utils import get_peft_model_state_dict

    dest = Path(dest)
    pipe = build_tiny(family)
    component = "unet" if getattr(pipe, "unet", None) is not None else "transformer"
    denoiser = getattr(pipe, component)
    with MODEL_IO_LOCK:
        denoiser.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=TINY_LORA_TARGETS,
                                        init_lora_weights=False))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in denoiser.named_parameters():
            # A [rank, in] and B [out, rank], each normal over the square root of its fan-in: the LoRA's output is
            # about as large as its input, as the projection's own is.
            if ".lora_A." in name or ".lora_B." in name:
                param.copy_(torch.randn(param.shape, generator=generator) / param.shape[1] ** 0.5)
    layers = get_peft_model_state_dict(denoiser)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        type(pipe).save_lora_weights(tmp, weight_name="lora.safetensors", **{f"{component}_lora_layers": layers})
        os.replace(tmp / "lora.safetensors", dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def ensure_tiny_lora(family: str, cache_dir: Path, name: str, *, rank: int = 4) -> Path:
    """`cache_dir/tiny-lora-<base family>-<name>-v1.safetensors`, built first if missing; its seed comes from
    `name`, so two names give two different LoRAs and one name always the same."""
    import zlib

    from gpu.pipelines import family_spec

    base = family_spec(family).base
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"a tiny LoRA's name is letters, digits, '.', '_' and '-', got {name!r}")
    dest = Path(cache_dir) / f"tiny-lora-{base}-{name}-r{rank}-{TINY_VERSION}.safetensors"
    if dest.exists():
        return dest
    return build_tiny_lora(base, dest, seed=zlib.crc32(name.encode()), rank=rank)


def ensure_tiny_segmenter(cache_dir: Path) -> Path:
    """Return `cache_dir/tiny-segmenter-v1` (the background remover), building it first if it is missing."""

    with MODEL_IO_LOCK:
        return _save_once(Path(cache_dir) / f"tiny-segmenter-{TINY_VERSION}", "preprocessor_config.json",
                          _build_segmenter, 0)


def ensure_tiny_classifier(cache_dir: Path) -> Path:
    """Return `cache_dir/tiny-safety-checker-v1` (the output safety checker), building it first if it is missing."""

    with MODEL_IO_LOCK:
        return _save_once(Path(cache_dir) / f"tiny-safety-checker-{TINY_VERSION}", "preprocessor_config.json",
                          _build_classifier, 0)


def ensure_tiny_enhancer(cache_dir: Path) -> Path:
    """Return `cache_dir/tiny-prompt-enhancer-v1` (the prompt enhancer, gpu/enhance.py), building it first if missing."""

    with MODEL_IO_LOCK:
        return _save_once(Path(cache_dir) / f"tiny-prompt-enhancer-{TINY_VERSION}", "tokenizer_config.json",
                          _build_enhancer, 0)


def _save_once(dest: Path, marker: str, build: Any, seed: int) -> Path:
    """Build with `build()` and `save_pretrained` at `dest`, unless `dest/marker` exists (then a no-op)."""
    if (dest / marker).exists():
        return dest

    import torch

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        # Private RNG state: building must not perturb (or depend on) the caller's global seed.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            built = build()
        for part in built if isinstance(built, tuple) else (built,):
            part.save_pretrained(tmp)  # safetensors: the default for models and diffusers pipelines
        try:
            os.replace(tmp, dest)
        except OSError:
            # Another builder won the race (rename onto a non-empty dir fails); theirs is complete.
            if not (dest / marker).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


# --- tokenizers, built in code: nothing is downloaded ---------------------------------------------


def _clip_tokenizer() -> Any:
    """Byte-level BPE tokenizer with every byte as a token (and its `</w>` word-final form), no merges."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    chars = sorted(ByteLevel.alphabet())  # the 256 chars of CLIP's bytes_to_unicode
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=_CLIP_MAX_LENGTH)


def _t5_config(tokenizer: Any) -> Any:
    from transformers import T5Config

    return T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )


def _t5_tokenizer() -> Any:
    """Unigram tokenizer over printable ASCII, laid out like T5's (<pad>=0, </s>=1, <unk>=2)."""
    from transformers import T5Tokenizer

    pieces = ["<pad>", "</s>", "<unk>", "▁"] + [chr(c) for c in range(33, 127)]
    pieces += ["▁" + chr(c) for c in range(33, 127)]
    vocab = [(p, 0.0 if i < 3 else -float(len(p))) for i, p in enumerate(pieces)]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=_T5_MAX_LENGTH)


_QWEN_MAX_LENGTH = 512  # ZImagePipeline's max_sequence_length
# Qwen's chat markup, as the real tokenizers' chat templates write it (the pipelines format prompts with it).
_QWEN_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _qwen_tokenizer() -> Any:
    """Byte-level BPE tokenizer laid out like Qwen's (every byte a token, no merges), with its chat markup."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import Qwen2Tokenizer

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    vocab = {tok: i for i, tok in enumerate(sorted(ByteLevel.alphabet()) + special)}
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[], model_max_length=_QWEN_MAX_LENGTH,
                               pad_token="<|endoftext|>", eos_token="<|im_end|>")
    tokenizer.chat_template = _QWEN_CHAT_TEMPLATE
    return tokenizer


def _qwen3_config(tokenizer: Any, layers: int) -> Any:
    from transformers import Qwen3Config

    return Qwen3Config(
        hidden_size=16, intermediate_size=16, num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2,
        head_dim=8, vocab_size=len(tokenizer), max_position_embeddings=_QWEN_MAX_LENGTH,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )


def _qwen3_encoder(tokenizer: Any) -> Any:
    """A two-layer Qwen3 (Z-Image's text encoder); the pipeline reads its second-to-last hidden state."""
    from transformers import Qwen3Model

    return Qwen3Model(_qwen3_config(tokenizer, layers=2))


def _clip_config(tokenizer: Any) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=_CLIP_MAX_LENGTH,
        projection_dim=32,
        hidden_act="gelu",
        # The pooled output is taken at the first eos token, so the ids must match the tokenizer's.
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _vae(latent_channels: int, **kwargs: Any) -> AutoencoderKL:
    from diffusers import AutoencoderKL

    # Four blocks, three downsamplings: vae_scale_factor == 8, like the real VAEs.
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        block_out_channels=[8, 8, 16, 16],
        layers_per_block=1,
        norm_num_groups=4,
        latent_channels=latent_channels,
        sample_size=256,
        **kwargs,
    )


# --- pipelines -------------------------------------------------------------------------------------


def _build_sdxl() -> DiffusionPipeline:
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = _clip_tokenizer()
    text_config = _clip_config(tokenizer)
    unet = UNet2DConditionModel(
        sample_size=32,  # latent size: the pipeline's default image is 32 * 8 = 256 px
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 8 + 32,  # 6 time ids * 8 + text_encoder_2 projection_dim
        cross_attention_dim=64,  # hidden sizes of both text encoders, concatenated
        norm_num_groups=8,
    )
    # As sdxl-turbo ships it: Euler with trailing spacing, good for few steps.
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="trailing",
    )
    return StableDiffusionXLPipeline(
        vae=_vae(4),
        text_encoder=CLIPTextModel(text_config),
        text_encoder_2=CLIPTextModelWithProjection(text_config),
        tokenizer=tokenizer,
        tokenizer_2=_clip_tokenizer(),
        unet=unet,
        scheduler=scheduler,
    )


def _build_flux() -> DiffusionPipeline:
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel, T5EncoderModel

    tokenizer = _clip_tokenizer()
    tokenizer_2 = _t5_tokenizer()
    t5_config = _t5_config(tokenizer_2)
    latent_channels = 4
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=latent_channels * 4,  # latents are packed in 2x2 patches
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=t5_config.d_model,
        pooled_projection_dim=32,  # CLIP hidden size
        axes_dims_rope=[4, 4, 8],  # sums to attention_head_dim
    )
    return FluxPipeline(
        # Flux's VAE has no quant convs and shifts/scales latents.
        vae=_vae(
            latent_channels,
            use_quant_conv=False,
            use_post_quant_conv=False,
            shift_factor=0.0609,
            scaling_factor=1.5035,
        ),
        text_encoder=CLIPTextModel(_clip_config(tokenizer)),
        tokenizer=tokenizer,
        text_encoder_2=T5EncoderModel(t5_config),
        tokenizer_2=tokenizer_2,
        transformer=transformer,
        # As flux-schnell ships it: static shift, no resolution-dependent shifting.
        scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False),
    )


def _build_ltx() -> DiffusionPipeline:
    """After diffusers' own LTX test components, but with the real VAE's compression (32x32 pixels and
    8 frames per latent), so sizes and frame counts follow the same rules as LTX-Video."""
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )
    from transformers import T5EncoderModel

    tokenizer = _t5_tokenizer()
    t5_config = _t5_config(tokenizer)
    latent_channels = 8
    vae = AutoencoderKLLTXVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=latent_channels,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        # 4x4 patches, then three 2x downsamplings in space and time: 32x spatial, 8x temporal.
        patch_size=4,
        patch_size_t=1,
        spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True, False),
        decoder_inject_noise=(False, False, False, False, False),
        upsample_residual=(False, False, False, False),
        upsample_factor=(1, 1, 1, 1),
        timestep_conditioning=False,
        encoder_causal=True,
        decoder_causal=False,
    )
    transformer = LTXVideoTransformer3DModel(
        in_channels=latent_channels,
        out_channels=latent_channels,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=4,
        attention_head_dim=8,
        cross_attention_dim=32,
        num_layers=1,
        caption_channels=t5_config.d_model,
    )
    # As LTX-Video ships it: resolution-dependent shift.
    scheduler = FlowMatchEulerDiscreteScheduler(
        base_image_seq_len=1024,
        max_image_seq_len=4096,
        base_shift=0.95,
        max_shift=2.05,
        shift=1.0,
        shift_terminal=0.1,
        use_dynamic_shifting=True,
    )
    return LTXPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=T5EncoderModel(t5_config),
        tokenizer=tokenizer,
        transformer=transformer,
    )


def _build_zimage() -> DiffusionPipeline:
    """As Z-Image-Turbo ships it, small: a single-stream DiT with refiner layers, a Qwen3 text encoder, FLUX's
    VAE layout (no quant convs, shifted and scaled latents) and a static flow-matching shift of 3."""
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel

    tokenizer = _qwen_tokenizer()
    text_encoder = _qwen3_encoder(tokenizer)
    latent_channels = 4
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,), all_f_patch_size=(1,), in_channels=latent_channels, dim=32, n_layers=1,
        n_refiner_layers=1, n_heads=2, n_kv_heads=2, norm_eps=1e-5, qk_norm=True,
        cap_feat_dim=text_encoder.config.hidden_size, rope_theta=256.0, t_scale=1000.0,
        axes_dims=[8, 4, 4],  # sums to dim / n_heads
        axes_lens=[256, 64, 64],
    )
    return ZImagePipeline(
        transformer=transformer,
        vae=_vae(latent_channels, use_quant_conv=False, use_post_quant_conv=False,
                 shift_factor=0.1159, scaling_factor=0.3611),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
    )


def _build_flux2_klein() -> DiffusionPipeline:
    """As FLUX.2 [klein] 4B ships it, small: a Qwen3 causal LM whose hidden states 9, 18 and 27 are the prompt
    embedding (so it keeps 28 layers, each tiny), the FLUX.2 DiT (double then single blocks, no guidance
    embedding: distilled), FLUX.2's VAE and a flow-matching scheduler."""
    from diffusers import FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline, Flux2Transformer2DModel
    from transformers import Qwen3ForCausalLM

    tokenizer = _qwen_tokenizer()
    text_encoder = Qwen3ForCausalLM(_qwen3_config(tokenizer, layers=28))
    latent_channels = 4
    vae = _flux2_vae(latent_channels)
    transformer = Flux2Transformer2DModel(
        patch_size=1, in_channels=latent_channels * 4,  # 2x2 patches of latents, packed
        num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
        joint_attention_dim=3 * text_encoder.config.hidden_size,  # three hidden states, concatenated
        timestep_guidance_channels=32, axes_dims_rope=(4, 4, 4, 4), guidance_embeds=False,
    )
    # The pipeline computes its own shift (mu) from the image size and steps, for a scheduler that shifts by it.
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, time_shift_type="exponential")
    return Flux2KleinPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder,
                              tokenizer=tokenizer, transformer=transformer, is_distilled=True)


def _flux2_vae(latent_channels: int) -> Any:
    """FLUX.2's VAE (8x, latents patchified 2x2 and normalized by batch-norm statistics), small: real 32 channels."""
    from diffusers import AutoencoderKLFlux2

    return AutoencoderKLFlux2(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 8, 16, 16), layers_per_block=1,
        latent_channels=latent_channels, norm_num_groups=4, sample_size=256,
        use_quant_conv=False, use_post_quant_conv=False,
    )


# ---- FLUX.2 [dev] --------------------------------------------------------------------------------------------

# Mistral-Small-3.1's (Tekken) first special tokens, at their real ids ([IMG] is 10).
_MISTRAL_SPECIAL = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
                    "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CALLS]", "[IMG]", "<pad>", "[IMG_BREAK]", "[IMG_END]",
                    "[PREFIX]", "[MIDDLE]", "[SUFFIX]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[TOOL_CONTENT]"]
_MISTRAL_HIDDEN = 16  # real 5120
# Flux2Pipeline stacks the text encoder's hidden states 10, 20 and 30 (text_encoder_out_layers): 30 layers (real 40).
_MISTRAL_LAYERS = 30
# Mistral's chat markup, reduced to what Flux2Pipeline sends: a system turn, then a user turn whose content is a
# list of text items.
_MISTRAL_CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- set ns = namespace(text='') -%}"
    "{%- if message['content'] is string -%}{%- set ns.text = message['content'] -%}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'text' -%}{%- set ns.text = ns.text + item['text'] -%}"
    "{%- elif item['type'] == 'image' -%}{%- set ns.text = ns.text + '[IMG]' -%}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- if message['role'] == 'system' -%}[SYSTEM_PROMPT]{{ ns.text }}[/SYSTEM_PROMPT]"
    "{%- elif message['role'] == 'user' -%}[INST]{{ ns.text }}[/INST]"
    "{%- else -%}{{ ns.text }}{{ eos_token }}{%- endif -%}"
    "{%- endfor -%}"
)


def _mistral_tokenizer() -> Any:
    """Byte-level BPE (as Tekken) over the specials above and the 256 byte symbols, with the chat template. The real
    `tokenizer/` is a PixtralProcessor, which transformers 5.24 builds only with torchvision (the image has it, the
    CPU test venv cannot: gpu/requirements-image.txt); Flux2Pipeline calls only its `apply_chat_template` on text,
    which a plain tokenizer has too."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(_MISTRAL_SPECIAL + sorted(ByteLevel.alphabet()))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], fuse_unk=False, byte_fallback=False))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                        unk_token="<unk>", pad_token="<pad>", model_max_length=131072)
    tokenizer.add_special_tokens({"additional_special_tokens": _MISTRAL_SPECIAL[3:]})
    tokenizer.chat_template = _MISTRAL_CHAT_TEMPLATE
    return tokenizer


def _mistral3_encoder(tokenizer: Any) -> Any:
    """Mistral3ForConditionalGeneration (Mistral-Small-3.1's class): tiny Mistral layers and a 1-layer Pixtral vision
    tower, which text encoding never runs."""
    from transformers import Mistral3Config, Mistral3ForConditionalGeneration

    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}
    config = Mistral3Config(
        text_config={"model_type": "mistral", "vocab_size": len(tokenizer), "hidden_size": _MISTRAL_HIDDEN,
                     "intermediate_size": 16, "num_hidden_layers": _MISTRAL_LAYERS, "num_attention_heads": 2,
                     "num_key_value_heads": 1, "head_dim": 8, "max_position_embeddings": 2048,
                     "rope_theta": 1000000000.0, "sliding_window": None, **ids},
        vision_config={"model_type": "pixtral", "hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "head_dim": 8, "image_size": 64, "patch_size": 8},
        image_token_index=tokenizer.convert_tokens_to_ids("[IMG]"), spatial_merge_size=2, **ids,
    )
    return Mistral3ForConditionalGeneration(config).eval()


def _build_flux2_dev() -> DiffusionPipeline:
    """As black-forest-labs/FLUX.2-dev ships it, small: the FLUX.2 DiT with a guidance embedder (guidance-distilled:
    `guidance_scale` is an input, one pass a step; real: 8 double and 48 single blocks, 48 heads x 128), FLUX.2's VAE,
    the Mistral3 text encoder read at hidden states 10, 20 and 30, and FLUX.2's scheduler. Sizes: multiples of 16."""
    from diffusers import FlowMatchEulerDiscreteScheduler, Flux2Pipeline, Flux2Transformer2DModel

    tokenizer = _mistral_tokenizer()
    latent_channels = 4
    transformer = Flux2Transformer2DModel(
        patch_size=1, in_channels=latent_channels * 4, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=3 * _MISTRAL_HIDDEN, timestep_guidance_channels=32,
        axes_dims_rope=(4, 4, 4, 4), guidance_embeds=True,
    )
    # The pipeline passes its own sigmas and an empirical shift (mu), for a scheduler that shifts exponentially.
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
        base_image_seq_len=256, max_image_seq_len=4096, time_shift_type="exponential",
    )
    return Flux2Pipeline(scheduler=scheduler, vae=_flux2_vae(latent_channels), text_encoder=_mistral3_encoder(tokenizer),
                         tokenizer=tokenizer, transformer=transformer)


def _umt5_encoder(tokenizer: Any) -> Any:
    """UMT5 (Wan's text encoder is umt5-xxl's encoder), two tiny layers. Built directly, a model keeps dropout on
    (from_pretrained returns it in eval mode), hence eval()."""
    from transformers import UMT5Config, UMT5EncoderModel

    config = UMT5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                        relative_attention_num_buckets=8, feed_forward_proj="gated-gelu",
                        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                        decoder_start_token_id=tokenizer.pad_token_id)
    return UMT5EncoderModel(config).eval()


def _wan_scheduler(flow_shift: float) -> Any:
    """The scheduler the Wan diffusers repos ship: flow-matching UniPC (TI2V-5B shift 5; FLF2V 16)."""
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000,
                                   flow_shift=flow_shift)


def _wan_transformer(**kwargs: Any) -> Any:
    from diffusers import WanTransformer3DModel

    # 2 heads x 12 (rope splits a head's 12 dims 4/4/4 over frames, height and width); (1, 2, 2) patches as the
    # real models. Real TI2V-5B: 24 heads x 128, 30 layers.
    base = {"patch_size": (1, 2, 2), "num_attention_heads": 2, "attention_head_dim": 12, "text_dim": 32, "freq_dim": 256,
                "ffn_dim": 32, "num_layers": 2, "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "eps": 1e-6,
                "rope_max_seq_len": 1024}
    return WanTransformer3DModel(**{**base, **kwargs})


def _build_wan_ti2v() -> DiffusionPipeline:
    """As Wan 2.2 TI2V-5B ships it, small: one WanPipeline with expand_timesteps (text-to-video, and image-to-video
    from the same weights with no image encoder), the 48-channel residual VAE that patchifies 2x2 pixels then
    halves three times (16x spatially, 4x in time), so sizes are multiples of 32 and frame counts 4k+1."""
    from diffusers import AutoencoderKLWan, WanPipeline

    tokenizer = _t5_tokenizer()
    text_encoder = _umt5_encoder(tokenizer)
    vae = AutoencoderKLWan(base_dim=4, decoder_base_dim=8, z_dim=48, in_channels=12, out_channels=12,
                           is_residual=True, patch_size=2, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True], scale_factor_spatial=16, scale_factor_temporal=4,
                           latents_mean=[0.0] * 48, latents_std=[1.0] * 48)
    transformer = _wan_transformer(in_channels=48, out_channels=48, text_dim=text_encoder.config.d_model)
    return WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=_wan_scheduler(5.0),
                       transformer=transformer, transformer_2=None, boundary_ratio=None, expand_timesteps=True)


_WAN_CLIP_SIZE = 32  # real: 224 (ViT-H/14: 257 tokens per image)
_WAN_CLIP_PATCH = 8


def _build_wan_flf2v() -> DiffusionPipeline:
    """As Wan 2.1 FLF2V-14B ships it, small: WanImageToVideoPipeline with a CLIP vision encoder that sees both the
    first and the last frame (its DiT's learned position embedding spans the two images' tokens), the 16-channel
    Wan 2.1 VAE (8x spatially, 4x in time) and a DiT taking noise, mask and condition (16 + 4 + 16 channels)."""
    from diffusers import WanImageToVideoPipeline
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    tokenizer = _t5_tokenizer()
    text_encoder = _umt5_encoder(tokenizer)
    clip = CLIPVisionConfig(hidden_size=8, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
                            image_size=_WAN_CLIP_SIZE, patch_size=_WAN_CLIP_PATCH, projection_dim=8)
    tokens = (_WAN_CLIP_SIZE // _WAN_CLIP_PATCH) ** 2 + 1
    transformer = _wan_transformer(in_channels=36, out_channels=16, text_dim=text_encoder.config.d_model,
                                   image_dim=clip.hidden_size, added_kv_proj_dim=24, pos_embed_seq_len=2 * tokens)
    vae = _wan21_vae()
    processor = CLIPImageProcessor(size={"shortest_edge": _WAN_CLIP_SIZE},
                                   crop_size={"height": _WAN_CLIP_SIZE, "width": _WAN_CLIP_SIZE})
    return WanImageToVideoPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
                                   scheduler=_wan_scheduler(16.0), image_processor=processor,
                                   image_encoder=CLIPVisionModel(clip).eval(), transformer=transformer)


# ---- LTX-2: sizes (the real model's in comments)

_LTX2_GEMMA_HIDDEN = 32  # caption_channels
_LTX2_GEMMA_LAYERS = 2  # connectors' text_proj_in_factor = layers + 1 (every hidden state is stacked)
_LTX2_VIDEO_LATENT_CHANNELS = 8  # real: 128
_LTX2_AUDIO_LATENT_CHANNELS = 2  # real: 8
_LTX2_MEL_BINS = 16  # real: 64
# The audio VAE keeps its latents_mean/std with `base_channels` entries, applied to packed audio tokens of
# latent_channels * mel_bins / 4 features, so the two must be equal (real: 128 = 8 * 64 / 4).
_LTX2_AUDIO_BASE_CHANNELS = _LTX2_AUDIO_LATENT_CHANNELS * _LTX2_MEL_BINS // 4
_LTX2_AUDIO_SAMPLE_RATE = 16000  # audio VAE (mel) rate, as the real one
_LTX2_MEL_HOP = 160
_LTX2_VOCODER_RATE = 24000  # = 16000 / 160 * 240: the real LTX-2 vocoder's output rate
_LTX2_MAX_SEQUENCE_LENGTH = 1024  # the pipelines' default; a multiple of the connectors' 128 registers
_LTX2_GEMMA_SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>",  # ids 0..4, as Gemma's
                       "<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>", "<image_soft_token>"]


def _gemma_tokenizer() -> Any:
    """GemmaTokenizer (BPE with byte fallback) over an in-memory vocab: Gemma's special tokens at Gemma's ids,
    the 256 byte-fallback tokens, then "▁" and printable ASCII (each a token; no merges)."""
    from transformers import GemmaTokenizer

    tokens = list(_LTX2_GEMMA_SPECIAL) + [f"<0x{b:02X}>" for b in range(256)] + ["▁"]
    tokens += [chr(c) for c in range(33, 127)]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    tok = GemmaTokenizer(vocab=vocab, merges=[], model_max_length=_LTX2_MAX_SEQUENCE_LENGTH)
    # Registered as special so they are never split (real Gemma 3 has them as added tokens).
    tok.add_special_tokens({"additional_special_tokens": _LTX2_GEMMA_SPECIAL[5:]})
    return tok


def _gemma3_encoder(tokenizer: Any) -> Any:
    """Gemma3ForConditionalGeneration from a config: 2 tiny text layers and a 1-layer SigLIP vision tower."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    ids = tokenizer.convert_tokens_to_ids
    config = Gemma3Config(
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": _LTX2_GEMMA_HIDDEN, "intermediate_size": 32,
            "num_hidden_layers": _LTX2_GEMMA_LAYERS, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
            "query_pre_attn_scalar": 16, "max_position_embeddings": _LTX2_MAX_SEQUENCE_LENGTH, "sliding_window": 512,
            "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
            "bos_token_id": tokenizer.bos_token_id,
        },
        vision_config={
            "hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
            "image_size": 28, "patch_size": 14,
        },
        mm_tokens_per_image=4,
        boi_token_index=ids("<start_of_image>"), eoi_token_index=ids("<end_of_image>"),
        image_token_index=ids("<image_soft_token>"),
    )
    return Gemma3ForConditionalGeneration(config).eval()




def _ltx2_video_vae() -> Any:
    """The real LTX-2 VAE layout (patch 4; down: spatial, temporal, spatiotemporal, spatiotemporal;
    up: 3x spatiotemporal, residual, factor 2), at 8..32 channels and one resnet a block."""
    from diffusers import AutoencoderKLLTX2Video

    return AutoencoderKLLTX2Video(
        in_channels=3, out_channels=3, latent_channels=_LTX2_VIDEO_LATENT_CHANNELS,
        block_out_channels=(8, 16, 32, 32),
        down_block_types=("LTX2VideoDownBlock3D",) * 4,
        layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, True, True),
        downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
        decoder_block_out_channels=(8, 16, 32),
        decoder_layers_per_block=(1, 1, 1, 1),
        decoder_spatio_temporal_scaling=(True, True, True),
        decoder_inject_noise=(False, False, False, False),
        upsample_type=("spatiotemporal",) * 3,
        upsample_residual=(True, True, True),
        upsample_factor=(2, 2, 2),
        timestep_conditioning=False,
        patch_size=4, patch_size_t=1,
        encoder_causal=True, decoder_causal=False,
        encoder_spatial_padding_mode="zeros", decoder_spatial_padding_mode="reflect",
        # As the real config states them (the constructor's own formula would say 64 and 16 here).
        spatial_compression_ratio=32, temporal_compression_ratio=8,
    )


def _ltx2_audio_vae() -> Any:
    from diffusers import AutoencoderKLLTX2Audio

    return AutoencoderKLLTX2Audio(
        base_channels=_LTX2_AUDIO_BASE_CHANNELS, output_channels=2, ch_mult=(1, 2, 4), num_res_blocks=1,
        attn_resolutions=None, in_channels=2, resolution=256, latent_channels=_LTX2_AUDIO_LATENT_CHANNELS, norm_type="pixel",
        causality_axis="height", dropout=0.0, mid_block_add_attention=False,
        sample_rate=_LTX2_AUDIO_SAMPLE_RATE, mel_hop_length=_LTX2_MEL_HOP, is_causal=True, mel_bins=_LTX2_MEL_BINS,
    )


def _ltx2_vocoder() -> Any:
    import torch
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

    vocoder = LTX2Vocoder(
        in_channels=2 * _LTX2_MEL_BINS,  # stereo mel spectrogram, channels x bins flattened
        hidden_channels=32, out_channels=2,
        upsample_kernel_sizes=[16, 15, 8, 4, 4], upsample_factors=[6, 5, 2, 2, 2],  # the real ones: x240
        resnet_kernel_sizes=[3], resnet_dilations=[[1, 3, 5]],
        leaky_relu_negative_slope=0.1, output_sampling_rate=_LTX2_VOCODER_RATE,
    )
    # PyTorch's default init shrinks the signal through 5 upsamplers and their resnets: the waveform came out
    # as the conv biases, the same for every input (seeds differed by ~1e-5). A He init keeps the mel
    # spectrogram's variation, and a small output layer keeps it mostly clear of the final tanh: a waveform of
    # about 0.25-0.3 RMS that changes with the seed and prompt (still noise: it means nothing).
    for module in vocoder.modules():
        if isinstance(module, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
            k = module.weight.shape[2]
            fan_in = (module.weight.shape[1] * k if isinstance(module, torch.nn.Conv1d)
                      else module.weight.shape[0] * k / module.stride[0])
            torch.nn.init.normal_(module.weight, std=(2.0 / fan_in) ** 0.5)
    with torch.no_grad():
        vocoder.conv_out.weight.mul_(0.02)
        vocoder.conv_out.bias.zero_()
    return vocoder


def _ltx2_connectors() -> Any:
    from diffusers.pipelines.ltx2 import LTX2TextConnectors

    return LTX2TextConnectors(
        caption_channels=_LTX2_GEMMA_HIDDEN, text_proj_in_factor=_LTX2_GEMMA_LAYERS + 1,
        video_connector_num_attention_heads=4, video_connector_attention_head_dim=8,
        video_connector_num_layers=1, video_connector_num_learnable_registers=128,
        audio_connector_num_attention_heads=4, audio_connector_attention_head_dim=8,
        audio_connector_num_layers=1, audio_connector_num_learnable_registers=128,
        connector_rope_base_seq_len=_LTX2_MAX_SEQUENCE_LENGTH, rope_theta=10000.0, rope_double_precision=True,
        causal_temporal_positioning=False, rope_type="split",
    )


def _ltx2_transformer() -> Any:
    from diffusers import LTX2VideoTransformer3DModel

    return LTX2VideoTransformer3DModel(
        in_channels=_LTX2_VIDEO_LATENT_CHANNELS, out_channels=_LTX2_VIDEO_LATENT_CHANNELS, patch_size=1, patch_size_t=1,
        num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16,
        vae_scale_factors=(8, 32, 32),
        # Audio tokens are [C * latent mel bins] = 2 * (16 / 4).
        audio_in_channels=_LTX2_AUDIO_LATENT_CHANNELS * _LTX2_MEL_BINS // 4,
        audio_out_channels=_LTX2_AUDIO_LATENT_CHANNELS * _LTX2_MEL_BINS // 4,
        audio_num_attention_heads=2, audio_attention_head_dim=4, audio_cross_attention_dim=8,
        audio_sampling_rate=_LTX2_AUDIO_SAMPLE_RATE, audio_hop_length=_LTX2_MEL_HOP,
        num_layers=2, qk_norm="rms_norm_across_heads", caption_channels=_LTX2_GEMMA_HIDDEN,
        rope_double_precision=True, rope_type="split",
    )


def _ltx2_scheduler() -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler

    # As LTX ships it: resolution-dependent shift (the pipeline computes mu), stretched to a terminal sigma.
    return FlowMatchEulerDiscreteScheduler(
        base_image_seq_len=1024, max_image_seq_len=4096, base_shift=0.95, max_shift=2.05,
        shift=1.0, shift_terminal=0.1, use_dynamic_shifting=True,
    )


def _build_ltx2() -> Any:
    """As LTX-2 ships it, small: one LTX2Pipeline makes the video and its soundtrack (an audio VAE and a vocoder beside
    the video VAE, a Gemma 3 text encoder read through connectors), with the real VAE's compression (32x32 pixels,
    8 frames per latent frame): sizes are multiples of 32, frame counts 8k+1."""
    from diffusers import LTX2Pipeline

    tokenizer = _gemma_tokenizer()
    return LTX2Pipeline(
        scheduler=_ltx2_scheduler(),
        vae=_ltx2_video_vae(),
        audio_vae=_ltx2_audio_vae(),
        text_encoder=_gemma3_encoder(tokenizer),
        tokenizer=tokenizer,
        connectors=_ltx2_connectors(),
        transformer=_ltx2_transformer(),
        vocoder=_ltx2_vocoder(),
    )


# ---- Qwen-Image ----------------------------------------------------------------------------------------------

_QWEN_TEXT_HIDDEN = 16  # real: 3584 (Qwen2.5-VL-7B); the DiT's joint_attention_dim
# The part of QwenImagePipeline's prompt template before the prompt. The pipeline drops the first 34 tokens of
# the encoded template: the real tokenizer's count for this part, so the embedding starts at the prompt.
_QWEN_IMAGE_PREFIX = (
    "<|im_start|>system\nDescribe the image by detailing the color, shape, size, texture, quantity, text, "
    "spatial relationships of the objects and background:<|im_end|>\n<|im_start|>user\n"
)
_QWEN_IMAGE_DROP = 34
_QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
_QWEN_VISION_SPECIAL = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]


def _bpe(word: str, merges: list[tuple[str, str]]) -> list[str]:
    """`word` (a pre-token, in byte-level symbols) split as a BPE model with these merges (rank: position) splits it."""
    ranks = {pair: i for i, pair in enumerate(merges)}
    parts = list(word)
    while len(parts) > 1:
        rank, i = min((ranks.get(pair, len(ranks)), i) for i, pair in enumerate(itertools.pairwise(parts)))
        if rank == len(ranks):
            break
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
    return parts


def _template_tokenizer(prefix: str, drop: int, vision: bool = False) -> Any:
    """gpu.tiny's byte-level Qwen tokenizer, plus the BPE merges that make each pre-token of a pipeline's prompt
    template prefix one token, as the real vocabulary does: the prefix is then `drop` tokens, the count the pipeline
    drops so that the prompt embedding starts at the prompt (bytes alone would leave hundreds of template tokens in
    it). The chat markers are registered as special tokens (in gpu.tiny's tokenizer they are in the vocabulary only,
    so "<|im_start|>" split into its 12 bytes), and with `vision` the image markers too."""
    from transformers import Qwen2Tokenizer

    base = _qwen_tokenizer()
    vocab = dict(base.get_vocab())
    specials = _QWEN_SPECIAL + (_QWEN_VISION_SPECIAL if vision else [])
    for token in specials:
        vocab.setdefault(token, len(vocab))
    pre_tokenize = base.backend_tokenizer.pre_tokenizer.pre_tokenize_str
    texts = re.split("|".join(map(re.escape, specials)), prefix)  # special tokens split before pre-tokenizing
    merges: list[tuple[str, str]] = []
    for piece in (piece for text in texts for piece, _ in pre_tokenize(text)):
        # BPE applies the lowest-ranked merge first, so a plain chain of merges can be pre-empted by an earlier
        # word's ("co" from "color" inside "consistency"): merge whatever is still split, left to right.
        while len(parts := _bpe(piece, merges)) > 1:
            merges.append((parts[0], parts[1]))
            vocab.setdefault(parts[0] + parts[1], len(vocab))
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, model_max_length=131072,  # the real tokenizer's
                               pad_token="<|endoftext|>", eos_token="<|im_end|>")
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    tokenizer.chat_template = base.chat_template
    count = len(tokenizer(prefix).input_ids)
    assert count == drop, f"the template prefix is {count} tokens, the pipeline drops {drop}"
    return tokenizer


def _qwen25vl_encoder(tokenizer: Any) -> Any:
    """Qwen2_5_VLForConditionalGeneration from a config: 2 tiny text layers and a 1-block vision tower (which
    text-to-image never runs, but the real repo ships this class). The pipeline reads the last hidden state."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id, "bos_token_id": None}
    config = Qwen2_5_VLConfig(
        text_config={
            "hidden_size": _QWEN_TEXT_HIDDEN, "intermediate_size": 16, "num_hidden_layers": 2,
            "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": len(tokenizer),
            # head_dim 8: the multimodal rope sections (t, h, w) sum to head_dim / 2
            "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
            "rope_theta": 1000000.0, **ids,
        },
        vision_config={"depth": 1, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2,
                       "out_hidden_size": _QWEN_TEXT_HIDDEN},  # real: depth 32, 1280 wide; 14 px patches, 2x2 merge
        **_vision_token_ids(tokenizer), **ids,
    )
    return Qwen2_5_VLForConditionalGeneration(config).eval()


def _vision_token_ids(tokenizer: Any) -> dict[str, int]:
    """The text encoder's image-marker ids, as the tokenizer spells them (real: 151652 to 151656). Left at the class
    defaults, an edit finds no image tokens in the prompt ("Image features and image tokens do not match")."""
    vocab = tokenizer.get_vocab()
    if "<|image_pad|>" not in vocab:  # a text-to-image tokenizer: the vision tower never runs
        return {}
    names = ("vision_start_token_id", "vision_end_token_id", "image_token_id", "video_token_id")
    return {name: vocab[token] for name, token in zip(names, _QWEN_VISION_SPECIAL, strict=True)}


def _qwen_image_scheduler() -> Any:
    """Qwen/Qwen-Image's scheduler_config: a resolution-dependent (exponential) shift between 0.5 and 0.9,
    stretched to a terminal sigma of 0.02, which with one step divides by zero (NaN): at least 2 steps."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=0.9,
        base_image_seq_len=256, max_image_seq_len=8192, shift_terminal=0.02, time_shift_type="exponential",
    )


def _build_qwen_image() -> Any:
    """As Qwen/Qwen-Image ships it, small: the MMDiT on 2x2 latent patches (real: 60 layers, 24 heads x 128),
    its 16-channel VAE in the real layout (dim_mult [1, 2, 4, 4], three downsamplings: 8x; the real
    latents_mean/std), a Qwen2.5-VL text encoder and the scheduler above. Sizes are multiples of 16."""
    from diffusers import AutoencoderKLQwenImage, QwenImagePipeline, QwenImageTransformer2DModel

    tokenizer = _template_tokenizer(_QWEN_IMAGE_PREFIX, _QWEN_IMAGE_DROP)
    z_dim = 16  # as the real VAE
    vae = AutoencoderKLQwenImage(base_dim=8, z_dim=z_dim, dim_mult=[1, 2, 4, 4], num_res_blocks=1,
                                 temperal_downsample=[False, True, True])  # real: base_dim 96, 2 res blocks
    transformer = QwenImageTransformer2DModel(
        patch_size=2, in_channels=z_dim * 4, out_channels=z_dim, num_layers=2, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=_QWEN_TEXT_HIDDEN, guidance_embeds=False,
        axes_dims_rope=(8, 4, 4),  # sums to attention_head_dim (real: 16, 56, 56)
    )
    return QwenImagePipeline(scheduler=_qwen_image_scheduler(), vae=vae, text_encoder=_qwen25vl_encoder(tokenizer),
                             tokenizer=tokenizer, transformer=transformer)


# QwenImageEditPlusPipeline's template before the prompt (and the pictures' markers), of which it drops 64 tokens.
_QWEN_EDIT_PREFIX = (
    "<|im_start|>system\nDescribe the key features of the input image (color, shape, size, texture, objects, "
    "background), then explain how the user's text instruction should alter or modify the image. Generate a new "
    "image that meets the user's requirements while maintaining consistency with the original input where "
    "appropriate.<|im_end|>\n<|im_start|>user\n"
)
_QWEN_EDIT_DROP = 64


def _build_qwen_image_edit_plus() -> Any:
    """As Qwen/Qwen-Image-Edit-2509 ships it, small: Qwen-Image's MMDiT and 16-channel VAE, a Qwen2.5-VL whose vision
    tower sees each reference (shrunk to about 384x384 by the pipeline), its processor, and Qwen-Image's scheduler.
    The VAE also encodes each reference, at about 1024x1024 (that dominates a tiny edit's time on CPU)."""
    from diffusers import QwenImageEditPlusPipeline
    from transformers import Qwen2VLImageProcessorPil

    from gpu.tiny_processors import ImageOnlyQwen2VLProcessor

    tokenizer = _template_tokenizer(_QWEN_EDIT_PREFIX, _QWEN_EDIT_DROP, vision=True)
    base = _build_qwen_image()  # the same DiT, VAE and scheduler layout as Qwen-Image's
    # Qwen2.5-VL's image settings (56x56 to 12845056 pixels, 14 px patches merged 2x2), on the PIL backend.
    image_processor = Qwen2VLImageProcessorPil(min_pixels=3136, max_pixels=12845056, patch_size=14,
                                               temporal_patch_size=2, merge_size=2)
    return QwenImageEditPlusPipeline(
        scheduler=base.scheduler, vae=base.vae, text_encoder=_qwen25vl_encoder(tokenizer), tokenizer=tokenizer,
        processor=ImageOnlyQwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer),
        transformer=base.transformer)


# ---- Wan 2.2 A14B --------------------------------------------------------------------------------------------

# Both A14B diffusers repos' scheduler_config (diffusers' conversion script); Wan's own code samples at 12 (T2V)
# and 5 (I2V).
_WAN22_A14B_FLOW_SHIFT = 3.0


def _wan21_vae() -> Any:
    """The Wan 2.1 VAE: 16 channels, 8x spatially, 4x in time (the class defaults are the real latents_mean/std)."""
    from diffusers import AutoencoderKLWan

    return AutoencoderKLWan(base_dim=4, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                            temperal_downsample=[False, True, True])


def _wan_experts(in_channels: int, text_dim: int) -> list[Any]:
    # Built one after the other: two different random experts of one shape (real: 40 layers, 40 heads x 128).
    return [_wan_transformer(in_channels=in_channels, out_channels=16, text_dim=text_dim) for _ in range(2)]


def _build_wan_a14b() -> Any:
    """As Wan-AI/Wan2.2-T2V-A14B-Diffusers ships it, small: WanPipeline with two experts, `transformer` for high
    noise (t >= 0.875 * 1000) and `transformer_2` for low noise, UMT5, the Wan 2.1 VAE and flow-matching UniPC.
    guidance_scale is the first expert's, guidance_scale_2 the second's (default: the same)."""
    from diffusers import WanPipeline

    tokenizer = _t5_tokenizer()
    text_encoder = _umt5_encoder(tokenizer)
    high, low = _wan_experts(16, text_encoder.config.d_model)
    return WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=_wan21_vae(),
                       scheduler=_wan_scheduler(_WAN22_A14B_FLOW_SHIFT), transformer=high, transformer_2=low,
                       boundary_ratio=0.875)


def _build_wan_a14b_i2v() -> Any:
    """As Wan-AI/Wan2.2-I2V-A14B-Diffusers ships it, small: a separate repo with experts of its own, taking noise,
    mask and first-frame latents (16 + 4 + 16 = 36 channels); no CLIP image encoder (image_encoder and
    image_processor are null in its model_index.json); boundary 0.9. Takes `image`, and `last_image` too."""
    from diffusers import WanImageToVideoPipeline

    tokenizer = _t5_tokenizer()
    text_encoder = _umt5_encoder(tokenizer)
    high, low = _wan_experts(36, text_encoder.config.d_model)
    return WanImageToVideoPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=_wan21_vae(),
                                   scheduler=_wan_scheduler(_WAN22_A14B_FLOW_SHIFT), image_processor=None,
                                   image_encoder=None, transformer=high, transformer_2=low, boundary_ratio=0.9)


def _build_classifier() -> tuple[Any, Any]:
    """ViTForImageClassification, as Falconsai/nsfw_image_detection, at 32 px with two small layers; labels
    "normal" and "nsfw" as the checkpoint's. Its head leans to "normal" (bias), so at the catalog's thresholds every
    output passes (about 0.01 unsafe), as a trained model's would for the tests' prompts; tests force a block with
    the threshold setting (DARKROOM_MODERATION_THRESHOLD=0). What it scores otherwise means nothing."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    labels = {0: "normal", 1: "nsfw"}
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64, id2label=labels, label2id={v: k for k, v in labels.items()})
    model = ViTForImageClassification(config).eval()
    with torch.no_grad():
        model.classifier.bias.copy_(torch.tensor([2.5, -2.5]))
    processor = ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5, 0.5, 0.5],
                                  image_std=[0.5, 0.5, 0.5])
    return model, processor


def _build_segmenter() -> tuple[Any, Any]:
    """MobileViT DeepLabV3, as apple/deeplabv3-mobilevit-small, at 64 px; label 0 is "background"."""
    from transformers import MobileViTConfig, MobileViTForSemanticSegmentation, MobileViTImageProcessor

    labels = {0: "background", 1: "person", 2: "object"}
    config = MobileViTConfig(
        image_size=64, patch_size=2, hidden_sizes=[16, 16, 16], neck_hidden_sizes=[8, 8, 8, 16, 16, 16, 32],
        num_attention_heads=2, expand_ratio=2.0, aspp_out_channels=16, output_stride=8,
        id2label=labels, label2id={v: k for k, v in labels.items()},
        # The checkpoint's 0.02 init through this small a net gives logits within 1e-4 of each other: every
        # pixel would be half transparent. A wider init gives a mask that varies across the picture, as a
        # trained model's does (still random: which pixels come out transparent means nothing).
        initializer_range=1.0,
    )
    model = MobileViTForSemanticSegmentation(config).eval()
    processor = MobileViTImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64})
    return model, processor


def _build_enhancer() -> tuple[Any, Any]:
    """Qwen2ForCausalLM, as Qwen/Qwen2.5-1.5B-Instruct, with two tiny layers, and gpu.tiny's byte-level Qwen tokenizer
    with the chat markers registered as special tokens (so the chat template's <|im_start|> and <|im_end|> are one
    token each, and <|im_end|> ends a reply, as the real tokenizer has them). Greedy decoding of these random weights
    gives a fixed string of random bytes for each prompt: what it says means nothing, that it is always the same
    string is what the tests check."""
    from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer

    base = _qwen_tokenizer()
    tokenizer = Qwen2Tokenizer(vocab=dict(base.get_vocab()), merges=[], model_max_length=32768,
                               pad_token="<|endoftext|>", eos_token="<|im_end|>")
    tokenizer.add_special_tokens({"additional_special_tokens": list(_QWEN_SPECIAL)})
    tokenizer.chat_template = base.chat_template
    config = Qwen2Config(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        vocab_size=len(tokenizer), max_position_embeddings=2048, tie_word_embeddings=True,
        # The checkpoint's 0.02 init through two tiny layers makes every step pick the same token (a reply of
        # newlines, which cleans to nothing): a wider one makes a reply of varied bytes, as a real reply varies.
        initializer_range=0.5,
        bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen2ForCausalLM(config).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer
