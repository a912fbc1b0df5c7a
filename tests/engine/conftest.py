"""tests/engine/: the real vLLM engines.

In the main virtualenv, test_engines.py runs tests/engine/real/ under each engine's own virtualenv (.engines/, made by
`make engines`; `make test` makes them first). Under an engine's Python (vLLM importable), real/ is the suite and
the driver is not collected.
"""

import importlib.util

IN_ENGINE = importlib.util.find_spec("vllm") is not None
collect_ignore = ["test_engines.py"] if IN_ENGINE else ["real"]
