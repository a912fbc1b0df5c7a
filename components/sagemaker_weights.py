"""The SageMaker stack's weights: an S3 bucket (encrypted, private, emptied and deleted with the stack), the Hugging
Face token in Secrets Manager, and the Lambda (weights_cache/fill.py, the EKS fill Job's code) that copies each model's
revision from the Hub
into the bucket once, before its endpoint starts. The endpoint then loads from S3 (SageMaker puts the files in
/opt/ml/model) and never sees the token: LMI reads a token only from its environment, which SageMaker shows to anyone
who may describe the model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

REPO = Path(__file__).resolve().parents[1]
LAMBDA_RUNTIME = "python3.12"  # boto3 included; the copy needs nothing else
LAMBDA_TIMEOUT_S = 900  # Lambda's maximum; a larger model resumes on the next `pulumi up` (the copy is resumable)
LAMBDA_MEMORY_MB = 3008  # network throughput grows with memory
LAMBDA_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


@dataclass
class SageMakerWeightsArgs:
    stack: str
    hf_token: pulumi.Input[str]  # a Pulumi secret
    log_retention_days: int
    tags: dict[str, str]


class SageMakerWeights(pulumi.ComponentResource):
    """Bucket, token secret and the copy function, shared by the stack's endpoints."""

    def __init__(self, name: str, args: SageMakerWeightsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-eks:sagemaker:SageMakerWeights", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.tags
        self.bucket = aws.s3.Bucket(f"{name}-bucket", bucket_prefix=f"{args.stack.lower()[:30]}-weights-",
                                    force_destroy=True, tags=tags, opts=child)
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-sse", bucket=self.bucket.id,
            rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.
                BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(sse_algorithm="AES256"))],
            opts=child)  # SSE-S3: the copy and SageMaker read and write without a KMS key policy to keep in step
        aws.s3.BucketPublicAccessBlock(f"{name}-private", bucket=self.bucket.id, block_public_acls=True,
                                       block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True,
                                       opts=child)
        aws.s3.BucketOwnershipControls(f"{name}-owner", bucket=self.bucket.id,
                                       rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
                                       opts=child)
        self.token = aws.secretsmanager.Secret(f"{name}-hf-token", name_prefix=f"{args.stack}/hf-token-",
                                               description="Hugging Face token for the weights copy", tags=tags,
                                               opts=child)
        aws.secretsmanager.SecretVersion(f"{name}-hf-token", secret_id=self.token.id, secret_string=args.hf_token,
                                         opts=child)
        role = aws.iam.Role(f"{name}-copy", assume_role_policy=LAMBDA_TRUST, tags=tags, opts=child)
        log_group = aws.cloudwatch.LogGroup(f"{name}-copy", name=f"/aws/lambda/{args.stack}-weights-copy",
                                            retention_in_days=args.log_retention_days, tags=tags, opts=child)
        policy = aws.iam.RolePolicy(f"{name}-copy", role=role.id, policy=pulumi.Output.all(
            self.bucket.arn, self.token.arn, log_group.arn).apply(lambda a: copy_policy(*a)), opts=child)
        self.function = aws.lambda_.Function(
            f"{name}-copy", name=f"{args.stack}-weights-copy", role=role.arn, runtime=LAMBDA_RUNTIME,
            handler="weights_cache.fill.lambda_handler", timeout=LAMBDA_TIMEOUT_S, memory_size=LAMBDA_MEMORY_MB,
            code=pulumi.AssetArchive({"weights_cache": pulumi.FileArchive(str(REPO / "weights_cache"))}),
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="Text", log_group=log_group.name),
            tags=tags, opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]))
        self.register_outputs({"bucket": self.bucket.id, "function": self.function.name})

    def copy(self, name: str, model: str, revision: str, prefix: str) -> aws.lambda_.Invocation:
        """Run the copy for one model revision during `pulumi up` (again whenever the model, revision or code
        changes); its endpoint depends on it."""
        payload = pulumi.Output.all(self.bucket.id, self.token.arn).apply(lambda a: json.dumps({
            "model": model, "revision": revision, "bucket": a[0], "prefix": prefix, "token_secret_arn": a[1]}))
        return aws.lambda_.Invocation(f"{name}-weights", function_name=self.function.name, input=payload,
                                      triggers={"model": model, "revision": revision,
                                                "code": self.function.source_code_hash},
                                      opts=pulumi.ResourceOptions(parent=self))


def copy_policy(bucket_arn: str, secret_arn: str, log_group_arn: str) -> str:
    """The copy may read the one token secret, list and write objects under models/ and write its own logs."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": secret_arn},
        {"Effect": "Allow", "Action": ["s3:PutObject", "s3:AbortMultipartUpload"], "Resource": f"{bucket_arn}/models/*"},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn,
         "Condition": {"StringLike": {"s3:prefix": ["models/*"]}}},
        {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": f"{log_group_arn}:*"},
    ]})
