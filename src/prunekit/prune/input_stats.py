"""What calibration reads of a layer's inputs: the inputs as rows of features, and the running statistics
post-training criteria take from them (sums of squares, Gram matrices).

A layer's input is seen as rows of features: ``nn.Linear`` as ``[tokens, in_features]``, ``nn.Conv2d``
through its unfolded input ``[positions, in/groups * kh * kw]``, one block per conv group, in the
order of ``weight.flatten(1)``.

Example:
    >>> from torch import nn
    >>> held = {}
    >>> add_statistics(held, input_rows(nn.Linear(3, 2), torch.ones(4, 3)), ("squares", "hessian"))
    >>> held["squares"].tolist(), held["hessian"].shape
    ([[4.0, 4.0, 4.0]], torch.Size([1, 3, 3]))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError


def input_rows(module: nn.Module, x: Tensor) -> Tensor:
    """``module``'s input as ``[groups, rows, features]`` (one group for a Linear or an ungrouped conv).

    Example:
        >>> conv = nn.Conv2d(2, 4, 3, padding=1, groups=2)
        >>> input_rows(conv, torch.randn(5, 2, 6, 6)).shape
        torch.Size([2, 180, 9])
    """
    if isinstance(module, nn.Linear):
        return x.reshape(1, -1, x.shape[-1])
    if isinstance(module, nn.Conv2d):
        mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
        x = F.pad(x, module._reversed_padding_repeated_twice, mode=mode)
        cols = F.unfold(x, module.kernel_size, dilation=module.dilation, stride=module.stride)
        g = module.groups
        batch, features, positions = cols.shape
        cols = cols.reshape(batch, g, features // g, positions)
        return cols.permute(1, 0, 3, 2).reshape(g, batch * positions, features // g)
    raise ConfigError(f"calibration reads the inputs of nn.Linear and nn.Conv2d layers, not {type(module).__name__}")


def add_statistics(held: dict[str, Tensor], rows: Tensor, statistics: tuple[str, ...]) -> None:
    """Add one batch's input ``rows`` ``[groups, rows, features]`` to the running statistics ``held``."""
    rows = rows.float()
    for kind in statistics:
        value = (rows.pow(2).sum(dim=1) if kind == "squares" else gram(rows)).double()
        held[kind] = held[kind] + value if kind in held else value


def gram(rows: Tensor) -> Tensor:
    """``rows^T rows`` of every group of ``[groups, rows, features]`` float32 rows: ``[groups, features,
    features]``. On the CPU, BLAS's symmetric rank-k update computes one triangle (half the work of a
    matrix product); elsewhere a matrix product.

    Example:
        >>> x = torch.randn(1, 50, 6)
        >>> torch.allclose(gram(x), x.transpose(1, 2) @ x, atol=1e-4)
        True
    """
    if rows.device.type != "cpu" or rows.dtype != torch.float32 or rows.shape[1] == 0:
        return rows.transpose(1, 2) @ rows
    from scipy.linalg.blas import ssyrk

    out = []
    for group in rows:
        # a C-ordered [n, d] is the Fortran-ordered [d, n] BLAS reads without a copy: syrk gives its A A^T
        upper = torch.from_numpy(ssyrk(1.0, group.contiguous().numpy().T, trans=0, lower=0))
        out.append(upper.triu() + upper.triu(1).T)
    return torch.stack(out)
