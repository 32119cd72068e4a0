"""Data-parallel training on PyTorch's own engine: the processes ``torchrun`` starts each train a
:class:`~torch.nn.parallel.DistributedDataParallel` copy of the model on their slice of every batch, and the
averaged gradients make every step the step one process takes on the whole batch. ``accelerate launch
--multi_gpu`` starts its GPU processes through torchrun, with the same environment (untested here: no GPU);
on CPUs ``accelerate launch`` starts a single process (its multi-CPU mode needs MPI), so use torchrun there.

``torchrun --nproc_per_node 2 -m prunekit.cli train --model hf:DIR --teacher hf:DENSE ...`` is all it takes:
the process group is set up from the launcher's environment (``gloo`` on CPUs, ``nccl`` on CUDA devices), the
batch size is the global one (it must divide by the number of processes), and only the first process writes
files (the training state and the result).

Example (one process: nothing is distributed):
    >>> world()
    (0, 1)
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

from .device import resolve_device


def world() -> tuple[int, int]:
    """``(rank, number of processes)`` of the process group, ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_launcher(device: torch.device | None = None) -> tuple[int, int]:
    """Join the process group a launcher described (``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR`` in the
    environment), once; returns :func:`world`."""
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size > 1 and dist.is_available() and not dist.is_initialized():
        cuda = device is not None and resolve_device(device).type == "cuda"
        dist.init_process_group("nccl" if cuda else "gloo")
    return world()


def is_main() -> bool:
    """Whether this process writes the files (the first one, or the only one)."""
    return world()[0] == 0


def barrier() -> None:
    """Wait for every process (nothing to wait for in a single process)."""
    if world()[1] > 1:
        dist.barrier()


def data_parallel(model: nn.Module) -> nn.Module:
    """``model`` wrapped for data-parallel training when several processes run, else ``model`` itself."""
    if world()[1] == 1:
        return model
    on_cuda = next(model.parameters()).is_cuda
    return nn.parallel.DistributedDataParallel(model, device_ids=[torch.cuda.current_device()] if on_cuda else None)
