"""Names the project owns, and the AWS limits the stack name must fit: one place for config, plan and components.

Every name that ties one component to another is defined here once: node labels and taints, pool and node-class
names, namespaces, the storage class, annotations. Components spell none of these themselves, and the same module
reserves them, so that no model can take one. It imports nothing from the project: every layer may use it.

A model's `name` becomes a Kubernetes namespace, a NodePool and the server's Deployment/RayService; the stack name
becomes the EKS cluster, the SQS interruption queue and part of IAM role and policy names. Both are checked when the
stack file is loaded, before any resource is registered, so a clash fails in one line instead of half-way through
`pulumi up`.
"""

from __future__ import annotations

import re

# --- node labels -----------------------------------------------------------------------------------------------
POOL_LABEL = "llm-eks/pool"  # system node group and CPU NodePool: which kind of node
ACCELERATOR_LABEL = "llm-eks/accelerator"  # accelerator NodePools: nvidia | neuron (device plugins select on it)
MODEL_LABEL = "llm-eks/model"  # a model's NodePool nodes and pods
NODEPOOL_LABEL = "karpenter.sh/nodepool"  # Karpenter's well-known label: the NodePool that launched the node
ZONE_LABEL = "topology.kubernetes.io/zone"  # Kubernetes' well-known zone label
# The NVIDIA device plugin chart's own required node affinity (values.yaml, 0.18.2): NFD's PCI label, or this one.
NVIDIA_GPU_PRESENT_LABEL = "nvidia.com/gpu.present"

# --- pools and node classes --------------------------------------------------------------------------------------
SYSTEM_POOL = "system"  # the managed node group (Karpenter, CoreDNS, operators)
CPU_POOL = "cpu"  # Karpenter's CPU NodePool and EC2NodeClass (UIs, Ray heads)
VENDORS = ("nvidia", "neuron")  # one EC2NodeClass per accelerator vendor, named after it
SYSTEM_NODE_LABELS = {POOL_LABEL: SYSTEM_POOL}

# --- taints ------------------------------------------------------------------------------------------------------
NVIDIA_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
NEURON_TAINT = {"key": "aws.amazon.com/neuron", "value": "true", "effect": "NoSchedule"}
TAINTS = {"nvidia": NVIDIA_TAINT, "neuron": NEURON_TAINT}

# --- schedulers and device resources -----------------------------------------------------------------------------
NEURON_SCHEDULER = "my-scheduler"  # neuron-helm-chart 1.9.0: scheduler.customScheduler.fullnameOverride
DEVICE_RESOURCES = {"nvidia": "nvidia.com/gpu", "neuron": "aws.amazon.com/neuron"}

# --- namespaces --------------------------------------------------------------------------------------------------
KUBE_SYSTEM = "kube-system"  # Karpenter, the device plugins, CoreDNS
KUBERAY_NAMESPACE = "kuberay-system"
CHAT_UI_NAMESPACE = "chat-ui"  # Open WebUI or the Gradio app
CLOUDWATCH_NAMESPACE = "amazon-cloudwatch"  # the CloudWatch observability add-on's own
MONITORING_NAMESPACE = "monitoring"  # Prometheus, Grafana, the DCGM exporter, the monitors
KEDA_NAMESPACE = "keda"  # the autoscaler
ROUTER_NAMESPACE = "llm-router"  # the stack's one OpenAI endpoint and each model's router (components/router.py)

# --- the model namespace's Hugging Face token -------------------------------------------------------------------
TOKEN_SECRET = "hf-token"  # the Secret in each model's namespace (the model servers and the benchmark Job read it)
TOKEN_KEY = "HF_TOKEN"  # the variable huggingface_hub reads; the same name from Secret key to container env

# --- storage, annotations ----------------------------------------------------------------------------------------
STORAGE_CLASS = "gp3-encrypted"  # the default StorageClass (Open WebUI's volume)
DO_NOT_DISRUPT = {"karpenter.sh/do-not-disrupt": "true"}  # never evicted by Karpenter: only the Ray head (CPU pool)

# Every name a model may not take, with what already uses it.
RESERVED_NAMES: dict[str, str] = {
    # Namespaces Kubernetes and EKS own (the kube- prefix is reserved for Kubernetes as a whole, see below).
    "default": "the Kubernetes default namespace",
    KUBE_SYSTEM: "the Kubernetes system namespace (Karpenter, device plugins, CoreDNS)",
    "kube-public": "a Kubernetes system namespace",
    "kube-node-lease": "a Kubernetes system namespace",
    CLOUDWATCH_NAMESPACE: "the namespace of the CloudWatch observability add-on",
    # Namespaces the project's Helm releases and components use.
    CHAT_UI_NAMESPACE: "the chat UI's namespace (Open WebUI or Gradio)",
    KUBERAY_NAMESPACE: "the KubeRay operator's namespace",
    "karpenter": "Karpenter (its Helm releases and service account)",
    MONITORING_NAMESPACE: "the monitoring namespace (kube-prometheus-stack, DCGM exporter)",
    KEDA_NAMESPACE: "KEDA's namespace (the autoscaler of vLLM models)",
    ROUTER_NAMESPACE: "the router's namespace (the stack's one OpenAI endpoint)",
    # Node pools and node classes.
    CPU_POOL: "the CPU NodePool and EC2NodeClass (chat UI, Ray heads)",
    SYSTEM_POOL: f"the managed system node group ({POOL_LABEL}: {SYSTEM_POOL})",
    **{vendor: f"the {vendor} EC2NodeClass" for vendor in VENDORS},
}
RESERVED_PREFIXES: dict[str, str] = {
    "kube-": "Kubernetes reserves namespaces that start with kube-",
}


def reserved_reason(name: str) -> str | None:
    """Why `name` cannot name a model, or None when it is free."""
    if name in RESERVED_NAMES:
        return RESERVED_NAMES[name]
    for prefix, why in RESERVED_PREFIXES.items():
        if name.startswith(prefix):
            return why
    return None


# --- the stack name -------------------------------------------------------------------------------------------
# AWS names the program derives from the stack name (the cluster name is the stack name), with AWS's length limit
# for each kind of name. The longest derived name decides how long a stack name may be.
KARPENTER_NODE_ROLE = "KarpenterNodeRole-{stack}"  # upstream's RoleName (components/data/karpenter-iam.json)
KARPENTER_LONGEST_POLICY = "KarpenterControllerResourceDiscoveryPolicy-{stack}"  # the longest ManagedPolicyName
DERIVED_NAMES: tuple[tuple[str, str, int], ...] = (
    # (what, pattern, AWS limit in characters)
    ("IAM role name", KARPENTER_NODE_ROLE, 64),
    ("IAM policy name", KARPENTER_LONGEST_POLICY, 128),
    ("SQS queue name", "{stack}", 80),
    ("EKS cluster name", "{stack}", 100),
)
# EKS cluster names: a letter or digit first, then letters, digits, '-' and '_'; SQS queue names allow the same.
# (Pulumi also allows '.' in stack names; neither EKS nor SQS does.)
STACK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def max_stack_name_length() -> int:
    return min(limit - len(pattern.replace("{stack}", "")) for _, pattern, limit in DERIVED_NAMES)


def stack_name_problem(stack: str) -> str | None:
    """What is wrong with `stack` as a cluster/queue/role name part, or None."""
    if not STACK_NAME.match(stack):
        return ("must start with a letter or digit and hold only letters, digits, '-' and '_' "
                "(it names the EKS cluster and the SQS queue)")
    for what, pattern, limit in DERIVED_NAMES:
        derived = pattern.replace("{stack}", stack)
        if len(derived) > limit:
            example = pattern.replace("{stack}", "<stack>")
            return (f"{len(stack)} characters is too long: the {what} {example} would be {len(derived)} characters, "
                    f"AWS allows {limit}; use a stack name of at most {max_stack_name_length()} characters")
    return None


# --- engine flags the vLLM server component sets itself (components/model_server.py) ---------------------------
# The model is vLLM's positional argument; host and port are what the Service and probes point at.
SERVER_FLAGS: dict[str, str] = {
    "model": "from the model key",
    "host": "0.0.0.0",
    "port": "8000, where the Service and probes point",
    "shutdown-timeout": "what the pod's grace period leaves for in-flight requests at SIGTERM",
    "enable-scale-out": "on for cache_aware routing: the router reads prompt tokens from /v1/chat/completions/render",
    "load-format": "runai_streamer when the weights come from the S3 cache (weightsCache.enabled)",
    "served-model-name": "the model key, the name clients and the router send",
    "revision": "from the revision key",
}
