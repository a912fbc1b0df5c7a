"""Every name that ties one component to another, defined once: node labels and taints, pool and node-class names,
namespaces, the storage class, annotations. Components spell none of these themselves; config/names.py reserves
them so that no model can take one.

A leaf module (no imports from the project), so config, plan and components can all use it.
"""

from __future__ import annotations

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
