"""The plan layer: the stack planned once (plan/stack.py), per model (plan/models.py), with its cost (plan/cost.py).
Components take these objects (and the names in config/names.py) and never call into sizing."""
