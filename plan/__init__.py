"""The plan layer: the stack planned once (plan/stack.py), per model (plan/models.py), with its cost (plan/cost.py)
and the names components share (plan/names.py). Components take these objects and never call into sizing."""
