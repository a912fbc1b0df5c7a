"""The host side of one replica: the pod's requests and limits, host memory while loading, the node's disk, how
many replicas share a node, and how many nodes a fleet needs. Allowances come from sizing/data/kubernetes.yaml."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import yaml

from . import catalog
from .architecture import Architecture
from .catalog import GIB, InstanceType
from .host_memory import gpu_host_memory, neuron_host_memory
from .weights import resolve_format, weight_bytes


@functools.cache
def k8s_allowances() -> dict[str, Any]:
    with open(catalog.DATA / "kubernetes.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@dataclass(frozen=True)
class PodResources:
    """Requests (and limits) of the model-server container, sized to fit the node."""

    accelerator_resource: str  # nvidia.com/gpu | aws.amazon.com/neuron
    accelerators: int
    cpu_millicores: int
    memory_mib: int  # request = limit (includes /dev/shm, which is memory-backed)
    shm_mib: int
    ephemeral_storage_gib: int

    def requests(self) -> dict[str, str]:
        return {
            "cpu": f"{self.cpu_millicores}m",
            "memory": f"{self.memory_mib}Mi",
            "ephemeral-storage": f"{self.ephemeral_storage_gib}Gi",
            self.accelerator_resource: str(self.accelerators),
        }

    def limits(self) -> dict[str, str]:
        # No CPU limit: CFS throttling stalls tokenization and the scheduler loop; memory is capped at the request.
        return {"memory": f"{self.memory_mib}Mi", self.accelerator_resource: str(self.accelerators)}

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests(), "limits": self.limits(), "shm": f"{self.shm_mib}Mi"}

    def summary(self) -> str:
        """One line for people: `cpu=6570m memory=25937Mi ephemeral-storage=9Gi nvidia.com/gpu=1; limits ...`."""
        req = " ".join(f"{k}={v}" for k, v in self.requests().items())
        lim = " ".join(f"{k}={v}" for k, v in self.limits().items())
        return f"{req}; limits {lim}; /dev/shm {self.shm_mib}Mi"


@dataclass(frozen=True)
class HostFit:
    """One replica's pod on one instance type at one tensor-parallel degree."""

    resources: PodResources
    host_needed_gib: float  # host memory the server needs while loading (Neuron: compiling), /dev/shm included
    disk_gib: int  # the node's root volume
    slots: int  # replicas a node holds
    problem: str | None  # why the node cannot host even one replica, or None


def fleet_nodes(replicas: int, per_node: int, zones: int = 1) -> int:
    """Nodes that `replicas` replicas need at `per_node` a node, spread evenly (maxSkew 1) over `zones` zones."""
    if replicas <= 0:
        return 0
    used = max(1, min(replicas, zones))
    base, extra = divmod(replicas, used)
    return sum(math.ceil((base + (1 if i < extra else 0)) / per_node) for i in range(used))


def checkpoint_bytes(arch: Architecture) -> float:
    """Bytes of the checkpoint files to download: the checkpoint's own format and dtype."""
    return weight_bytes(arch, resolve_format(arch, arch.torch_dtype))


def host_fit(inst: InstanceType, tp: int, checkpoint: float, arch: Architecture) -> HostFit:
    """Pod requests that fit the node, the host memory the server needs, the node disk, replicas per node, and a
    problem if any.

    A node holds as many replicas as both its accelerators and its memory allow; each gets an equal share of
    what the node can allocate (less DaemonSets), so a larger instance never offers a replica less.
    """
    k = k8s_allowances()
    accel = inst.accelerator
    neuron = accel.is_neuron
    devices = math.ceil(tp / accel.cores) if neuron else tp
    cpu_node = (inst.alloc_cpu_m - k["daemonset_reserve"]["cpu_m"]) * k["pod_share"]
    mem_node_mib = (inst.alloc_memory_mi - k["daemonset_reserve"]["memory_mi"]) * k["pod_share"]
    shm_gib = k["shm_gib"]["tp1" if tp == 1 else "tp_multi"]
    need = neuron_host_memory(checkpoint, shm_gib) if neuron else gpu_host_memory(arch, tp)
    host_needed = need.total_gib
    slots = max(1, min(inst.count // devices, int(mem_node_mib // (host_needed * 1024)), int(cpu_node // 2000)))
    ephemeral = math.ceil(checkpoint / GIB * (2 if neuron else 1) * 1.1 + k["ephemeral_extra_gib"])
    disk = k["os_disk_gib"] + k["image_disk_gib"]["neuron" if neuron else "nvidia"] + ephemeral * slots
    disk = int(math.ceil(disk / 10) * 10)
    resources = PodResources(
        accelerator_resource="aws.amazon.com/neuron" if neuron else "nvidia.com/gpu",
        accelerators=devices,
        cpu_millicores=int(cpu_node / slots // 10 * 10),
        memory_mib=int(mem_node_mib / slots),
        shm_mib=int(shm_gib * 1024),
        ephemeral_storage_gib=ephemeral,
    )
    problem = None
    if host_needed * 1024 > mem_node_mib:
        what = "compile" if neuron else "load"
        problem = (f"host memory: the server needs {host_needed:.1f} GiB to {what} {checkpoint / GIB:.1f} GiB of weights "
                   f"({need.describe()}), a pod on this node can have {mem_node_mib / 1024:.1f} GiB")
    elif cpu_node < 2000:
        problem = f"CPU: the server needs at least 2 cores, a pod on this node can have {cpu_node / 1000:.1f}"
    return HostFit(resources, host_needed, disk, slots, problem)
