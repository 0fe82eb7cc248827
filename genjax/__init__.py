"""genjax: functional JAX/Flax research code for deep generative models."""

__version__ = "0.1.0"
