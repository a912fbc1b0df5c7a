"""How a model scales and how a pod stops, decided once from the plan: the autoscaler's per-replica thresholds (from
the KV-cache tokens sizing predicted, with stack-file overrides) and the shutdown timings the Deployment, vLLM's
`--shutdown-timeout` and the autoscaler's scale-down all rely on."""

from __future__ import annotations

import math
from dataclasses import dataclass

# The model server's pod: the Service drops a terminating pod's endpoint during the preStop sleep, then vLLM gets
# SIGTERM and waits for its in-flight requests, all inside the grace period.
TERMINATION_GRACE_SECONDS = 120
PRE_STOP_SECONDS = 15
SHUTDOWN_MARGIN_SECONDS = 15  # for the process to exit before the kubelet's SIGKILL


def shutdown_timeout_seconds() -> int:
    """vLLM's `--shutdown-timeout` (0.19.1 to 0.32.0, default 0: SIGTERM aborts in-flight requests; > 0: the engine
    waits up to that long for them, vllm/entrypoints/launcher.py, launchers/launcher.py from 0.32): what the grace period leaves after the preStop sleep, less
    a margin: 120 - 15 - 15 = 90 s."""
    return TERMINATION_GRACE_SECONDS - PRE_STOP_SECONDS - SHUTDOWN_MARGIN_SECONDS


@dataclass(frozen=True)
class ScalingThresholds:
    """Per-replica targets; each becomes one autoscaler trigger (running may be None to leave it out)."""

    waiting_per_replica: float
    kv_cache_usage: float  # 0 < x <= 1
    running_per_replica: float | None = None

    def __post_init__(self) -> None:
        if self.waiting_per_replica <= 0:
            raise ValueError(f"waiting_per_replica must be > 0, got {self.waiting_per_replica}")
        if not 0 < self.kv_cache_usage <= 1:
            raise ValueError(f"kv_cache_usage is a fraction in (0, 1], got {self.kv_cache_usage}")
        if self.running_per_replica is not None and self.running_per_replica <= 0:
            raise ValueError(f"running_per_replica must be > 0, got {self.running_per_replica}")


def default_thresholds(concurrency_per_replica: int, max_model_len: int, kv_cache_tokens: int) -> ScalingThresholds:
    """Defaults from what sizing predicted for one replica: C requests of max_model_len L in a KV cache of K tokens.

    - running: C, the load a replica was sized for;
    - waiting: half of C (at least 1): a queue of half a replica's planned load, per replica;
    - KV usage: C x L / K, the share of the cache the planned load takes at full length, kept within [0.5, 0.85]:
      real requests are shorter, so crossing it means more than planned; never above 0.85, to scale before vLLM
      preempts.
    """
    c = max(1, concurrency_per_replica)
    share = c * max_model_len / kv_cache_tokens if kv_cache_tokens else 0.85
    return ScalingThresholds(waiting_per_replica=max(1, math.ceil(c / 2)),
                             kv_cache_usage=round(min(0.85, max(0.5, share)), 2), running_per_replica=c)
