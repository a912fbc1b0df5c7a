"""The S3 weights cache under the mocks (issue 18): one private, encrypted bucket that `pulumi destroy` empties; per
cached model a fill Job the server waits for; Pod Identity roles that reach one prefix each.

The IAM checks evaluate the policy documents with IAM's own matching rules (AWS IAM User Guide, "IAM JSON policy
elements: Resource": `*` matches any run of characters, `/` included; "Condition operators": StringLike), on requests
a server could make: its own weights, another model's, the bucket's root, a write, a delete.
"""

from __future__ import annotations

import fnmatch
import json


from components.weights_cache import FILL_SERVICE_ACCOUNT, SERVER_SERVICE_ACCOUNT
from preview import render
from preview.harness import read_stack_config, run_stack, stack_file

from .conftest import recorded

BUCKET = "aws:s3/bucket:Bucket"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
JOB = "kubernetes:batch/v1:Job"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def cached(plans):
    return [m for m in plans if m.weights.cached]


def eks(config) -> bool:
    """The weights cache is the EKS program's (a SageMaker stack copies its weights with its own Lambda)."""
    return getattr(config, "target", "eks") == "eks"


def allowed(document: dict, action: str, resource: str, prefix: str | None = None) -> bool:
    """Whether an identity policy allows one request (Allow statements only; these policies have no Deny)."""
    for s in document["Statement"]:
        assert s["Effect"] == "Allow"
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        if not any(fnmatch.fnmatchcase(action, a) for a in actions):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in resources):
            continue
        like = s.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
        if like is not None and (prefix is None or not any(fnmatch.fnmatchcase(prefix, p) for p in like)):
            continue
        assert set(s.get("Condition", {})) <= {"StringLike"}, s
        return True
    return False


def role_documents(run) -> dict[str, dict]:
    """Service account -> (namespace, its role's policy document), through the Pod Identity associations."""
    policies = {p.plain_inputs()["role"]: json.loads(p.plain_inputs()["policy"]) for p in run.by_type(ROLE_POLICY)}
    roles = {r.outputs["arn"]: r.outputs.get("id", r.name + "-id") for r in run.by_type("aws:iam/role:Role")}
    out = {}
    for a in run.by_type(ASSOCIATION):
        i = a.plain_inputs()
        role_id = roles.get(i["roleArn"])
        if role_id in policies:
            out[(i["namespace"], i["serviceAccount"])] = policies[role_id]
    return out


def test_every_stack_has_one_bucket_private_encrypted_and_destroyable(stack, config, plans, run):
    """GPU models' weights and Neuron models' compiled shapes share the stack's bucket."""
    if not eks(config):
        return
    bucket = run.one(BUCKET)
    assert bucket.plain_inputs()["forceDestroy"] is True  # `pulumi destroy` empties it, leaving nothing
    sse = run.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert sse.plain_inputs()["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] in ("AES256", "aws:kms")
    block = run.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").plain_inputs()
    assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                          "restrictPublicBuckets"))
    owner = run.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls").plain_inputs()
    assert owner["rule"]["objectOwnership"] == "BucketOwnerEnforced"  # ACLs off: no object can be made public
    policy = json.loads(run.one("aws:s3/bucketPolicy:BucketPolicy").plain_inputs()["policy"])
    assert not any(s["Effect"] == "Allow" for s in policy["Statement"])  # the bucket policy grants nothing
    assert run.exports["weights_bucket"] == bucket.outputs["bucket"]


def test_each_servers_role_reads_its_own_prefix_and_nothing_more(stack, config, plans, run):
    if not cached(plans) or not eks(config):
        return
    docs = role_documents(run)
    arn = run.one(BUCKET).outputs["arn"]
    for m in cached(plans):
        prefix = m.weights.prefix
        server, fill = docs[(m.namespace, SERVER_SERVICE_ACCOUNT)], docs[(m.namespace, FILL_SERVICE_ACCOUNT)]
        weights = f"{arn}/{prefix}/model-00001-of-00002.safetensors"
        other = f"{arn}/models/meta-llama/Llama-3.1-8B/main/model.safetensors"
        sibling = f"{arn}/{prefix}-other/config.json"  # a prefix that only starts like this one
        assert allowed(server, "s3:GetObject", weights)
        assert allowed(server, "s3:ListBucket", arn, prefix + "/")
        assert not allowed(server, "s3:GetObject", other) and not allowed(server, "s3:GetObject", sibling)
        assert not allowed(server, "s3:ListBucket", arn, "models/") and not allowed(server, "s3:ListBucket", arn)
        assert not any(allowed(server, a, weights) for a in ("s3:PutObject", "s3:DeleteObject", "s3:PutObjectAcl"))
        assert allowed(fill, "s3:PutObject", weights) and allowed(fill, "s3:AbortMultipartUpload", weights)
        assert not allowed(fill, "s3:PutObject", other) and not allowed(fill, "s3:PutObject", sibling)
        assert not allowed(fill, "s3:DeleteObject", weights) and not allowed(fill, "s3:PutBucketPolicy", arn)


def test_pods_use_the_service_accounts_the_roles_are_for_and_the_server_waits_for_the_fill(stack, config, plans, run, manifests):
    if not eks(config):
        return
    by_kind = {(m["kind"], m["metadata"].get("namespace"), m["metadata"]["name"]): m for m in manifests}
    for m in cached(plans):
        deployment = by_kind[("Deployment", m.namespace, m.name)]
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert pod["serviceAccountName"] == SERVER_SERVICE_ACCOUNT
        assert container["args"][0] == f"s3://$(WEIGHTS_BUCKET)/models/{m.spec.model}/{m.spec.revision}"
        assert env["WEIGHTS_BUCKET"] == run.one(BUCKET).outputs["bucket"]  # what Kubernetes substitutes
        args = container["args"]
        assert args[args.index("--load-format") + 1] == "runai_streamer"
        assert args[args.index("--served-model-name") + 1] == m.spec.model  # the router and clients' model name
        jobs = [j for j in run.by_type(JOB) if j.plain_inputs()["metadata"]["namespace"] == m.namespace]
        assert len(jobs) == 1
        job = jobs[0].plain_inputs()["spec"]["template"]["spec"]
        assert job["serviceAccountName"] == FILL_SERVICE_ACCOUNT
        assert f"--prefix {m.weights.prefix}" in job["containers"][0]["command"][-1]
        server = next(d for d in run.by_type(DEPLOYMENT) if d.plain_inputs()["metadata"]["name"] == m.name
                      and d.plain_inputs()["metadata"]["namespace"] == m.namespace)
        assert run.depends_on(server, jobs[0])  # Pulumi creates the server only once the Job completed
        pairs = {(a.plain_inputs()["namespace"], a.plain_inputs()["serviceAccount"]) for a in run.by_type(ASSOCIATION)}
        assert {(m.namespace, SERVER_SERVICE_ACCOUNT), (m.namespace, FILL_SERVICE_ACCOUNT)} <= pairs


def test_the_stack_key_turns_the_cache_off_and_the_server_loads_from_the_hub():
    raw, secrets = read_stack_config(stack_file("qwen-g6"))
    raw = {**raw, "llm-eks:weightsCache": json.dumps({"enabled": False})}
    run = run_stack("qwen-g6", raw, secrets)
    assert not run.by_type(BUCKET) and not run.by_type(JOB)
    deployment = next(m for m in render.manifests(run) if m["kind"] == "Deployment" and m["metadata"]["name"] == "qwen3-1-7b")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][0] == "Qwen/Qwen3-1.7B" and "--load-format" not in container["args"]
    assert "serviceAccountName" not in deployment["spec"]["template"]["spec"]


def test_a_pinned_revision_is_its_own_prefix_and_fill_job():
    raw, secrets = read_stack_config(stack_file("qwen-g6"))
    models = json.loads(raw["llm-eks:models"])
    models[0]["revision"] = "70d244cc86ccca08cf5af4e1e306ecf908b1ad5e"
    run = run_stack("qwen-g6", {**raw, "llm-eks:models": json.dumps(models)}, secrets)
    _, _, default = recorded("qwen-g6")
    job = run.one(JOB).plain_inputs()
    assert "--prefix models/Qwen/Qwen3-1.7B/70d244cc86ccca08cf5af4e1e306ecf908b1ad5e" in job["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert job["metadata"]["name"] != default.one(JOB).plain_inputs()["metadata"]["name"]  # a new revision, a new Job
    # A fill that failed (retries spent) is replaced by the next `pulumi up`, not awaited forever: the new Job resumes.
    assert job["metadata"]["annotations"]["pulumi.com/replaceUnready"] == "true"


def test_neuron_workers_read_and_write_their_compiled_shape_and_nothing_else(stack, config, plans, run, manifests):
    from components.ray_service import compile_cache_prefix
    from components.weights_cache import COMPILE_SERVICE_ACCOUNT

    neuron = [p for p in plans if p.server == "rayserve"]
    if not neuron:
        return
    docs = role_documents(run)
    arn = run.one(BUCKET).outputs["arn"]
    for m in neuron:
        prefix = compile_cache_prefix(m)
        doc = docs[(m.namespace, COMPILE_SERVICE_ACCOUNT)]
        assert allowed(doc, "s3:PutObject", f"{arn}/{prefix}/model.pt") and allowed(doc, "s3:GetObject", f"{arn}/{prefix}/model.pt")
        assert allowed(doc, "s3:ListBucket", arn, prefix + "/")
        assert not allowed(doc, "s3:GetObject", f"{arn}/models/{m.spec.model}/main/model.safetensors")
        assert not allowed(doc, "s3:PutObject", f"{arn}/neuron-compiled/other-shape/model.pt")
        service = next(r for r in manifests if r["kind"] == "RayService" and r["metadata"]["namespace"] == m.namespace)
        worker = service["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]
        assert worker["serviceAccountName"] == COMPILE_SERVICE_ACCOUNT
        env = {e["name"]: e.get("value") for e in worker["containers"][0]["env"]}
        assert env["LLM_EKS_COMPILE_CACHE"] == f"s3://$(CACHE_BUCKET)/{prefix}"
        assert env["CACHE_BUCKET"] == run.one(BUCKET).outputs["bucket"]
        # The prefix names the compiler and the compiled shape: another SDK or shape never reloads this one.
        assert "sdk" in prefix and f"tp{m.engine_settings.tensor_parallel_size}" in prefix
