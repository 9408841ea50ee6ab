# Every target installs what it needs into .venv first, so `make dev` and `make test` work on a fresh clone.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: dev test install lint bench clean build-ApiFunction build-DispatchFunction build-CompleteFunction \
        build-WebhooksFunction build-SweeperFunction

$(STAMP): pyproject.toml gpu/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch first, at the version gpu/requirements.txt pins: any other torch requirement
	# may pull a multi-GB CUDA build. The CPU build (2.13.0+cpu) then satisfies the pin (==2.13.0).
	$(BIN)/pip install -q "$$(grep -E '^torch==' gpu/requirements.txt)"
	# The GPU worker's pinned packages (the Modal image's own list) with the project: tests run what ships.
	$(BIN)/pip install -q -r gpu/requirements.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)
	$(BIN)/darkroom dev

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup tests

lint: $(STAMP)
	$(BIN)/ruff check functions gpu infra tests
	$(BIN)/cfn-lint template.yaml

bench: $(STAMP)
	$(BIN)/python -m gpu.bench

clean:
	rm -rf $(VENV) .darkroom .pytest_cache

# `sam build` runs these (Metadata: BuildMethod: makefile): every function ships the same code,
# the functions/ package (the model catalog included), with the runtime requirements only.
build-ApiFunction build-DispatchFunction build-CompleteFunction build-WebhooksFunction build-SweeperFunction:
	mkdir -p "$(ARTIFACTS_DIR)"
	cp -r functions "$(ARTIFACTS_DIR)/"
	python -m pip install -q -r functions/requirements.txt -t "$(ARTIFACTS_DIR)"
