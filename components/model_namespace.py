"""A served model's namespace and its Hugging Face token Secret (one key name, read by every server kind)."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from config.names import TOKEN_KEY, TOKEN_SECRET


def token_env() -> dict:
    return {"name": TOKEN_KEY, "valueFrom": {"secretKeyRef": {"name": TOKEN_SECRET, "key": TOKEN_KEY}}}


def namespace_with_token(name: str, namespace: str, hf_token: pulumi.Input[str], opts: pulumi.ResourceOptions):
    """The namespace (baseline pod security) and the token Secret, from `pulumi config set --secret hfToken`."""
    ns = k8s.core.v1.Namespace(
        f"{name}-ns", metadata={"name": namespace, "labels": {"pod-security.kubernetes.io/enforce": "baseline"}},
        opts=opts,
    )
    secret = k8s.core.v1.Secret(
        f"{name}-token", metadata={"name": TOKEN_SECRET, "namespace": namespace}, type="Opaque",
        string_data={TOKEN_KEY: pulumi.Output.secret(hf_token)},
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[ns])),
    )
    return ns, secret


def disruption_budget(selector: dict[str, str]) -> dict:
    """Voluntary evictions (kubectl drain, Karpenter's expiry and consolidation) take one model pod at a time.
    `maxUnavailable: 1`, not `minAvailable: <replicas>`: with one replica the latter forbids every eviction, so a drain
    never ends and node expiry turns into a forced kill when the NodePool's terminationGracePeriod runs out."""
    return {"maxUnavailable": 1, "selector": {"matchLabels": selector}}
