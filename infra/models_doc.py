"""docs/models.md, generated from the catalog: `python -m infra.models_doc > docs/models.md`.

tests/unit/test_models_doc.py fails when the file and the catalog disagree, so the table is never stale.
"""

from __future__ import annotations

from functions.core.catalog import COMMIT, Catalog, ModelSpec, get_catalog
from functions.dialects.shared import DEFAULT_TOOLS
from infra.prices import PRICES

_INTRO = """\
# Models

Generated from `functions/core/catalog.yaml` by `python -m infra.models_doc > docs/models.md`;
`tests/unit/test_models_doc.py` fails when they disagree. `GET /api/models`, `GET /v1/models` and AI Media
Studio's `GET /api/v1/images/generate` and `GET /api/v1/videos/generate` list the same models.

A model is a catalog entry: its task, its pipeline family (gpu/pipelines.py), its weights (a Hugging Face repo
at a revision), its GPU and memory, and its price. Models on the same weights share one GPU pool: a text
model, its edit model, and their inpaint and variation requests run on one warm container.
"""

_DEFAULTS_WHY = """\
### Why these defaults

Every default is free for commercial use, so a fresh deploy, with no license accepted, serves a request that names
no model and every vendor name.

- **Images: FLUX.2 [klein] 4B** (`flux2-klein`; the create-image and edit-image tools, OpenAI's `gpt-image-*`
  names, AI Media Studio's `openai/gpt-image-2` and `fal-ai/nano-banana-2`). The cheapest model per image, 2025's
  quality, and the one model that does what those names promise: text-to-image, editing with up to 4 reference
  images composed together, and inpainting, in 4 steps.
- **Qwen-Image** is named by id: the best lettering of the open models, at about 250 times klein's price per
  image; a default that costs that much would surprise.
- **`dall-e-2` and `dall-e-3`: Z-Image-Turbo** (`z-image-turbo`). DALL-E 3's strength was following long prompts
  and lettering, which is Z-Image's (bilingual text in images); DALL-E 2's variations and edits take a `strength`,
  which a multi-reference editor has no use for, and OpenAI's variations take only `dall-e-2`.
- **Video: Wan 2.2 TI2V 5B** (`wan2.2-ti2v-5b`; the create-video and image-to-video tools, `fal-ai/veo3.1/fast`):
  the Apache-licensed video model that fits the cheapest GPU that holds it, text- and image-to-video from one set
  of weights. LTX-Video is faster but its license gates commercial use; LTX-2 makes sound (`audio: true`) under a
  revenue-gated license; Wan 2.1 FLF2V takes a last frame. Each is named by id.
"""

_GPU_RULE = """\
## How each model's GPU is chosen

Each set of weights runs on the cheapest Modal GPU, per second, that holds its pipeline in bfloat16 with
room for activations at the largest size the model allows. The container's RAM request (`memory`) holds the
same pipeline before its memory snapshot. A faster, dearer GPU may cost less per image under full load,
but a pool that scales to zero pays for its idle minutes (a 5-minute scale-down window after each burst) by
the second as well, and for most deployments that idle time dominates, so the per-second price decides.
Models added since are placed by this rule. The 2024 models (FLUX.1, SDXL, Playground v2, LTX-Video) stay on
the H100 they were first deployed on until they are timed on a GPU: SDXL and LTX-Video would fit an L40S, at a
latency (about 2.7 times an H100's) that no test here can measure yet.

Credits are meant to follow the GPU-seconds a job takes at the reference size and steps (docs/cost.md, where
the price rule is). No model has been timed on its GPU here; until one is, its credits are estimated from its
work against FLUX.1 [schnell]'s (1 credit: about 1.3 s on an H100). Z-Image-Turbo's 1.25: 6 B parameters for 8
steps is about the work of FLUX.1 [schnell]'s 12 B for 4; an L40S does about 0.37 of an H100's bfloat16 work
per second at 0.49 of its price, so about 1.3 times the cost per image. FLUX.2 [klein]'s 0.5: 4 B for 4 steps is
a third of that work, at the same 1.3 times; each reference it composes is priced as one more image of the
output's size (at most a megapixel), since the model attends to its tokens as to the output's. Qwen-Image's 125:
20.4 B parameters for 50 steps of two passes (its guidance) at 1328x1328 (6,889 tokens), with attention, is about
1.75e16 FLOPs, 80 times FLUX.1 [schnell]'s image; an A100-80GB does about 0.4 of an H100's bfloat16 work per second
at 0.63 of its price, about 1.6 times the cost per unit of work. Qwen-Image-Edit-2509's 60: the same network for
40 steps of two passes at 1024x1024 (4,096 tokens), about half of Qwen-Image's image; each reference adds its
4,096 tokens, priced as one more image. Qwen-Image-Lightning's 10: Qwen-Image's network with lightx2v's 8-step
LoRA fused into it (a step costs what Qwen-Image's does) for 8 steps of one pass (no classifier-free guidance)
instead of 50 of two, so 125 x 8 / 100 = 10. FLUX.2 [dev]'s 40: 32 B parameters for 50 steps of one pass (its
guidance is distilled) at 1024x1024 is about 34 times FLUX.1 [schnell]'s image, on an H200 (an H100's speed at
1.15 times its price).

The video models' credits are estimated the same way, from the transformer's work per job (parameters times
tokens, plus attention, which grows with the square of the tokens and dominates at these lengths) against
FLUX.1 [schnell]'s 2.2e14 FLOPs per image, then the GPU's speed and price against an H100's:
- Wan 2.2 TI2V 5B, 48 per second: 5 s at 1280x704 is 27,280 tokens (31 latent frames of 22x40), 50 steps of two
  passes (guidance 5): about 4e16 FLOPs, 180 times FLUX.1 [schnell]'s image, at 1.3 times the cost on an L40S.
- Wan 2.1 FLF2V 14B, 400 per second: 5 s at 1280x720, 16 fps, is 75,600 tokens, 40 layers of 5120 wide, 50 steps
  of two passes: about 5e17 FLOPs on an A100-80GB (a third of an H100's speed at 0.63 of its price).
- LTX-2, 18 per second: 5 s at 768x512 is 6,144 video tokens, 30 steps of up to four passes (guidance, a
  spatio-temporal guidance pass and an audio-isolation pass) through 19 B parameters: about 1.8e16 FLOPs, on an
  H200 (an H100's speed at 1.15 times its price).
These are estimates until `make bench` runs on the GPUs (docs/benchmarks.md).
"""


def _price(model: ModelSpec) -> str:
    unit = "second of video" if model.type == "video" else "image"
    d = model.defaults
    return f"{model.base_credits:g} per {unit} at {d.width}x{d.height}, {d.steps} steps"


def _revision(revision: str) -> str:
    return revision[:10] if COMMIT.fullmatch(revision) else f"{revision} (unpinned)"


def _weights(model: ModelSpec) -> str:
    weights = f"`{model.repo}` @ {_revision(model.revision)}"
    if model.adapter is not None:
        weights += (f" + `{model.adapter.repo}/{model.adapter.weight_name}` @ {_revision(model.adapter.revision)} "
                    f"(fused)")
    return weights


def _models_table(catalog: Catalog) -> list[str]:
    lines = ["## The catalog", "",
             "| model | task | family | weights | GPU | memory | credits | steps (max) | aliases |",
             "|---|---|---|---|---|---|---|---|---|"]
    for m in catalog.models:
        aliases = ", ".join(f"`{a}`" for a in m.aliases) or "-"
        lines.append(f"| `{m.id}` ({m.name}) | {m.task} | {m.family} | {_weights(m)} | {m.gpu} | "
                     f"{m.memory_gib} GiB | {_price(m)} | {m.defaults.steps} ({m.max_steps}) | {aliases} |")
    return lines + [""]


def _capabilities_table(catalog: Catalog) -> list[str]:
    """What each model can do and under what license: GET /api/models reports the same (Catalog.facts)."""
    names = ("references", "mask", "last_frame", "extend", "audio", "lora", "negative_prompt")
    lines = ["## Tasks, capabilities and licenses", "",
             ("A request naming a text model runs its edit model when it brings images, so a text model's tasks and "
              "capabilities include its edit model's. `references`: images each output draws on (composed when "
              "above 1). A request that needs a capability the model lacks is a 400 naming the field and the "
              "models that have it. A model not free for every commercial use runs only once the operator accepts "
              "its license (`AcceptedLicenses`, `darkroom deploy --accept-license ID`; the local stack, whose "
              "tiny random weights are under no license, accepts all)."), "",
             "| model | tasks | " + " | ".join(names) + " | license | commercial use |",
             "|---|---|" + "---|" * len(names) + "---|---|"]
    for m in catalog.models:
        caps = catalog.capabilities(m)
        cells = [str(caps[n]) if n == "references" else ("yes" if caps[n] else "-") for n in names]
        licence = f"[{m.license}]({m.license_url})" if m.license_url else m.license
        use = "yes" if m.commercial_use else f"no: {m.license_note}" if m.license_note else "no"
        lines.append(f"| `{m.id}` | {', '.join(catalog.tasks(m))} | {' | '.join(cells)} | {licence} | {use} |")
    return lines + [""]


def _pools_table(catalog: Catalog) -> list[str]:
    gpu_prices = PRICES["modal_gpu_second"]
    lines = ["## GPU pools", "",
             ("One Modal class per pipeline family, one pool per set of weights (`MaxGpuConcurrency` containers "
             "each)."), "",
             "| weights | Modal class | GPU | $ per GPU-second | memory | startup timeout | models |",
             "|---|---|---|---|---|---|---|"]
    for pool in catalog.weights_pools().values():
        price = gpu_prices.get(pool.gpu)
        fused = f" + `{pool.adapter.repo}/{pool.adapter.weight_name}` (fused)" if pool.adapter is not None else ""
        lines.append(f"| `{pool.repo}`{fused} | {pool.modal_class} | {pool.gpu} | "
                     f"{f'{price:.6f}' if price else 'not in infra/prices.py'} | {pool.memory_gib} GiB | "
                     f"{pool.startup_timeout} s | {', '.join(pool.models)} |")
    return lines + [""]


def _defaults(catalog: Catalog) -> list[str]:
    lines = ["## The model a request gets when it names none", "",
             "| request | model |", "|---|---|"]
    for (kind, references), slug in DEFAULT_TOOLS.items():
        tool = catalog.tool(slug)
        what = f"{kind}, {'with' if references else 'no'} reference images (tool `{slug}`)"
        lines.append(f"| {what} | `{tool.default_model}` |" if tool else f"| {what} | none configured |")
    lines += ["", ("OpenAI's model names and AI Media Studio's vendor ids are aliases the operator can point "
                   "elsewhere or turn off (`aliases:` in `DARKROOM_CATALOG_EXTRA`):"), "", "| name | model |",
              "|---|---|"]
    lines += [f"| `{alias}` | `{target}` |" for alias, target in catalog.aliases.items()]
    return lines + [""]


def markdown(catalog: Catalog | None = None) -> str:
    catalog = catalog or get_catalog()
    sections = [_INTRO, *_models_table(catalog), *_capabilities_table(catalog), *_pools_table(catalog),
                *_defaults(catalog), _DEFAULTS_WHY, _GPU_RULE]
    return "\n".join(sections)


if __name__ == "__main__":
    print(markdown(), end="")
