"""Sizing tests run offline: every model comes from the built-in catalog, never from the Hub."""

import pytest


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
