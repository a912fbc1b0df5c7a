"""Every stack in stacks/ runs once under the mock runtime; tests share the recorded runs."""

from __future__ import annotations

import functools

import pytest

from config import load_stack_config
from plan.stack import plan_stack
from preview import render
from preview.harness import available_stacks, read_stack_config, run_stack, stack_file

STACKS = available_stacks("eks")  # the SageMaker stacks: tests/program/test_sagemaker.py


@functools.cache
def recorded(stack: str):
    raw, secrets = read_stack_config(stack_file(stack))
    config = load_stack_config(raw, set(secrets))
    return config, list(plan_stack(config).models), run_stack(stack, raw, secrets)


@pytest.fixture(params=STACKS)
def stack(request):
    return request.param


@pytest.fixture
def config(stack):
    return recorded(stack)[0]


@pytest.fixture
def plans(stack):
    return recorded(stack)[1]


@pytest.fixture
def run(stack):
    return recorded(stack)[2]


@pytest.fixture
def manifests(run):
    return render.manifests(run)
