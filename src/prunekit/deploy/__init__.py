"""Making pruning real: compressed sparse files, ONNX, sparse kernels, fast evaluation, export formats.

Example:
    >>> import tempfile
    >>> from torch import nn
    >>> from prunekit.prune import prune_model
    >>> model = nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 10))
    >>> _ = prune_model(model, "weight", 95.0)
    >>> info = export_sparse(model, tempfile.mkdtemp() + "/w95.safetensors")
    >>> info.ratio > 8
    True
"""

from .exporters import EXPORTERS, Exporter, ExportOptions
from .fast_eval import crossover_densities, fast_evaluate, fast_forward, fast_model
from .onnx import OnnxExport, export_onnx
from .sparse_file import SparseExport, export_sparse, load_sparse, load_sparse_model, sparse_file_bytes
from .sparse_linear import KERNELS, MAX_SPARSE_DENSITY, SparseLinear
from .sparsify import kernel_choices, sparsify

__all__ = ["EXPORTERS", "ExportOptions", "Exporter", "KERNELS", "MAX_SPARSE_DENSITY", "OnnxExport", "SparseExport",
           "SparseLinear", "crossover_densities", "export_onnx", "export_sparse", "fast_evaluate", "fast_forward",
           "fast_model", "kernel_choices", "load_sparse", "load_sparse_model", "sparse_file_bytes", "sparsify"]
