"""prunekit: neural-network pruning for PyTorch, measured.

Example:
    >>> import prunekit
    >>> model = prunekit.models.get_model("mlp")
    >>> sum(p.numel() for p in model.parameters())
    2386000
"""

__version__ = "0.1.0"
