# Every target installs what it needs into .venv first, so `make dev` and `make test` work on a fresh clone.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SAM_VENV  := .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed
# The JavaScript clients the e2e tests drive (OpenAI's Node SDK, the Vercel AI SDK), from npm, into the repo.
JS_CLIENTS := tests/clients/js
JS_STAMP   := $(JS_CLIENTS)/node_modules/.installed

.PHONY: dev test install lint bench bench-cuda bench-cuda-wheels bench-cuda-rehearsal stress clean artifacts-doc openapi chromium screenshots lock

$(STAMP): pyproject.toml gpu/requirements.txt gpu/requirements-nodeps.txt functions/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# pip pinned: tests/gpu/test_image_requirements.py resolves the image's list with its fast-deps feature.
	$(BIN)/pip install -q --upgrade 'pip==26.3'
	# The CPU build of torch first, at the version gpu/requirements.txt pins: any other torch requirement
	# may pull a multi-GB CUDA build. The CPU build (2.13.0+cpu) then satisfies the pin (==2.13.0).
	$(BIN)/pip install -q "$$(grep -E '^torch==' gpu/requirements.txt)"
	# The GPU worker's pinned packages (the Modal image's own list) with the project, under the Lambda lock's
	# versions (functions/requirements.txt, without its hashes): tests run what ships, and a fresh clone gets
	# the versions the lock was made from, not whatever is newest (tests/artifacts hold the two equal).
	$(BIN)/python -m infra.build.lock --constraints > $(VENV)/lambda-constraints.txt
	$(BIN)/pip install -q -r gpu/requirements.txt -c $(VENV)/lambda-constraints.txt -e '.[dev]'
	# invisible-watermark without the GUI OpenCV it declares (gpu/requirements-nodeps.txt says why).
	$(BIN)/pip install -q --no-deps -r gpu/requirements-nodeps.txt
	touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)
	$(BIN)/darkroom dev

test: $(STAMP) $(SAM_STAMP) $(JS_STAMP) chromium
	$(BIN)/python -m pytest -n 2 --dist loadgroup tests

lint: $(STAMP)
	$(BIN)/ruff check functions gpu infra tests
	$(BIN)/cfn-lint template.yaml

# The GPU per-stage table (gpu/bench.py rewrites docs/benchmarks.md); each speed setting alone against eager (time,
# and PSNR against its floor: printed, not written, as the CUDA figures come from bench-cuda's prepared run); then
# the system sections below it.
bench: $(STAMP)
	$(BIN)/python -m gpu.bench
	$(BIN)/python -m gpu.bench --full-size --models flux-schnell --variant each --batch-sizes 1 --no-write
	$(BIN)/python -m infra.bench

# The full-size benchmark (python -m gpu.bench --full-size: real architectures, random weights) on a CUDA machine,
# as one prepared run of about 9 minutes (infra/bench/cuda_full_size.sh; gpu/README.md says how to run it on a lent
# machine). Fetch the wheels that machine lacks here first: bench-cuda-wheels.
bench-cuda-wheels: $(STAMP)
	PIP=$(BIN)/pip infra/bench/cuda_full_size.sh wheels

bench-cuda:
	infra/bench/cuda_full_size.sh

# Every step of bench-cuda on this CPU at tiny size, with this venv's packages, under .darkroom/bench-rehearsal:
# a step that breaks here would have cost device time there.
bench-cuda-rehearsal: $(STAMP)
	REHEARSAL=1 WHEELS= PYTHON=$(BIN)/python OUT=.darkroom/bench-rehearsal infra/bench/cuda_full_size.sh

# 200 jobs from 20 concurrent clients through a darkroom dev of its own; rewrites docs/stress.md.
# Fails if a job is lost or credits drift.
stress: $(STAMP)
	$(BIN)/python -m infra.stress --start --jobs 200 --clients 20 --write docs/stress.md

clean:
	rm -rf $(VENV) $(SAM_VENV) .darkroom .pytest_cache $(JS_CLIENTS)/node_modules

# `sam build` runs build-<LogicalId> for every function and layer with `Metadata: BuildMethod: makefile`,
# with ARTIFACTS_DIR set. infra/build/artifacts.py builds for the runtime and architecture that template.yaml
# declares (DARKROOM_BUILD_ARCHITECTURE / DARKROOM_BUILD_RUNTIME override them), with that function's
# requirements only. Any logical id works, so functions added to the template need no new target here.
# The build needs pyyaml: the project venv when there is one, else whatever python3 sam runs us with.
BUILD_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
build-%:
	$(BUILD_PYTHON) -m infra.build.artifacts $* "$(ARTIFACTS_DIR)"

# Re-locks functions/requirements.txt, which every build-% installs under (pip --require-hashes): every
# distribution any Lambda artifact carries, at the version this venv has (what the tests run), with each
# target's wheel hash. To move a version: install it here (within pyproject.toml's range), `make lock`,
# `make test`. `$(BIN)/python -m infra.build.lock --check` only says whether the lock is current.
lock: $(STAMP)
	$(BIN)/python -m infra.build.lock

# npm ci: exactly the versions in package-lock.json (Node 20 is on the machine; npm reaches its registry).
$(JS_STAMP): $(JS_CLIENTS)/package.json $(JS_CLIENTS)/package-lock.json
	cd $(JS_CLIENTS) && npm ci --no-audit --no-fund --loglevel=error
	touch $(JS_STAMP)

# sam CLI in its own venv: its pins (pydantic, cfn-lint, ...) clash with the project's. Only tests need it.
$(SAM_STAMP):
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q --upgrade pip
	$(SAM_VENV)/bin/pip install -q 'aws-sam-cli>=1.120'
	touch $(SAM_STAMP)

# Rebuilds every artifact and rewrites the size table in docs/artifacts.md.
artifacts-doc: $(STAMP)
	$(BIN)/python -m infra.build.report docs/artifacts.md

# Exports the OpenAPI document the API serves (GET /openapi.json) to docs/openapi.json; a test fails when stale.
openapi: $(STAMP)
	$(BIN)/python -m infra.openapi_doc docs/openapi.json

# The console's browser tests (tests/e2e/test_console.py) drive Debian's chromium; Playwright never downloads one.
chromium:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

# Retakes the web console's screenshots in docs/screenshots/ with the browser tests' own code.
screenshots: $(STAMP) chromium
	DARKROOM_SCREENSHOTS_DIR=docs/screenshots $(BIN)/python -m pytest -q -p no:cacheprovider tests/e2e/test_console.py
