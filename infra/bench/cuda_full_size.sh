#!/usr/bin/env bash
# The full-size benchmark on a lent CUDA machine (issue 23, items 5 and 6), as one prepared run.
#
#   infra/bench/cuda_full_size.sh wheels   # HERE, before the run: the Python packages the CUDA machine lacks,
#                                          # as wheels under .darkroom/cuda-wheels (about 29 MB; .darkroom/ is
#                                          # git-ignored, so the run tool must be told to carry it)
#   infra/bench/cuda_full_size.sh          # THERE, through the run tool (see gpu/README.md), or `make bench-cuda`
#
# The CUDA machine reaches no package registry: its image has torch, accelerate, safetensors, tokenizers,
# huggingface-hub, sentencepiece, peft, pillow, numpy, pyyaml and rich (/work/.library/device/KINDS.md), but not
# diffusers, pydantic or ftfy, and an older transformers. The wheels are the repo's pins (gpu/requirements.txt)
# for Python 3.12 on x86-64; torch stays the image's (a CUDA build; the pinned one is gigabytes). imageio-ffmpeg
# (a 68 MB wheel) is over the run tool's transfer limit: video rows say their encode was not measured.
#
# What it runs: `python -m gpu.bench --full-size` (gpu/full_size.py: real architectures, random weights: outputs
# are noise, only the times count) for the issue's must-haves first, eager at batch sizes 1, 2 and 4, then the
# serving sweep (gpu/bench_serving.py), then the speed variants at batch size 1 while time is left, each compared
# with the eager output. Each step is its own process under `timeout`, with a --budget inside it, and every row
# is appended to $OUT/full_size.jsonl (or serving.jsonl) as it finishes, so a step cut off keeps what it measured
# and the next step still runs. The whole run stays within BENCH_SECONDS (default 560). It writes under $OUT only:
# at the end $OUT holds log.txt, versions.txt, full_size.jsonl, serving.jsonl and benchmarks.md. Here, afterwards:
#   .venv/bin/python -m gpu.bench --full-size --report-only --jsonl <files_at>/full_size.jsonl
#   .venv/bin/python -m gpu.bench_serving --report-only --jsonl <files_at>/serving.jsonl
#   .venv/bin/python -m infra.bench_calls --jobs 20 --write docs/cost.md
# rewrite this checkout's docs/benchmarks.md sections from the rows (the first also keeps them in
# docs/full-size-rows.jsonl) and reprice docs/cost.md from the measured GPU time.
#
#   REHEARSAL=1 infra/bench/cuda_full_size.sh   # HERE, or `make bench-cuda-rehearsal`: every step of the run, on
#                                               # this CPU at tiny size, so a broken step costs no device time
set -uo pipefail
cd "$(dirname "$0")/../.."

WHEELS=${WHEELS-.darkroom/cuda-wheels}  # WHEELS= (empty): the python's own packages, none installed
# gpu/requirements.txt's pins of what the CUDA image lacks, and what those need (their Requires-Dist).
PACKAGES=(diffusers==0.42.1 transformers==5.24.0 pydantic==2.13.5 pydantic-core==2.46.5 annotated-types==0.8.0
          typing-inspection==0.4.5 typing-extensions==4.16.0 ftfy==6.3.1 wcwidth==0.9.5 regex==2026.12.2
          torchao==0.18.0)

if [[ "${1:-}" == "wheels" ]]; then
  rm -rf "$WHEELS" && mkdir -p "$WHEELS"
  PIP=${PIP:-.venv/bin/pip}
  exec "$PIP" download -q --no-deps --only-binary=:all: --python-version "${WHEEL_PYTHON:-3.12}" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d "$WHEELS" "${PACKAGES[@]}"
fi

OUT=${OUT:-.darkroom/bench-cuda}
mkdir -p "$OUT" && rm -f "$OUT"/{log.txt,versions.txt,full_size.jsonl,serving.jsonl,benchmarks.md}
PY=${PYTHON:-python3}
TOTAL=${BENCH_SECONDS:-560}  # the run tool's timeout_s=600, less the preflight and the final render
JSONL="$OUT/full_size.jsonl"
CACHE=/tmp/darkroom-compile-cache
rm -rf "$CACHE"  # the first compile step compiles; the next loads what it saved
log() { echo "[$(date -u +%H:%M:%S) +${SECONDS}s] $*" | tee -a "$OUT/log.txt"; }

SITE=/tmp/darkroom-site
rm -rf "$SITE"
if [[ -z "$WHEELS" ]]; then
  log "WHEELS is empty: $PY's own packages"
elif compgen -G "$WHEELS/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    "$WHEELS"/*.whl 2>&1 | tail -3 | tee -a "$OUT/log.txt"
  export PYTHONPATH=$SITE
else
  log "no wheels under $WHEELS: run 'infra/bench/cuda_full_size.sh wheels' here first and carry .darkroom/cuda-wheels"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export DIFFUSERS_VERBOSITY=error TRANSFORMERS_VERBOSITY=error

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  "$PY" - <<'EOF'
import platform, torch, diffusers, transformers, pydantic
print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"diffusers {diffusers.__version__}, transformers {transformers.__version__}, pydantic {pydantic.__version__}")
print("cuda available:", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
import diffusers, peft, torchao  # noqa: F401
from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, Float8WeightOnlyConfig  # noqa: F401
import gpu.bench
from functions.core.catalog import get_catalog
from gpu import full_size, pipelines
# Each must-have's pipeline class, as this diffusers names it: a missing one fails here, not in a step.
print("pipelines:", ", ".join(getattr(diffusers, pipelines.FAMILIES[get_catalog().model(m).family].pipeline).__name__
                              for m in full_size.MUST_HAVE), "; peft", peft.__version__, "; torchao", torchao.__version__)
EOF
} 2>&1 | tee "$OUT/versions.txt"
if [[ ${PIPESTATUS[0]} -ne 0 ]]; then
  log "the benchmark does not import: see versions.txt"; exit 1
elif ! grep -q "cuda available: True" "$OUT/versions.txt"; then
  [[ -n "${REHEARSAL:-}" ]] || { log "no usable CUDA python: see versions.txt"; exit 1; }
  log "REHEARSAL without CUDA: every step at tiny size; no time or row here is a GPU's"
fi
REPORT="$OUT/benchmarks.md"  # the repo's page, its sections rewritten from this run's rows
cp docs/benchmarks.md "$REPORT"

# step CAP_SECONDS BUDGET_SECONDS ARGS...: one `gpu.bench --full-size` process, cut at CAP (or what is left of TOTAL).
step() {
  local cap=$1 budget=$2; shift 2
  local left=$((TOTAL - SECONDS - 5))
  if ((left < 30)); then log "SKIPPED (time): $*"; return; fi
  ((cap > left)) && cap=$left
  ((budget > cap - 10)) && budget=$((cap - 10))
  log "START (cap ${cap}s, budget ${budget}s): $*"
  # Empty inductor and Triton caches: a step compiles, or loads --compile-cache, as a new container would.
  TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) TRITON_CACHE_DIR=$(mktemp -d) timeout -k 10 "$cap" \
    "$PY" -m gpu.bench --full-size --jsonl "$JSONL" --out "$REPORT" --budget "$budget" "$@" >>"$OUT/log.txt" 2>&1
  log "END rc=$?: $*"
}

# 1. The must-haves, eager: 1024x1024 images at their default steps, at batch sizes 1, 2 and 4; Qwen-Image at 10 of
#    its 50 steps (true CFG: two transformer passes a step) and Wan's default clip (1280x704, 121 frames) at 4 of its
#    50, one video (two come last, if time is left): s/step is what carries over to the full count.
step 70 45 --models flux2-klein --variant eager
step 80 55 --models z-image-turbo --variant eager
step 150 110 --models qwen-image --variant eager --steps 10
step 150 120 --models wan2.2-ti2v-5b --variant eager --steps 4 --batch-sizes 1
# 2. Regional compile at batch size 1, then its artifacts loaded by a fresh process (the cache-load stage: each step
#    has empty inductor and Triton caches of its own, so only --compile-cache can spare it the compile), compared
#    with the eager output of step 1 (PSNR against its floor: gpu/quality.py).
step 120 100 --models flux2-klein --variant compile=regional --batch-sizes 1 --compile-cache "$CACHE"
step 70 55 --models flux2-klein --variant compile=regional --batch-sizes 1 --compile-cache "$CACHE"
# 3. Serving: FLUX.2 [klein] through the worker's Batcher, unbatched and in batches of up to 4, from 1 and 4
#    concurrent clients (gpu/bench_serving.py): throughput and latency both ways, and the Serving defaults they choose.
left=$((TOTAL - SECONDS - 5))
if ((left >= 60)); then
  cap=$((left < 100 ? left : 100))
  log "START (cap ${cap}s): gpu.bench_serving --models flux2-klein"
  TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) TRITON_CACHE_DIR=$(mktemp -d) timeout -k 10 "$cap" \
    "$PY" -m gpu.bench_serving --models flux2-klein --clients 1,4 --batch-sizes 4 --requests 3 \
    --jsonl "$OUT/serving.jsonl" --out "$REPORT" >>"$OUT/log.txt" 2>&1
  log "END rc=$?: gpu.bench_serving"
fi
# 4. More settings at batch size 1 while time is left: fp8 matmuls (torchao) under compile, First Block Cache on
#    Qwen-Image (its skip rate on noise is not the real one; of the four, only Qwen-Image's and Wan's transformers
#    take diffusers' cache hooks: Z-Image's has none, FLUX.2's breaks First Block Cache, gpu/speed.py; and its many
#    steps are where a cache pays), the other models compiled, and Wan's two-video batch.
step 120 100 --models flux2-klein --variant quantize=fp8,compile=regional --batch-sizes 1
step 100 80 --models qwen-image --variant cache=first_block --steps 10 --batch-sizes 1
step 120 100 --models z-image-turbo --variant compile=regional --batch-sizes 1
step 150 130 --models qwen-image --variant compile=regional --steps 10 --batch-sizes 1
step 150 130 --models wan2.2-ti2v-5b --variant eager --steps 4 --batch-sizes 2

# Rendered once more from every row: a step cut off by its timeout did not rewrite the page itself.
[[ -s "$JSONL" ]] && "$PY" -m gpu.bench --full-size --report-only --jsonl "$JSONL" --out "$REPORT" >>"$OUT/log.txt" 2>&1
[[ -s "$OUT/serving.jsonl" ]] && "$PY" -m gpu.bench_serving --report-only --jsonl "$OUT/serving.jsonl" \
  --out "$REPORT" >>"$OUT/log.txt" 2>&1
log "done: $(wc -l <"$JSONL" 2>/dev/null || echo 0) rows in $JSONL"
