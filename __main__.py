"""llm-eks: stack config -> sizing plans -> network -> cluster -> Karpenter -> accelerator plugins -> model servers
-> chat UI -> observability."""

import pulumi
import pulumi_aws as aws

from components.cluster import Cluster, ClusterArgs
from components.gradio_ui import GradioChat
from components.karpenter import Karpenter, KarpenterArgs
from components.kuberay import KubeRayOperator
from components.model_server import ModelServer, ModelServerArgs
from components.network import Network, NetworkArgs
from components.neuron_device_plugin import NeuronDevicePlugin
from components.nvidia_device_plugin import NvidiaDevicePlugin
from components.observability import CloudWatchObservability
from components.open_webui import OpenWebUI
from components.ray_service import LLMRayService, RayServiceArgs
from components.scheduling import CPU_POOL
from config import ConfigError, load_from_pulumi
from config.planning import plan_models

try:
    config = load_from_pulumi()
    plans = plan_models(config)  # every model placed, or one line naming the key, before any resource exists
except ConfigError as exc:
    raise pulumi.RunError(str(exc)) from None

stack = pulumi.get_stack()
cluster_name = stack
region = pulumi.Config("aws").get("region") or "us-east-1"
account_id = aws.get_caller_identity().account_id
hf_token = pulumi.Config().require_secret("hfToken")
tags = {"llm-eks/stack": stack, "llm-eks/environment": config.environment, **config.tags}
vendors = {p.plan.vendor for p in plans}

network = Network("network", NetworkArgs(cluster_name, config.network, region, tags))
cluster = Cluster("cluster", ClusterArgs(
    cluster_name=cluster_name, config=config.cluster, system_nodes=config.system_nodes, vpc_id=network.vpc_id,
    private_subnet_ids=network.private_subnet_ids, public_subnet_ids=network.public_subnet_ids, tags=tags,
))
karpenter = Karpenter("karpenter", KarpenterArgs(
    cluster_name=cluster_name, region=region, account_id=account_id, plans=plans, provider=cluster.provider,
    cluster=cluster.eks, system_nodes=cluster.system_nodes, pod_identity_agent=cluster.pod_identity_agent,
    coredns=cluster.coredns, tags=tags,
))
on_system_nodes = pulumi.ResourceOptions(depends_on=[cluster.system_nodes])
nvidia = NvidiaDevicePlugin("nvidia-device-plugin", cluster.provider, on_system_nodes) if "nvidia" in vendors else None
neuron = NeuronDevicePlugin("neuron-device-plugin", cluster.provider, on_system_nodes) if "neuron" in vendors else None
kuberay = KubeRayOperator("kuberay", cluster.provider, on_system_nodes) if any(p.server == "rayserve" for p in plans) else None

endpoints: dict[str, pulumi.Output[str]] = {}
servers: list[pulumi.Resource] = []
for p in plans:
    if p.server == "vllm":
        server = ModelServer(p.name, ModelServerArgs(
            model=p, hf_token=hf_token, provider=cluster.provider, node_pool=karpenter.node_pools[p.name],
            device_plugin=nvidia.release if nvidia else None,
        ))
    else:
        server = LLMRayService(p.name, RayServiceArgs(
            model=p, hf_token=hf_token, provider=cluster.provider, node_pool=karpenter.node_pools[p.name],
            operator=kuberay.release, device_plugin=neuron.release,
        ))
    endpoints[p.name] = server.endpoint
    servers.append(server)

ui_deps = [karpenter.node_pools[CPU_POOL], cluster.ebs_csi, *servers]
chat_url = None
if config.chat_ui.kind == "open-webui":
    chat_url = OpenWebUI("open-webui", pulumi.Output.all(*endpoints.values()), cluster.provider, ui_deps).url
elif config.chat_ui.kind == "gradio":
    first = plans[0]
    chat_url = GradioChat("gradio", endpoints[first.name], first.spec.model, cluster.provider, ui_deps).url

if config.observability.cloudwatch:
    CloudWatchObservability("cloudwatch", cluster_name, [cluster.system_nodes, cluster.pod_identity_agent], tags)

pulumi.export("cluster_name", cluster_name)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("endpoints", endpoints)
pulumi.export("chat_ui", chat_url)
pulumi.export("instances", {p.name: p.plan.instance_type for p in plans})
pulumi.export("hourly_usd", {p.name: p.plan.hourly_usd for p in plans})
