# Two commands for a fresh machine:
#   make run    install into .venv and serve the API (ARGS="--model tiny" to run offline)
#   make test   install into .venv with the test tools (plus Debian's chromium for the browser
#               tests, Debian's postgresql for the shared-database test, and the npm openai
#               client for the Node test, which needs Node.js and npm) and run the whole suite
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
# What serving needs (moderation, SVG, S3, MCP, C2PA), and on top what the tests need (Ray,
# PostgreSQL, the dev tools): `make run` installs no test tools.
SERVE_EXTRAS := moderation,svg,s3,mcp,c2pa
TEST_EXTRAS := $(SERVE_EXTRAS),ray,postgres,dev
STAMP := $(VENV)/.pixelsmith-installed
TEST_STAMP := $(VENV)/.pixelsmith-test-installed

.PHONY: install install-test run test lint browser node postgres clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install "$(TORCH)" \
		|| $(BIN)/python -m pip install "$(TORCH)" $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(BIN)/python -m pip install -e ".[$(SERVE_EXTRAS)]"
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install -e ".[$(TEST_EXTRAS)]"
	touch $(TEST_STAMP)

install: $(STAMP)
install-test: $(TEST_STAMP)

run: install
	$(BIN)/pixelsmith serve $(ARGS)

test: install-test lint browser node postgres
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

lint: install-test
	$(BIN)/ruff check src tests benchmarks training
	$(BIN)/ruff format --check src tests benchmarks training
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build dist src/*.egg-info tests/node/node_modules
