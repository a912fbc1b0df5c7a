"""Benchmark a deployed model in one command: `make bench STACK=<name>` or `python -m bench <stack> [--url URL]`.

The load generator is inference-perf (kubernetes-sigs, the Kubernetes serving working group's tool), pinned in
requirements-bench.txt and bench/workload.py; see bench/__main__.py for why it and not guidellm. This package runs
in ./venv (it reads the stack file and the plan); the generator and the plots run in .engines/bench (Python 3.12+).
"""
