"""Load and validate the llm-eks:* keys of a stack, failing in one line that names the key.

The same function serves `pulumi up` (keys from the Pulumi runtime) and the offline preview and tests (keys
read from the stack file), so a stack file is judged the same way everywhere.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_camel, to_snake

from sizing.settings import SETTINGS

from .names import stack_name_problem
from .schema import EKS_ONLY_KEYS, PROJECT, StackConfig, documentation_range

ENVIRONMENTS = Path(__file__).with_name("environments.yaml")
TOKEN_KEY = f"{PROJECT}:hfToken"
KNOWN_KEYS = {f"{PROJECT}:{to_camel(name)}" for name in StackConfig.model_fields} | {TOKEN_KEY}
PRICED_REGION = "us-east-1"  # the region of the prices in sizing/data (instances, EKS, NAT, gp3)
MAX_PROBLEMS = 5  # shown on the one line; the rest are counted


class ConfigError(ValueError):
    """A stack file problem; the message is one line: the key path, what is wrong, what is allowed."""


def _parse(value: Any) -> Any:
    # The Pulumi runtime hands structured values over as JSON text.
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = _merge(base.get(key), value) if key in base else value
        return out
    return override


def _path(loc: tuple) -> str:
    out = PROJECT
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += (":" if i == 0 else ".") + str(part)
    return out


def _known_at(loc: tuple) -> list[str]:
    """The stack-file key names allowed beside the unknown key at `loc` (for a did-you-mean hint)."""
    model: Any = StackConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = next((f for n, f in model.model_fields.items() if to_camel(n) == part), None)
        if field is None:
            return []
        annotation = field.annotation
        # list[Model], Model | None, Annotated[...]: find the pydantic model inside
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        candidates += [a for c in list(candidates) for a in getattr(c, "__args__", ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return []
    return [to_camel(n) for n in model.model_fields]


def _unknown(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(to_camel(key.replace("-", "_")), known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else f"known keys here: {', '.join(sorted(known))}"
    if ("_" in key or "-" in key) and key not in known:
        hint += " Keys are camelCase."
    return f"unknown key ({hint})"


# pydantic's error types -> what the key expects, in the stack file's words.
_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "a whole number",
    "float_type": "a number", "float_parsing": "a number", "bool_type": "true or false", "bool_parsing": "true or false",
    "string_type": "text", "list_type": "a list", "dict_type": "a mapping of names to values",
}
_MAPPING = ("model_type", "model_attributes_type", "dataclass_type")
# A sizing key's own words (sizing/settings.py): 'models[0].concurrency' -> the setting whose stack key it is.
_SETTINGS_BY_STACK = {s.stack: s for s in SETTINGS if s.stack}


def _setting_at(loc: tuple) -> Any:
    if len(loc) >= 3 and loc[0] == "models" and isinstance(loc[1], int):
        return _SETTINGS_BY_STACK.get(".".join(str(p) for p in loc[2:]))
    return None


def _describe(err: dict) -> str:
    """One phrase: what the key expects and what it got ('expected a mapping with keys min, max (got 4)')."""
    msg, kind, loc = err["msg"], err["type"], err["loc"]
    if kind == "extra_forbidden":
        return _unknown(str(loc[-1]), _known_at(loc))
    if kind == "missing":
        return "is required"
    value = err.get("input")
    got = "" if isinstance(value, (dict, list)) else f" (got {value!r})"
    if kind in _MAPPING:
        keys = _known_at((*loc, "?"))
        return f"expected a mapping{' with keys ' + ', '.join(keys) if keys else ''}{got}"
    setting = _setting_at(loc)
    if setting is not None and kind not in ("value_error", "assertion_error"):
        return f"must be {setting.allowed()}{got}"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}{got}"
    if kind == "literal_error":
        return f"must be one of {err['ctx']['expected'].replace(' or ', ', ')}{got}"
    return f"{msg.replace('Input should be', 'must be')}{got}"


def _line(problems: list[str]) -> str:
    """One line: unknown keys first (a typo often explains the other errors), then the rest, counted past a few."""
    problems = sorted(dict.fromkeys(problems), key=lambda p: "unknown key" not in p)
    line = "; ".join(problems[:MAX_PROBLEMS])
    if len(problems) > MAX_PROBLEMS:
        line += f" (and {len(problems) - MAX_PROBLEMS} more)"
    return line


def validation_problems(exc: ValidationError) -> list[str]:
    # Errors raised by a model validator carry the path of the model itself.
    return [f"{_path(e['loc'])}: {_describe(e)}".replace("Value error, ", "") for e in exc.errors()]


def region_warning(raw: Mapping[str, Any]) -> str | None:
    """A one-line warning when the stack's region is not the one the cost figures are priced in."""
    region = raw.get("aws:region") or PRICED_REGION
    if region == PRICED_REGION:
        return None
    return (f"aws:region: {region}: prices and hourly costs are {PRICED_REGION} on-demand figures (sizing/data); "
            f"{region} prices differ, and instance types may be missing there")


def load_stack_config(raw: Mapping[str, Any], secret_keys: set[str] | frozenset[str] = frozenset(),
                      stack: str | None = None) -> StackConfig:
    """Validate every `llm-eks:` key of `raw` (a flat map of stack config keys to values) and, when given, the
    stack name (it names the EKS cluster, the SQS queue and IAM roles). Every problem found is on one line."""
    problems: list[str] = []
    if stack is not None:
        wrong = stack_name_problem(stack)
        if wrong:
            problems.append(f"stack name '{stack}': {wrong}")
    ours = {k: _parse(v) for k, v in raw.items() if k.startswith(f"{PROJECT}:")}
    known = sorted(k.split(":", 1)[1] for k in KNOWN_KEYS)
    for key in sorted(ours):
        if key not in KNOWN_KEYS:
            problems.append(f"{key}: {_unknown(key.split(':', 1)[1], known)}")
    if TOKEN_KEY not in ours:
        problems.append(
            f"{TOKEN_KEY}: is required; set it with `pulumi config set --secret hfToken <token>` "
            "(a Hugging Face read token: https://huggingface.co/settings/tokens)"
        )
    elif TOKEN_KEY not in secret_keys:
        problems.append(f"{TOKEN_KEY}: must be a secret, not plain text; "
                        "set it with `pulumi config set --secret hfToken <token>`")
    data = {k.split(":", 1)[1]: v for k, v in ours.items() if k in KNOWN_KEYS and k != TOKEN_KEY}
    environments = yaml.safe_load(ENVIRONMENTS.read_text(encoding="utf-8"))
    env = data.get("environment", "dev")
    config = None
    if not isinstance(env, str) or env not in environments:
        problems.append(f"{PROJECT}:environment: must be one of {', '.join(environments)} (got {env!r})")
    else:
        try:
            defaults = environments[env]
            if data.get("target") == "sagemaker":  # the environments' defaults describe a cluster it does not build
                defaults = {k: v for k, v in defaults.items() if to_snake(k) not in EKS_ONLY_KEYS}
            config = StackConfig.model_validate(_merge(defaults, data))
        except ValidationError as exc:
            problems.extend(validation_problems(exc))
    if problems or config is None:
        raise ConfigError(_line(problems))
    return config


def deploy_refusals(config: StackConfig) -> list[str]:
    """What a preview may show but a deployment must refuse: public access only from documentation ranges (the
    shipped prod example's placeholder) gives a cluster nobody, Pulumi included, can reach."""
    key = f"{PROJECT}:cluster.publicAccessCidrs"
    return [f"{key}[{i}]: {cidr} is a documentation range ({rfc}) that no client has, so nothing could reach the "
            f"cluster's API; set your office or VPN range (pulumi config set --path 'cluster.publicAccessCidrs[{i}]' "
            f"<cidr>)"
            for i, cidr in enumerate(config.cluster.public_access_cidrs)
            if config.cluster.endpoint_public_access and (rfc := documentation_range(cidr))]


def enforce_deployable(config: StackConfig, *, offline: bool) -> list[str]:
    """Raise ConfigError (one line) on deploy_refusals; offline, where nothing is deployed (make preview, tests),
    return them as warnings instead, so every shipped stack, the prod example included, still previews."""
    refusals = deploy_refusals(config)
    if refusals and not offline:
        raise ConfigError(_line(refusals))
    return [f"{r}; `pulumi up` refuses this" for r in refusals]


def _under_mocks() -> bool:
    """True under Pulumi's mock runtime (the offline preview and the tests), where nothing reaches AWS."""
    from pulumi.runtime.mocks import MockMonitor
    from pulumi.runtime.settings import SETTINGS

    return isinstance(SETTINGS.monitor, MockMonitor)


def load_from_pulumi() -> StackConfig:
    """The running stack's config, as the Pulumi language host (or the mock harness) set it; warns (pulumi.log)
    when the region is not the priced one. A real `pulumi preview` or `pulumi up` refuses what deploy_refusals
    names before any resource is registered; the mock harness only warns."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secrets = {k for k in raw if runtime_config.is_config_secret(k)} | set(runtime_config.get_config_secret_keys_env())
    config = load_stack_config(raw, secrets, stack=pulumi.get_stack())
    warnings = [region_warning(raw), *enforce_deployable(config, offline=_under_mocks())]
    for warning in filter(None, warnings):
        pulumi.log.warn(warning)
    return config
