"""Structure of any model: trace it once with example inputs and find every set of channels that must
be pruned together (coupled channel groups).

* :func:`model_structure` -- the one decision: traced on example inputs, walked (``nn.Sequential``) or
  layer by layer; a :class:`ModelStructure` traces on first use and is passed on, never rebuilt;
* :func:`trace` -- ``torch.export`` the model, couple the axes of every value with the op rules,
  and return a :class:`Structure` holding the :class:`Group` list;
* :mod:`.rules` -- the op rules (a registry: :func:`register_rule` adds one for a custom op);
* :mod:`.spaces` -- the index-space algebra (union-find with sum/product refinements).

Example:
    >>> import torch
    >>> from torch import nn
    >>> class Residual(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.stem, self.up, self.down, self.head = nn.Linear(4, 8), nn.Linear(8, 16), nn.Linear(16, 8), nn.Linear(8, 2)
    ...     def forward(self, x):
    ...         h = self.stem(x)
    ...         return self.head(h + self.down(torch.relu(self.up(h))))
    >>> structure = trace(Residual(), torch.randn(2, 4))
    >>> for g in structure.groups:
    ...     print(g.name, g.size, sorted({m.name for m in g.members}))
    stem 8 ['down.bias', 'down.weight', 'head.weight', 'stem.bias', 'stem.weight', 'up.weight']
    up 16 ['down.weight', 'up.bias', 'up.weight']
"""

from .groups import Group, Member
from .rules import STRUCTURE_RULES, op_name, register_rule
from .model import ModelStructure, model_structure, walkable
from .structure import Structure, trace
from .trace import FROZEN_MODULES

__all__ = ["FROZEN_MODULES", "Group", "Member", "ModelStructure", "STRUCTURE_RULES", "Structure", "model_structure",
           "op_name", "register_rule", "trace", "walkable"]
