"""Suite-wide: the `live` mark, for tests that run real processes from the virtualenvs `make test` builds (the vLLM
engines, the benchmark's inference-perf, Chromium). `make check` deselects them (-m "not live"); `make test` runs all.
A file named test_*_live.py is live as a whole, so is a test that uses a fixture in LIVE_FIXTURES; elsewhere mark a
test with @pytest.mark.live."""

from __future__ import annotations

import pytest

LIVE_FIXTURES = frozenset({"vllm_server", "bench_venv"})  # tests/bench/conftest.py: a real vLLM, inference-perf


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name.endswith("_live.py") or LIVE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.live)
