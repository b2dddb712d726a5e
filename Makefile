# Two commands for a fresh machine:
#   make run    install into .venv and serve the API (ARGS="--model tiny" to run offline)
#   make test   install into .venv (plus Debian's chromium for the browser tests, Debian's
#               postgresql for the shared-database test, and the npm openai client for the
#               Node test) and run the whole test suite
#
# torch is installed first, pinned, so that pip never resolves a newer build on its own. With
# no NVIDIA GPU (no nvidia-smi) the CPU build is taken: from a local wheel or pip's configured
# index when one offers it, else from PyTorch's CPU index; never the multi-GB CUDA build.
# Override with e.g. `make run TORCH=torch==2.13.0` (CUDA) or TORCH_INDEX_URL=...

PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo yes)
TORCH ?= $(if $(HAS_GPU),torch==$(TORCH_VERSION),torch==$(TORCH_VERSION)+cpu)
TORCH_INDEX_URL ?= $(if $(HAS_GPU),,https://download.pytorch.org/whl/cpu)
ARGS ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.pixelsmith-installed

.PHONY: install run test lint browser node postgres clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install "$(TORCH)" \
		|| $(BIN)/python -m pip install "$(TORCH)" $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(BIN)/python -m pip install -e ".[moderation,svg,s3,ray,postgres,mcp,c2pa,dev]"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/pixelsmith serve $(ARGS)

test: install lint browser node postgres
	$(BIN)/python -m pytest $(ARGS)

# The official npm `openai` client, for tests/test_node_client.py (Node.js and npm needed).
NODE_CLIENT := tests/node/node_modules/openai/package.json
node: $(NODE_CLIENT)
$(NODE_CLIENT): tests/node/package-lock.json
	cd tests/node && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The playground's browser tests drive Debian's chromium through Playwright (no browser
# download): installed here when missing, as root or through sudo.
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { \
		SUDO=$$(test "$$(id -u)" = 0 || echo "sudo -n"); \
		$$SUDO apt-get install -y chromium || { $$SUDO apt-get update && $$SUDO apt-get install -y chromium; }; \
	}

# tests/test_postgres.py starts Debian's PostgreSQL on 127.0.0.1: installed here when missing.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || { \
		SUDO=$$(test "$$(id -u)" = 0 || echo "sudo -n"); \
		$$SUDO apt-get install -y postgresql || { $$SUDO apt-get update && $$SUDO apt-get install -y postgresql; }; \
	}

lint: install
	$(BIN)/ruff check src tests benchmarks training
	$(BIN)/ruff format --check src tests benchmarks training
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build dist src/*.egg-info tests/node/node_modules
