"""One-dimensional k-means over a layer's remaining weights (Han et al. 2016's weight sharing).

Centroids start spread linearly between the smallest and the largest weight (the initialisation the
paper found best: it keeps centroids for the few large weights that matter most), then Lloyd's
iterations move each to the mean of its weights. In one dimension the nearest centroid is found by
bisection on the midpoints between sorted centroids, so one iteration costs O(n log k).

Example:
    >>> import torch
    >>> values = torch.tensor([-1.0, -0.9, -1.1, 2.0, 2.1, 1.9])
    >>> centroids, codes = kmeans_1d(values, 2)
    >>> [round(c, 3) for c in centroids.tolist()], codes.tolist()
    ([-1.0, 2.0], [0, 0, 0, 1, 1, 1])
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError

MAX_ITERATIONS = 100
"""Lloyd's iterations at most; they stop earlier once no weight changes cluster."""


def nearest(values: Tensor, centroids: Tensor) -> Tensor:
    """The index of the nearest centroid for every value (``centroids`` sorted ascending)."""
    midpoints = (centroids[1:] + centroids[:-1]) / 2
    return torch.bucketize(values, midpoints)


def kmeans_1d(values: Tensor, clusters: int, *, iterations: int = MAX_ITERATIONS) -> tuple[Tensor, Tensor]:
    """``(centroids, codes)``: ``clusters`` sorted centroids of the 1-D ``values`` (linear initialisation,
    Lloyd's iterations) and each value's centroid index (int64).

    A centroid left with no values keeps its place (it costs one table entry and never a code).

    Raises:
        ConfigError: when there are fewer values than clusters, or a value is NaN or infinite.
    """
    values = values.detach().reshape(-1).to(torch.float64)
    if clusters < 1 or values.numel() < clusters:
        raise ConfigError(f"{clusters} centroids for {values.numel()} weights: weight sharing needs at least as many "
                          f"weights as centroids (use fewer bits)")
    if not torch.isfinite(values).all():
        raise ConfigError("the weights hold NaN or infinite values; k-means needs finite weights")
    low, high = values.min(), values.max()
    centroids = torch.linspace(low.item(), high.item(), clusters, dtype=torch.float64)
    codes = nearest(values, centroids)
    for _ in range(iterations):
        sums = torch.zeros(clusters, dtype=torch.float64).index_add_(0, codes, values)
        counts = torch.bincount(codes, minlength=clusters)
        filled = counts > 0
        centroids = torch.where(filled, sums / counts.clamp(min=1), centroids)
        centroids, _ = torch.sort(centroids)
        updated = nearest(values, centroids)
        if torch.equal(updated, codes):
            break
        codes = updated
    return centroids.to(torch.float32), codes
