"""Block sensitivity of a pretrained language model (``prunekit sensitivity --model hf:DIR``): each decoder
block's weights pruned alone to every sparsity of a grid, the rest of the model dense, measured by held-out
perplexity. :func:`~prunekit.plan.allocate` then turns the curves into per-block sparsities
(``ratios.json`` for ``prunekit prune --model hf:DIR --ratios``) with the least predicted rise of the log
perplexity (the mean next-token loss, which adds up over blocks better than perplexity does).

Example (a tiny random Llama of two decoder blocks, built and saved here):
    >>> import tempfile
    >>> from prunekit.hf.tiny import tiny_folder
    >>> from prunekit.prune import PruneSpec
    >>> folder = tiny_folder(tempfile.mkdtemp(), "llama")
    >>> curves = block_sensitivity("hf:" + folder, PruneSpec("weight"), (50, 90), seqlen=64, held_out=1024,
    ...                            progress=False)
    >>> curves.metric, curves.layers()
    ('perplexity', ['model.layers.0.*', 'model.layers.1.*'])
    >>> from prunekit.plan import allocate
    >>> sorted(allocate(curves, 50.0).values())[-1] >= 50
    True
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm

from ..data.text import DEFAULT, token_splits
from ..errors import ConfigError
from ..plan import Sensitivity
from ..plan.blocks import block_patterns
from ..prune import Pruner, PruneSpec, check_sparsity
from ..storage import atomic_write_text, jsonable

from .load import load
from .perplexity import perplexity

LM_GRID = (25.0, 50.0, 75.0)
"""The sparsities each block is pruned to unless told otherwise (each point is one perplexity pass)."""


def block_sensitivity(reference: str, spec: PruneSpec, sparsities: Sequence[float] = LM_GRID, *,
                      dataset: str = DEFAULT, dtype: str = "fp32", seqlen: int = 512, held_out: int = 16384,
                      progress: bool = True) -> Sensitivity:
    """Curves of held-out perplexity, one per decoder block of the model ``reference`` names, each block's
    weights pruned alone as ``spec`` says (weight methods; a criterion that needs data calibrates on the text
    after the held-out part) to each sparsity of ``sparsities``.

    Raises:
        ConfigError: for unit pruning or an N:M pattern (weights per block only), an empty grid, or a
            model or text that cannot be read.
    """
    if spec.removes_units or spec.pattern is not None:
        raise ConfigError("block sensitivity of a language model prunes each block's weights to a sparsity: give "
                          "a weight method without --pattern")
    grid = sorted({check_sparsity(k) for k in sparsities} - {0.0})
    if not grid:
        raise ConfigError("a sensitivity grid needs at least one sparsity above 0")
    pretrained = load(reference, dtype)
    model = pretrained.model
    splits = token_splits(dataset, pretrained.tokenizer, held_out, seqlen)
    calibration = splits.calibration(spec.calibration_batches, seqlen) \
        if spec.needs_data or spec.reconstruct else None
    modules = dict(model.named_modules())
    groups = block_patterns(model, spec.layers)
    weights = {pattern: sum(modules[n].weight.numel() for n in names) for pattern, names in groups.items()}
    curves = Sensitivity(spec.method, perplexity(model, splits.held_out, seqlen, progress),
                         sum(p.numel() for p in model.parameters()), 0, weights, metric="perplexity")
    pruner = Pruner(model, spec)
    bar = tqdm(total=len(groups) * len(grid), desc="block sensitivity", unit="point",
               disable=None if progress else True)
    try:
        for pattern, names in groups.items():
            dense = {n: modules[n].weight.detach().clone() for n in names}
            for k in grid:
                mask = pruner.prune({pattern: k}, calibration=calibration)
                curves.rows.append({"layer": pattern, "sparsity": k,
                                    "perplexity": perplexity(model, splits.held_out, seqlen),
                                    "params_removed": mask.num_pruned(), "macs_removed": 0})
                with torch.no_grad():
                    for n in names:
                        modules[n].weight.copy_(dense[n])
                bar.update(1)
    finally:
        bar.close()
    return curves


def write_block_sensitivity(curves: Sensitivity, folder: str | os.PathLike, title: str) -> list[Path]:
    """A language model's block curves (``curves.metric == "perplexity"``): ``sensitivity.json``,
    ``sensitivity.csv`` and ``sensitivity.png`` (perplexity on a log scale, one curve per block)."""
    from .report import plot_perplexity  # matplotlib only when curves are written

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "sensitivity.json", json.dumps(jsonable(curves.to_dict()), indent=2))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["layer", "sparsity", "perplexity", "params_removed"],
                            extrasaction="ignore")
    writer.writeheader()
    writer.writerows(curves.rows)
    atomic_write_text(folder / "sensitivity.csv", buffer.getvalue())
    points = [{"series": r["layer"], "level": f"{r['sparsity']:g}%", "sparsity_actual": r["sparsity"],
               "perplexity": r["perplexity"]} for r in curves.rows]
    plot_perplexity(points, folder / "sensitivity.png", dense=curves.dense_accuracy, title=title)
    return [folder / "sensitivity.json", folder / "sensitivity.csv", folder / "sensitivity.png"]
