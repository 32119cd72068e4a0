"""Weight sharing and quantization that keep a pruned model's zeros (Deep Compression, Han et al. 2016).

* :func:`share_weights` -- k-means weight sharing per layer, centroids trained by fine-tuning;
* :func:`quantize_uniform` -- per-channel symmetric int8/int4, zero is code 0, rounded to nearest;
* :func:`gptq_quantize`, :func:`gptq_model` -- the same grid, each column's rounding error compensated from
  calibration data (GPTQ), the pruning mask held;
* :class:`QuantizedWeight` -- positions, codes and table: what :mod:`prunekit.deploy.compressed` codes.

Example:
    >>> import torch
    >>> centroids, codes = kmeans_1d(torch.tensor([0.1, 0.12, 0.9, 1.0]), 2)
    >>> codes.tolist()
    [0, 0, 1, 1]
"""

from .codes import KINDS, QuantizedWeight, round_layers
from .gptq import gptq_model, gptq_quantize
from .kmeans import kmeans_1d
from .share import Bits, SharedWeights, share_weights
from .uniform import check_bits, dequantize_uniform, quantize_uniform

__all__ = ["Bits", "KINDS", "QuantizedWeight", "SharedWeights", "check_bits", "dequantize_uniform", "gptq_model",
           "gptq_quantize", "kmeans_1d", "quantize_uniform", "round_layers", "share_weights"]
