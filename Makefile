# Two commands for a fresh machine:
#   make run    install into .venv and serve the API (ARGS="--model tiny" to run offline)
#   make test   install into .venv and run the whole test suite
#
# torch is installed first, pinned, so that pip never resolves a newer (multi-GB CUDA) build
# on its own. Where no GPU is present elsewhere, pick PyTorch's CPU wheels with
#   make run TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX_URL ?=
ARGS ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.pixelsmith-installed

.PHONY: install run test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install "$(TORCH)" $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(BIN)/python -m pip install -e ".[moderation,dev]"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/pixelsmith serve $(ARGS)

test: install lint
	$(BIN)/python -m pytest $(ARGS)

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build dist src/*.egg-info
