"""The report of :func:`~prunekit.prune.compact.compact`: what happened to each layer, and why."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

from ..tables import aligned_table

STATUSES = {
    "compacted": "dead units removed (and the matching inputs of the next layer)",
    "unchanged": "no dead unit",
    "empty": "no live unit: one zero unit kept so the model stays valid",
    "output": "the model's outputs (the classifier): never removed",
    "skipped": "not compacted: see the note",
}


@dataclass(frozen=True)
class LayerCompaction:
    """One Linear/Conv2d layer of a compaction.

    Attributes:
        name: module name.
        type: ``"Linear"`` or ``"Conv2d"``.
        units: output units (rows / filters) before.
        kept: units after.
        constant: kept units with zero weights but a non-zero constant output (bias).
        status: one of :data:`STATUSES`.
        note: the reason for ``skipped`` (or other detail).
    """

    name: str
    type: str
    units: int
    kept: int
    constant: int
    status: str
    note: str = ""

    @classmethod
    def unchanged(cls, name: str, layer: nn.Module, status: str, note: str) -> "LayerCompaction":
        units = layer.weight.shape[0]
        return cls(name, type(layer).__name__, units, units, 0, status, note)

    @property
    def removed(self) -> int:
        return self.units - self.kept


@dataclass(frozen=True)
class CompactionReport:
    """Per-layer rows and parameter counts before and after.

    Example:
        >>> from torch import nn
        >>> from prunekit.compact import compact
        >>> report = compact(nn.Sequential(nn.Linear(4, 3), nn.Sigmoid(), nn.Linear(3, 2))).report
        >>> [(r.name, r.status) for r in report.layers]
        [('0', 'skipped'), ('2', 'output')]
        >>> report.skipped[0].note
        "'1' (Sigmoid) between '0' and the next layer is not known to keep a zero unit zero"
    """

    layers: tuple[LayerCompaction, ...]
    params_before: int
    params_after: int

    @property
    def skipped(self) -> list[LayerCompaction]:
        """Layers that could not be compacted (with the reason in ``note``)."""
        return [r for r in self.layers if r.status == "skipped"]

    @property
    def ratio(self) -> float:
        """``params_before / params_after``."""
        return self.params_before / max(self.params_after, 1)

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return {"layers": [asdict(r) for r in self.layers], "params_before": self.params_before,
                "params_after": self.params_after}

    def format_table(self) -> str:
        """An aligned plain-text table, one row per layer, then the parameter totals."""
        head = ["layer", "type", "units", "kept", "removed", "constant", "status", "note"]
        lines = [[r.name, r.type, str(r.units), str(r.kept), str(r.removed), str(r.constant), r.status, r.note]
                 for r in self.layers]
        total = (f"parameters: {self.params_before:,} -> {self.params_after:,} "
                 f"({self.ratio:.2f}x fewer)")
        return "\n".join([aligned_table(head, lines), total])
