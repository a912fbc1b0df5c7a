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

.PHONY: help venv test size preview clean

help:
	@echo "make test                    run the whole suite offline"
	@echo "make preview STACK=<name>    offline preview of stacks/Pulumi.<name>.yaml (no AWS, no Pulumi CLI)"
	@echo "make size ARGS='--model Qwen/Qwen3-1.7B --max-model-len 8192 --concurrency 4'"
	@echo "make clean                   remove build/ and the virtualenv"

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

test: $(DEV_STAMP)
	$(PY) -m pytest -q

size: $(RUNTIME_STAMP)
	$(PY) -m sizing $(ARGS)

clean:
	rm -rf build $(VENV) .pytest_cache .hypothesis

preview: $(RUNTIME_STAMP)
	$(PY) -m preview $(STACK)
