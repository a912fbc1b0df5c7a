"""Names the project owns, and the AWS limits the stack name must fit: one place for config and components.

A model's `name` becomes a Kubernetes namespace, a NodePool and the server's Deployment/RayService; the stack name
becomes the EKS cluster, the SQS interruption queue and part of IAM role and policy names. Both are checked when the
stack file is loaded, before any resource is registered, so a clash fails in one line instead of half-way through
`pulumi up`.
"""

from __future__ import annotations

import re

from plan import names as _names  # a leaf module: no project imports

# Every name a model may not take, with what already uses it. The project's own names come from plan/names.py
# (where components take them from).
RESERVED_NAMES: dict[str, str] = {
    # Namespaces Kubernetes and EKS own (the kube- prefix is reserved for Kubernetes as a whole, see below).
    "default": "the Kubernetes default namespace",
    _names.KUBE_SYSTEM: "the Kubernetes system namespace (Karpenter, device plugins, CoreDNS)",
    "kube-public": "a Kubernetes system namespace",
    "kube-node-lease": "a Kubernetes system namespace",
    _names.CLOUDWATCH_NAMESPACE: "the namespace of the CloudWatch observability add-on",
    # Namespaces the project's Helm releases and components use.
    _names.CHAT_UI_NAMESPACE: "the chat UI's namespace (Open WebUI or Gradio)",
    _names.KUBERAY_NAMESPACE: "the KubeRay operator's namespace",
    "karpenter": "Karpenter (its Helm releases and service account)",
    _names.MONITORING_NAMESPACE: "the monitoring namespace (kube-prometheus-stack, DCGM exporter)",
    _names.KEDA_NAMESPACE: "KEDA's namespace (the autoscaler of vLLM models)",
    _names.ROUTER_NAMESPACE: "the router's namespace (the stack's one OpenAI endpoint)",
    # Node pools and node classes.
    _names.CPU_POOL: "the CPU NodePool and EC2NodeClass (chat UI, Ray heads)",
    _names.SYSTEM_POOL: f"the managed system node group ({_names.POOL_LABEL}: {_names.SYSTEM_POOL})",
    **{vendor: f"the {vendor} EC2NodeClass" for vendor in _names.VENDORS},
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
