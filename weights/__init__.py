"""Model weights copied from the Hugging Face Hub into the stack's S3 bucket, so that servers load them from S3."""
