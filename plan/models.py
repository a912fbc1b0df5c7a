"""Each served model planned once: the sizing plan, and everything components derive from it (the server's
arguments, the Neuron engine settings, the rollout surge, node limits, probe budget), blaming the right stack key
when a model cannot be placed.

Runs before any resource is registered, so a model that does not fit fails the program cleanly. Components read
these fields and never call into sizing themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sizing import catalog
from sizing import errors as sizing_errors
from sizing.architecture import Architecture, from_config
from sizing.errors import SizingError
from sizing.memory import check_context
from sizing.planner import DeploymentPlan, Workload, fleet_nodes, plan
from sizing.settings import ENGINE_FLAG_KEYS, SETTINGS

from config.loader import ConfigError
from config.names import SERVER_FLAGS
from config.schema import PROJECT, Model, StackConfig, stack_value
from serving.settings import EngineSettings

from .cold_start import ColdStart, cold_start
from config.names import DEVICE_RESOURCES
from .scaling import ScalingThresholds, default_thresholds, shutdown_timeout_seconds
from .weights import WeightsPlan, weights_plan

MODEL_KEYS = {field.alias or name for name, field in Model.model_fields.items()}
TOP_LEVEL_KEYS = {"spread_zones": "environment"}  # sizing settings that come from a stack-wide key

REPO = Path(__file__).resolve().parents[1]


SERVE_PORT = 8000  # vLLM's OpenAI server and Ray Serve's HTTP proxy
DEPLOYMENT_SURGE = 1  # a vLLM Deployment's RollingUpdate maxSurge: one new pod before an old one goes


@dataclass(frozen=True)
class ModelPlan:
    """One served model: its stack settings, the plan sizing made for it, and what the components deploy from it."""

    spec: Model
    plan: DeploymentPlan
    server: str  # "vllm" (vLLM's OpenAI server, GPUs) | "rayserve" (Ray Serve on KubeRay, Neuron, as the seeds do)
    server_args: tuple[str, ...]  # vLLM: `vllm serve` argv; Ray Serve: the same flags, for the record (plan.json)
    engine_settings: EngineSettings | None  # Ray Serve: what the serve app builds vLLM from
    rollout_surge: int  # replicas an update runs beside the old ones
    node_limits: dict[str, str]  # Karpenter limits: the nodes that max replicas plus the surge need, and no more
    startup_seconds: int  # the startup probe's budget: weight load and engine start (Neuron: compile), cold_start's
    scaling: ScalingThresholds | None  # the autoscaler's targets, when replicas.max > replicas.min
    weights: WeightsPlan  # the S3 weights cache or the Hub (plan/weights.py)
    cold_start: ColdStart  # seconds per phase from nothing to the first token (plan/cold_start.py)
    routing_policy: str = "round_robin"  # how the model's router picks a replica (routing_policy below)

    @property
    def autoscaled(self) -> bool:
        return self.scaling is not None

    @property
    def scales_to_zero(self) -> bool:
        """replicas.min 0 on vLLM: the KEDA HTTP add-on holds requests and wakes it (components/scale_to_zero.py).
        Ray Serve on Neuron scales its own replicas (min_replicas 0) behind its proxy on the head."""
        return self.spec.replicas.min == 0 and self.server == "vllm"

    @property
    def wake_s(self) -> int:
        """How long a request may wait for a replica before its reply starts: the cold-start budget (nothing to the
        first token) where the model scales to zero, else 0. The interceptor, the chat UI and the benchmark wait this
        long on top of their own timeouts."""
        return self.cold_start.total_s if self.scales_to_zero else 0

    def client_timeout_s(self, reply_s: int) -> int:
        """A client's timeout for one request whose reply may take `reply_s` once a replica serves: plus the wake."""
        return reply_s + self.wake_s

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def namespace(self) -> str:
        return self.spec.name

    @property
    def pool(self) -> str:
        """The model's own NodePool (limited to its instance type), named after it."""
        return self.spec.name

    @property
    def endpoint(self) -> str:
        """The in-cluster OpenAI base URL: the model's Service, or KubeRay's `<name>-serve-svc` for Ray Serve."""
        service = self.name if self.server == "vllm" else f"{self.name}-serve-svc"
        return f"http://{service}.{self.namespace}.svc.cluster.local:{SERVE_PORT}/v1"


def _neuron_settings(model: Model, engine_args: tuple[str, ...]) -> EngineSettings:
    """The serve app's settings, read off the planner's vllm-neuron arguments (one source for both)."""
    flags = _plan_flags(engine_args)
    return EngineSettings(
        model=model.model, served_model_name=model.model, max_model_len=int(flags["max-model-len"]),
        max_num_seqs=int(flags["max-num-seqs"]), tensor_parallel_size=int(flags["tensor-parallel-size"]),
        # vllm-neuron sets block_size = max_model_len itself without prefix caching (vllm_neuron/platform.py); the
        # planner leaves out --block-size, which vLLM's CLI caps at 256, and the settings say what the plugin does.
        dtype=flags["dtype"], block_size=int(flags["max-model-len"]),
        enable_prefix_caching="--no-enable-prefix-caching" not in engine_args,
    )


# What a cache_aware model's `vllm serve` adds: vllm-router 0.1.17's cache_aware reads the prompt's tokens from the
# replica's /v1/chat/completions/render, which vLLM 0.32 serves only with --enable-scale-out (a 403 otherwise, and the
# router then routes without prefix matching; `make ab-routing` runs the engines with it too).
CACHE_AWARE_SERVER_FLAGS = ("--enable-scale-out",)


def routing_policy(model: Model, server: str) -> str:
    """The stack key `routing`, else cache_aware where a vLLM model may run more than one replica (multi-turn chats
    and shared system prompts go back to the replica whose prefix cache holds them), else round_robin: one replica
    leaves nothing to choose, and Ray Serve's own proxy picks the replica (the router only chooses a Serve proxy). A
    vLLM model that scales to zero is reached through one URL, the KEDA interceptor's (components/scale_to_zero.py),
    which spreads over its replicas itself: round_robin there too."""
    if model.routing:
        return model.routing
    return ("cache_aware" if server == "vllm" and model.replicas.max > 1 and model.replicas.min > 0
            else "round_robin")


def _derived(model: Model, planned: DeploymentPlan, cache_enabled: bool = False) -> ModelPlan:
    server = "rayserve" if planned.vendor == "neuron" else "vllm"
    weights = weights_plan(model.model, model.revision, server, cache_enabled)
    # A RayService (upgradeStrategy NewCluster) starts a whole second cluster of min replicas for an upgrade.
    surge = max(1, model.replicas.min) if server == "rayserve" else DEPLOYMENT_SURGE
    inst = catalog.instance(planned.instance_type)
    nodes = fleet_nodes(model.replicas.max + surge, planned.replicas_per_node, planned.spread_zones)
    limits = {DEVICE_RESOURCES[planned.vendor]: str(nodes * inst.count), "cpu": str(nodes * inst.vcpu),
              "memory": f"{nodes * inst.memory_gib}Gi"}
    budget = cold_start(planned.vendor, server, planned.checkpoint_gib, planned.tensor_parallel_size, weights.source,
                        inst.vcpu, inst.memory_gib)
    if server == "vllm":
        # --shutdown-timeout: on SIGTERM (scale-down, rollout, drain) finish in-flight requests instead of aborting
        routed = CACHE_AWARE_SERVER_FLAGS if routing_policy(model, server) == "cache_aware" else ()
        args = (*weights.model_args(), "--host", "0.0.0.0", "--port", str(SERVE_PORT),
                "--shutdown-timeout", str(shutdown_timeout_seconds()), *routed, *planned.engine_args,
                *model.extra_engine_args)
        settings = None
    else:
        args, settings = planned.engine_args, _neuron_settings(model, planned.engine_args)
    scaling = None
    if model.replicas.max > model.replicas.min:
        kv_tokens = getattr(planned.memory, "kv_cache_tokens", 0) or 0
        default = default_thresholds(planned.concurrency_per_replica, planned.max_model_len, kv_tokens)
        overrides = {k: v for k, v in model.autoscaling.model_dump().items() if v is not None}
        scaling = ScalingThresholds(**{**default.__dict__, **overrides})
    return ModelPlan(spec=model, plan=planned, server=server, server_args=tuple(args), engine_settings=settings,
                     rollout_surge=surge, node_limits=limits, startup_seconds=budget.startup_probe_s,
                     scaling=scaling, weights=weights, cold_start=budget, routing_policy=routing_policy(model, server))


def _key(i: int, field: str | None = None) -> str:
    return f"{PROJECT}:models[{i}]" + (f".{field}" if field else "")


# --- extraEngineArgs: flags the plan or the server already set ---------------------------------------------------
# The stack key that sets each flag the planner writes, from the settings' one description (sizing/settings.py).
PLAN_FLAG_KEYS: dict[str, str] = ENGINE_FLAG_KEYS
# Where the plan takes the flags no key sets directly.
PLAN_FLAG_HINTS = {
    "block-size": "one block of maxModelLen per sequence on Neuron; remove it",
    "enable-prefix-caching": "off on Neuron, whose KV cache is contiguous; remove it",
}
# vLLM's short spellings of those flags (vllm/engine/arg_utils.py: -tp, -q, ...).
FLAG_ALIASES = {"tp": "tensor-parallel-size", "q": "quantization"}


def flag_name(arg: str) -> str | None:
    """The long name of the flag in one argv item, as vLLM's parser resolves it, or None for a value.

    '--tensor_parallel_size=4' -> 'tensor-parallel-size' (vLLM accepts underscores), '-tp' -> 'tensor-parallel-size',
    '--no-enable-prefix-caching' -> 'enable-prefix-caching' (the negative form of a boolean flag).
    """
    if not arg.startswith("-") or arg == "-" or arg[1:2].isdigit() or arg[1:2] == ".":
        return None  # a value (including negative numbers)
    name = arg.lstrip("-").split("=", 1)[0].replace("_", "-")
    name = name.split(".", 1)[0]  # --compilation-config.level=3 sets part of --compilation-config
    if not arg.startswith("--"):
        return FLAG_ALIASES.get(name, name)
    if name.startswith("no-"):
        name = name[3:]
    return name


def _plan_flags(engine_args: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Flag name -> the value the plan gives it ('' for a switch)."""
    out: dict[str, str] = {}
    args = list(engine_args)
    for n, arg in enumerate(args):
        name = flag_name(arg)
        if name is None:
            continue
        if "=" in arg:
            out[name] = arg.split("=", 1)[1]
        elif n + 1 < len(args) and flag_name(args[n + 1]) is None:
            out[name] = args[n + 1]
        else:
            out[name] = arg
    return out


def check_extra_engine_args(model: Model, i: int, engine_args: tuple[str, ...] | list[str], server: str) -> None:
    """One line naming `extraEngineArgs` when it repeats a flag the plan or the server sets (the last one would
    win in vLLM, silently undoing the sizing), or when the server kind cannot take it."""
    extra = list(model.extra_engine_args)
    if not extra:
        return
    where = _key(i, "extraEngineArgs")
    if server != "vllm":
        raise ConfigError(f"{where}: not deployed with Ray Serve on Neuron (its engine is built from the plan); "
                          "remove it, or use the stack keys (maxModelLen, tensorParallelSize, dtype, ...)")
    for arg in extra:
        if arg.startswith("-") and (" " in arg.split("=", 1)[0]):
            raise ConfigError(f"{where}: {arg!r} holds a space; give a flag and its value as two items "
                              "(['--flag', 'value']) or as one ('--flag=value')")
    planned = _plan_flags(engine_args)
    for arg in extra:
        name = flag_name(arg)
        if name is None:
            continue
        if name == "model":
            raise ConfigError(f"{where}: --model is set by the model server (model: {model.model}); set model instead")
        if name in SERVER_FLAGS:
            raise ConfigError(f"{where}: --{name} is set by the model server ({SERVER_FLAGS[name]}); remove it")
        if name in planned:
            key = PLAN_FLAG_KEYS.get(name)
            value = planned[name]
            if key:
                raise ConfigError(f"{where}: --{name} is set by the plan ({key}: {value}); set {key} instead")
            hint = PLAN_FLAG_HINTS.get(name, "derived from the model's other keys; remove it")
            raise ConfigError(f"{where}: --{name} is set by the plan ({value}: {hint})")


# --- sizing errors to stack keys --------------------------------------------------------------------------------


def _blamed_key(exc: SizingError, model: Model, i: int) -> str:
    """The stack key a sizing error is about: the error's own key when sizing names one, else the pinned instance
    type, else the model."""
    key_id = getattr(exc, "key", None)
    names = getattr(sizing_errors, "STACK_NAMES", {})
    if key_id:
        name = names.get(key_id, key_id)
        if key_id in TOP_LEVEL_KEYS:
            return f"{PROJECT}:{TOP_LEVEL_KEYS[key_id]}"
        if name.split(".", 1)[0] in MODEL_KEYS:
            return _key(i, name)
    return _key(i, "instanceType" if model.instance_type else None)


def architecture(model: Model, i: int) -> Architecture:
    try:
        if model.config:
            path = Path(model.config)
            cfg = catalog.load_config_file(path if path.is_absolute() else REPO / path)
        else:
            cfg, _ = catalog.load_model_config(model.model)
        return from_config(cfg, model.model)
    except SizingError as exc:
        raise ConfigError(f"{_key(i, 'config' if model.config else 'model')}: {exc}") from None


def spread_zones(config: StackConfig) -> int:
    """prod spreads each model's replicas over the stack's zones (at least two replicas on two nodes); dev does not."""
    if config.environment != "prod":
        return 1
    zone_ids = getattr(config.network, "zone_ids", None)
    return len(zone_ids) if zone_ids else config.network.availability_zones


def plan_model(model: Model, i: int, zones: int = 1, vllm_version: str | None = None,
               cache_enabled: bool = False) -> ModelPlan:
    """`vllm_version`: the engine's line when the image is not the EKS one (SageMaker's LMI container);
    `cache_enabled`: the EKS stack's weightsCache.enabled (vLLM then loads from its S3 weights cache)."""
    arch = architecture(model, i)
    try:
        check_context(arch, model.max_model_len)
    except SizingError as exc:
        raise ConfigError(f"{_key(i, 'maxModelLen')}: {exc}") from None
    # Every setting a model key sets (sizing/settings.py), then the stack-wide ones.
    given = {s.key: stack_value(model, s) for s in SETTINGS if s.stack and s.key not in ("model", "config")}
    if vllm_version:
        given["vllm_version"] = vllm_version
    workload = Workload(model=model.model, arch=arch, **given, spread_zones=zones)
    try:
        planned = _derived(model, plan(workload), cache_enabled)
    except SizingError as exc:
        raise ConfigError(f"{_blamed_key(exc, model, i)}: {exc}") from None
    check_extra_engine_args(model, i, planned.plan.engine_args, planned.server)
    if planned.server != "vllm" and model.routing == "cache_aware":
        raise ConfigError(f"{_key(i, 'routing')}: cache_aware reads the prompt's tokens from the replica's "
                          "/v1/chat/completions/render, which the Ray Serve app on Neuron does not serve; use "
                          "round_robin, power_of_two, consistent_hash or random")
    if planned.scales_to_zero and model.routing == "cache_aware":
        raise ConfigError(f"{_key(i, 'routing')}: cache_aware needs replicas.min >= 1; a model that scales to zero is "
                          "reached through one URL, the KEDA HTTP add-on's interceptor, so its router has no replica "
                          "to choose; remove routing or use round_robin")
    return planned


def plan_models(config: StackConfig) -> list[ModelPlan]:
    """Every model of the stack, in stack-file order (prod spreads replicas over zones)."""
    zones = spread_zones(config)
    return [plan_model(m, i, zones, cache_enabled=config.weights_cache.enabled) for i, m in enumerate(config.models)]
