"""target: eks (the default): stack config -> plan -> network -> cluster -> Karpenter -> accelerator plugins -> model
servers -> router (one OpenAI endpoint) -> chat UI -> observability. Every decision is in the plan (plan/); this module
only wires components to it."""

import pulumi
import pulumi_aws as aws

from components.autoscaling import Autoscaling, AutoscalingArgs, needed
from components.cluster import Cluster, ClusterArgs
from components.gradio_ui import GradioChat
from components.karpenter import Karpenter, KarpenterArgs
from components.kuberay import KubeRayOperator
from components.model_server import ModelServer, ModelServerArgs
from components.monitoring import Monitoring, MonitoringArgs, prometheus_url
from components.network import Network, NetworkArgs
from components.neuron_device_plugin import NeuronDevicePlugin
from components.nvidia_device_plugin import NvidiaDevicePlugin
from components.observability import CloudWatchObservability
from components.open_webui import OpenWebUI
from components.ray_service import LLMRayService, RayServiceArgs
from components.router import Router, RouterArgs
from components.weights_cache import WeightsAccess, WeightsBucket
from config import ConfigError, load_from_pulumi
from config.names import CPU_POOL
from plan.stack import plan_stack

try:
    config = load_from_pulumi()
    stack_plan = plan_stack(config)  # every model placed, or one line naming the key, before any resource exists
except ConfigError as exc:
    raise pulumi.RunError(str(exc)) from None

stack = pulumi.get_stack()
cluster_name = stack
region = pulumi.Config("aws").get("region") or "us-east-1"
account_id = aws.get_caller_identity().account_id
hf_token = pulumi.Config().require_secret("hfToken")
tags = {"llm-eks/stack": stack, "llm-eks/environment": config.environment, **config.tags}

network = Network("network", NetworkArgs(cluster_name, config.network, region, tags))
cluster = Cluster("cluster", ClusterArgs(
    cluster_name=cluster_name, config=config.cluster, system_nodes=config.system_nodes, vpc_id=network.vpc_id,
    private_subnet_ids=network.private_subnet_ids, public_subnet_ids=network.public_subnet_ids, tags=tags,
))
karpenter = Karpenter("karpenter", KarpenterArgs(
    cluster_name=cluster_name, region=region, account_id=account_id, stack=stack_plan, provider=cluster.provider,
    cluster=cluster.eks, system_nodes=cluster.system_nodes, pod_identity_agent=cluster.pod_identity_agent,
    coredns=cluster.coredns, tags=tags,
))
on_system_nodes = pulumi.ResourceOptions(depends_on=[cluster.system_nodes])
nvidia = NvidiaDevicePlugin("nvidia-device-plugin", cluster.provider, on_system_nodes) if "nvidia" in stack_plan.vendors else None
neuron = NeuronDevicePlugin("neuron-device-plugin", cluster.provider, on_system_nodes) if "neuron" in stack_plan.vendors else None
kuberay = KubeRayOperator("kuberay", cluster.provider, on_system_nodes) if stack_plan.needs_kuberay else None

# The S3 weights cache (issue 18): one bucket; each cached model's fill Job and Pod Identity roles sit with its server.
# The same bucket holds the Neuron models' compiled shapes (the compile cache, serving/compile_cache.py).
weights = None
if any(m.weights.cached or (m.server == "rayserve" and config.weights_cache.enabled) for m in stack_plan.models):
    weights = WeightsAccess(WeightsBucket("weights", tags), cluster_name,
                            depends_on=[cluster.eks, cluster.pod_identity_agent], tags=tags)

servers: dict[str, pulumi.Resource] = {}
for m in stack_plan.models:
    if m.server == "vllm":
        server = ModelServer(m.name, ModelServerArgs(
            model=m, hf_token=hf_token, provider=cluster.provider, node_pool=karpenter.node_pools[m.name],
            device_plugin=nvidia.release, weights=weights,
        ))
    else:
        server = LLMRayService(m.name, RayServiceArgs(
            model=m, hf_token=hf_token, provider=cluster.provider, node_pool=karpenter.node_pools[m.name],
            operator=kuberay.release, device_plugin=neuron.release, cache=weights,
        ))
    servers[m.name] = server

# Prometheus, Grafana, monitors and dashboards for every stack; KEDA where a vLLM model may scale.
monitoring = Monitoring("monitoring", MonitoringArgs(
    models=list(stack_plan.models), provider=cluster.provider,
    depends_on=[cluster.system_nodes, cluster.storage_class, cluster.coredns],  # its PVC needs the class
))
wake: list[pulumi.Resource] = []  # scale to zero: what a sleeping model's router needs to be ready
if needed(list(stack_plan.models)):
    wake = Autoscaling("autoscaling", AutoscalingArgs(
        models=list(stack_plan.models), provider=cluster.provider, prometheus_url=prometheus_url(),
        servers=servers, depends_on=[cluster.system_nodes, monitoring.release],
    )).wake

# One OpenAI endpoint for every model: a router per model picks the replica (plan/routing.py, components/router.py).
router = Router("router", RouterArgs(
    plan=stack_plan.router, models=list(stack_plan.models), provider=cluster.provider, servers=servers,
    monitoring=monitoring.release, depends_on=[cluster.system_nodes, *wake],
))

# Open WebUI's PVC needs the class
ui_deps = [karpenter.node_pools[CPU_POOL], cluster.storage_class, *servers.values(), router]
chat_url = None
if config.chat_ui.kind == "open-webui":
    chat_url = OpenWebUI("open-webui", stack_plan.chat_targets, cluster.provider, ui_deps).url
elif config.chat_ui.kind == "gradio":
    chat_url = GradioChat("gradio", stack_plan.chat_targets[0], cluster.provider, ui_deps).url

if config.observability.cloudwatch:
    CloudWatchObservability("cloudwatch", cluster_name, [cluster.system_nodes, cluster.pod_identity_agent], tags)

pulumi.export("cluster_name", cluster_name)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("openai_base_url", router.url)  # every model of the stack, by the model id a request names
pulumi.export("endpoints", {m.name: m.endpoint for m in stack_plan.models})
pulumi.export("chat_ui", chat_url)
pulumi.export("grafana", monitoring.grafana_service)
pulumi.export("prometheus_url", monitoring.prometheus_url)
pulumi.export("instances", {m.name: m.plan.instance_type for m in stack_plan.models})
pulumi.export("weights_bucket", weights.bucket.name if weights else None)
pulumi.export("hourly_usd", {m.name: m.plan.fleet_hourly_usd for m in stack_plan.models})
