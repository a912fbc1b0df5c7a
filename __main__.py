"""llm-eks: runs the program for the stack's `target`: programs/eks.py (VPC, EKS, Karpenter, model servers, router,
chat UI; the default) or programs/sagemaker.py (one SageMaker endpoint per model). Each validates the whole stack file
first and only wires components to the plan (plan/)."""

import runpy

import pulumi

PROGRAMS = {"eks": "programs.eks", "sagemaker": "programs.sagemaker"}

# An unknown target is reported, with every other problem, by the EKS program's validation of the stack file.
runpy.run_module(PROGRAMS.get(pulumi.Config("llm-eks").get("target") or "eks", PROGRAMS["eks"]), run_name="__main__")
