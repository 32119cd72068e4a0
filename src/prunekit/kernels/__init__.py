"""prunekit's sparse CPU kernels: pruned weights packed as CSR (16-bit column indices) or as a bitmask with
the non-zero values (N:M patterns too), with fp32, fp16 or bf16 values; ``y = x W^T (+ b)`` in C with AVX2
and OpenMP, for batch 1 (bound by the bytes read) and larger batches (a transposed tile of inputs).

Example:
    >>> import torch
    >>> w = torch.randn(64, 128) * (torch.rand(64, 128) > 0.9)
    >>> packed = PackedWeight.pack(w, "bitmask")
    >>> x = torch.randn(3, 128)
    >>> available() is False or torch.allclose(packed.matmul(x), x @ w.T, atol=1e-5)
    True
"""

from .compiled import NOT_BUILT, available, note_if_missing, use_vector_isa, vector_isa
from .packed import FORMATS, VALUE_TYPES, PackedWeight, check_pattern

__all__ = ["FORMATS", "NOT_BUILT", "PackedWeight", "VALUE_TYPES", "available", "check_pattern", "note_if_missing",
           "use_vector_isa", "vector_isa"]
