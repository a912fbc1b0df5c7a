"""The Pulumi programs, one per `target` (__main__.py runs the stack's): each only wires components to the plan."""
