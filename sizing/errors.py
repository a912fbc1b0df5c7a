"""The one exception type the sizing library raises for bad input or an impossible workload, and the names of the
settings it talks about.

Messages name settings by a key id written «max_model_len»; each front end words them its own way: the CLI as
its flags (`--max-model-len`), a stack file as its keys (`maxModelLen`). `str(error)` uses the stack file's names
(the library's main caller); `error.render(CLI_NAMES)` gives the CLI's. `error.key` is the setting to blame, when
one is binding (the price cap, a pinned instance type, a pinned tensor-parallel degree, ...), so a front end can
point at it.
"""

from __future__ import annotations

import re

# key id -> how the stack file (llm-eks:models[i].<key>) and the CLI (python -m sizing) call it: from the one
# description of each setting (sizing/settings.py).
from .settings import CLI_NAMES, STACK_NAMES  # noqa: F401 (re-exported)

_KEY = re.compile(r"«([a-z0-9_]+)»")


def key(key_id: str) -> str:
    """The placeholder for a setting's name in a message: «max_model_len»."""
    if key_id not in STACK_NAMES:
        raise KeyError(key_id)
    return f"«{key_id}»"


def render(text: str, names: dict[str, str] | None = None) -> str:
    """`text` with every «key» replaced by its name in `names` (default: the stack file's)."""
    names = STACK_NAMES if names is None else names
    return _KEY.sub(lambda m: names.get(m.group(1), m.group(1)), text)


class SizingError(ValueError):
    """A problem the user can fix; the message is a single line that says what and how."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.template = message
        self.key = key

    def render(self, names: dict[str, str] | None = None) -> str:
        return render(self.template, names)

    def __str__(self) -> str:
        return self.render()
