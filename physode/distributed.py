"""Data-parallel training on PyTorch's own distributed runtime, as launched by ``torchrun``.

``torchrun --nproc_per_node=N -m physode train ...`` starts N processes; ``physode train`` sees
``WORLD_SIZE`` in its environment and joins the process group (:func:`process_group`: gloo on the
CPU, NCCL on GPUs, one GPU per process by ``LOCAL_RANK``). :func:`physode.fit` then trains with
``DistributedDataParallel`` whenever a process group is initialised, from the CLI or by the caller's
own ``torch.distributed.init_process_group``. :class:`World` is the little that the trainer needs to
know about it: its rank, the number of processes, and a few collectives on small tensors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os

import torch
import torch.distributed as dist

from .devices import resolve_device
from .errors import PhysodeError


@dataclasses.dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 of 1 without a process group)."""

    rank: int = 0
    size: int = 1
    device: torch.device = torch.device("cpu")  #: where collectives put their tensors (NCCL needs the GPU)

    @classmethod
    def current(cls, device) -> World:
        if dist.is_available() and dist.is_initialized():
            collective = device if dist.get_backend() == "nccl" else torch.device("cpu")
            return cls(dist.get_rank(), dist.get_world_size(), collective)
        return cls()

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes files and shows progress."""
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """This rank's rows of ``n`` trajectories: ``rank, rank + size, ...``."""
        return slice(self.rank, n, self.size)

    def any(self, *flags: bool) -> list[bool]:
        """Each flag, true when it is true on any rank (one collective)."""
        if self.size == 1:
            return [bool(f) for f in flags]
        values = torch.tensor([float(f) for f in flags], device=self.device)
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
        return [bool(v) for v in values.tolist()]

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The average of a scalar over the ranks (a NaN on any rank makes it NaN everywhere)."""
        if self.size == 1:
            return value.detach()
        total = value.detach().to(self.device, torch.float64).reshape(1).clone()
        dist.all_reduce(total)
        return (total / self.size).reshape(()).to(value.device)

    def gather(self, values: torch.Tensor) -> torch.Tensor:
        """The concatenation of every rank's ``values: (n_r,)`` in rank order, on every rank (on the CPU)."""
        if self.size == 1:
            return values.cpu()
        parts = [None] * self.size
        dist.all_gather_object(parts, values.detach().cpu())
        return torch.cat(parts)


def launched_processes() -> int:
    """How many processes torchrun launched (its ``WORLD_SIZE``; 1 outside torchrun)."""
    value = os.environ.get("WORLD_SIZE", "1")
    try:
        size = int(value)
    except ValueError:
        size = 0
    if size < 1:
        raise PhysodeError(f"the environment variable WORLD_SIZE={value!r} is not a number of processes >= 1; unset it, "
                           "or launch with torchrun, which sets it")
    return size


@contextlib.contextmanager
def process_group(device="auto"):
    """Within the block, this process is in torchrun's process group (if launched by torchrun).

    Does nothing outside torchrun (no ``WORLD_SIZE`` in the environment, or 1: one process needs no group)
    or when a group already exists. Backend: NCCL when ``device`` resolves to a GPU (each process takes the GPU of its
    ``LOCAL_RANK``), gloo on the CPU. The group is destroyed on leaving the block.
    """
    if launched_processes() == 1 or (dist.is_available() and dist.is_initialized()):
        yield
        return
    if not dist.is_available():  # pragma: no cover - torch builds without distributed support
        raise PhysodeError("this torch build has no torch.distributed; run without torchrun")
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    try:
        dist.init_process_group("nccl" if resolved.type == "cuda" else "gloo")
    except (RuntimeError, ValueError) as exc:
        raise PhysodeError(f"could not join torchrun's process group: {exc}") from None
    try:
        yield
    finally:
        dist.destroy_process_group()
