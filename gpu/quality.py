"""How close a speed setting's output stays to the same model's eager output: PSNR against eager for a fixed seed,
and the floor each setting must keep (issue 23: a setting below its floor is not enabled by default).

The same floors hold the tiny pipelines in `make test` (tests/gpu/test_speed_settings.py, float32 on a CPU) and the
full-size models in the CUDA benchmark (`python -m gpu.bench --full-size`, bfloat16, random weights), where each
variant's first image at batch size 1 is compared with the eager one's.

- Exact settings (tiling below the tile size, channels-last, compile, an exact attention kernel, empty hot-swap slots)
  change only the order of floating-point sums: LOSSLESS_DB.
- Lossy ones by design (the denoiser caches skip or predict steps; fp8 rounds weights, and activations, to 3 mantissa
  bits; SageAttention quantizes Q and K to int8): LOSSY_DB, which still catches a setting that breaks the image
  (noise against noise is under 15 dB) while leaving room for the approximation.
A combination is held to the lowest floor of the settings it turns on.

On random weights a model's outputs can drift further apart than on real ones: nothing trained keeps a step's
small error from growing through the next. So the full-size benchmark also measures the model's own rounding
drift (`rounding_db`: eager against eager under another exact attention kernel, the same sums in another order) and
holds each setting to `held_floor`: its floor, or that drift where the drift is larger, never under BROKEN_DB.

Importing this module is cheap: numpy only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from functions.core.catalog import SpeedSettings

LOSSLESS_DB = 40.0
LOSSY_DB = 35.0
# Below this an output is broken, whatever the model's rounding drift: noise against noise scores under 15 dB.
BROKEN_DB = 20.0
# A setting's floor; attention by backend, quantize by mode.
_FLOORS = {
    "compile": LOSSLESS_DB,
    "vae_tiling": LOSSLESS_DB,
    "channels_last": LOSSLESS_DB,
    "lora_hotswap": LOSSLESS_DB,
    "cache": LOSSY_DB,
    "attention:flash": LOSSLESS_DB,
    "attention:sage": LOSSY_DB,
    "quantize:fp8": LOSSY_DB,
    "quantize:fp8_weight_only": LOSSY_DB,
}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two 8-bit images (or stacks of frames) of one shape, in dB; inf when equal."""
    if a.shape != b.shape:
        raise ValueError(f"cannot compare outputs of shapes {a.shape} and {b.shape}")
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def floor_db(settings: SpeedSettings) -> float | None:
    """The PSNR against eager that `settings` must keep: the lowest floor of the settings it turns on (None: all off,
    which is eager itself)."""
    defaults = type(settings)()
    on = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value == getattr(defaults, name):
            continue
        on.append(f"{name}:{value}" if name in ("attention", "quantize") else name)
    return min((_FLOORS[name] for name in on), default=None)


def held_floor(floor: float, rounding_db: float | None) -> float:
    """The floor a setting is held to on a model whose eager output drifts `rounding_db` from itself when only the
    order of its sums changes (None: not measured): `floor`, lowered to that drift, never under BROKEN_DB."""
    if rounding_db is None:
        return floor
    return max(BROKEN_DB, min(floor, rounding_db))
