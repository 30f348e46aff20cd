"""A target module that raises while it is imported."""

raise RuntimeError("this module needs jax<0.4")

BatchApply = None
