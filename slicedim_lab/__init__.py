"""slicedim-lab: how the representation dimension governs structurally pruned (sliced) LLMs."""

__version__ = "0.1.0"
