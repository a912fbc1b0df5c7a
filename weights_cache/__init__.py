"""The stack's S3 weights cache: fill.py, the fill Job's code (Hub -> S3, once per model revision, resumable)."""
