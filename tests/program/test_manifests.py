"""Every object the preview writes validates: core kinds against the strict schemas of the cluster's Kubernetes
version, NodePool/EC2NodeClass (and RayService) against the upstream CRDs with unknown fields rejected, and Helm
values against the upstream chart's values.yaml."""

from __future__ import annotations


from preview import render
from tests.validation import SHARED, require_shared, unknown_helm_values, validate_manifest

CHART_VALUES = {
    "oci://public.ecr.aws/karpenter/karpenter": "karpenter-1.14.1.values.yaml",
    "oci://public.ecr.aws/karpenter/karpenter-crd": "karpenter-crd-1.14.1.values.yaml",
    "nvidia-device-plugin": "nvidia-device-plugin-0.18.2.values.yaml",
    "oci://public.ecr.aws/neuron/neuron-helm-chart": "neuron-helm-chart-1.9.0.values.yaml",
    "kuberay-operator": "kuberay-operator-1.7.0.values.yaml",
    "open-webui": "open-webui-16.0.0.values.yaml",
    "kube-prometheus-stack": "kube-prometheus-stack-88.5.3.values.yaml",
    "keda": "keda-2.20.2.values.yaml",
    "keda-add-ons-http": "keda-add-ons-http-0.15.0.values.yaml",
    # ../shared/charts has no dcgm-exporter values.yaml yet: test_operate.py checks these values against the
    # upstream file where a copy exists; here the chart is only required to be pinned.
    "dcgm-exporter": None,
}


def test_every_manifest_validates(config, manifests):
    require_shared()
    version = config.cluster.kubernetes_version
    assert manifests
    failures = {}
    for m in manifests:
        errors = validate_manifest(m, SHARED / "crds", version)
        if errors:
            failures[f"{m['kind']}/{m['metadata'].get('name')}"] = errors
    assert not failures, failures


def test_custom_resources_are_checked_against_the_crds(manifests):
    require_shared()
    kinds = {m["kind"] for m in manifests}
    assert {"NodePool", "EC2NodeClass"} <= kinds
    pool = next(m for m in manifests if m["kind"] == "NodePool")
    broken = {**pool, "spec": {**pool["spec"], "disruption": {**pool["spec"]["disruption"], "consolidateAftr": "1m"}}}
    assert validate_manifest(broken, SHARED / "crds")  # an unknown field is an error, so the check can fail


def test_helm_values_are_known_to_the_upstream_charts(run):
    require_shared()
    releases = render.helm_releases(run)
    assert releases
    for rel in releases:
        if CHART_VALUES[rel["chart"]] is None:
            assert rel["version"]
            continue
        upstream = SHARED / "charts" / CHART_VALUES[rel["chart"]]
        assert upstream.exists(), rel["chart"]
        assert unknown_helm_values(rel["values"], upstream) == [], rel["release"]
        assert rel["version"] and rel["version"] in upstream.name  # the pinned version is the one we checked
