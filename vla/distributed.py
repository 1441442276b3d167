"""Data-parallel training under ``torchrun``: the process group, rank-0 gating, batch sharding.

Usage: torchrun --nproc_per_node 2 -m vla train --head ar --data DATA --out CKPT --device cuda

``robodecode train`` / ``distill`` call :func:`setup` first. Outside ``torchrun`` (no
``WORLD_SIZE`` above 1 in the environment) it returns :data:`SINGLE` and nothing changes. Under
``torchrun`` each process joins a process group (NCCL on CUDA, gloo on CPU) and takes the GPU of
its ``LOCAL_RANK``. The training loops then keep one process's semantics:

* ``--batch-size`` is the *global* batch. Every rank draws the same global batch from the same
  seeded generator (and the same augmentation) and keeps its own contiguous slice
  (:meth:`DistContext.shard`), so the schedule is the single-process one.
* Each rank's loss is a mean over its slice; :func:`slice_weight` rescales it so that DDP's
  gradient average equals the gradient of the global batch's mean (exact where the loss is a
  mean over valid action steps, as for the ``ar``, ``flow`` and ``oft`` heads).
* Only rank 0 validates, prints, shows progress and writes checkpoints; every rank resumes
  from the same folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import torch

from vla.model import Observation


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in a data-parallel run.

    Attributes:
        rank: Global rank (0 writes checkpoints and logs).
        world_size: Number of processes; 1 is a plain single-process run.
        local_rank: Rank on this host (the CUDA device index).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    def __post_init__(self) -> None:
        if self.world_size < 1:
            raise ValueError(f"world_size must be >= 1, got {self.world_size}")
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in [0, {self.world_size}), got {self.rank}")

    @property
    def enabled(self) -> bool:
        """Whether more than one process takes part (collectives are needed)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the one that writes."""
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """This rank's contiguous part of ``n`` items (sizes differ by at most one).

        Raises:
            ValueError: If ``n`` is smaller than the world size (a rank would get nothing).
        """
        if n < self.world_size:
            raise ValueError(f"batch_size {n} is smaller than the {self.world_size} processes; "
                             "the batch size is the global batch, so raise it")
        base, extra = divmod(n, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (1 if self.rank < extra else 0))

    def barrier(self) -> None:
        """Wait for every rank (no-op in a single process)."""
        if self.enabled:
            torch.distributed.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (picklable objects; returned as is in one process)."""
        if not self.enabled:
            return obj
        box = [obj if self.is_main else None]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over the ranks (float64)."""
        if not self.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=_collective_device())
        torch.distributed.all_reduce(t)
        return t.cpu().tolist()

    def reduce_metrics(self, metrics: dict[str, float], weight: float) -> dict[str, float]:
        """Global metrics: the ranks' values weighted by their share of the batch."""
        if not self.enabled:
            return metrics
        keys = sorted(metrics)
        return dict(zip(keys, self.sum([metrics[k] * weight for k in keys]), strict=True))


SINGLE = DistContext()


def _collective_device() -> torch.device:
    backend = torch.distributed.get_backend()
    return torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else \
        torch.device("cpu")


def context_from_env() -> DistContext:
    """The ``torchrun`` environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) as a context."""
    return DistContext(rank=int(os.environ.get("RANK", "0")),
                       world_size=int(os.environ.get("WORLD_SIZE", "1")),
                       local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def setup(device: str) -> tuple[DistContext, str]:
    """Join the process group when launched by ``torchrun``; returns the context and device.

    A ``cuda`` device becomes ``cuda:LOCAL_RANK`` (NCCL); anything else uses gloo. Without
    ``torchrun`` (or with one process) this is :data:`SINGLE` and ``device`` unchanged.
    """
    ctx = context_from_env()
    if not ctx.enabled:
        return SINGLE, device
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(ctx.local_rank)
        device = f"cuda:{ctx.local_rank}"
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
    return ctx, device


def teardown(ctx: DistContext) -> None:
    """Leave the process group (after a final barrier) if :func:`setup` joined one."""
    if ctx.enabled and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


@contextmanager
def main_first(ctx: DistContext) -> Iterator[None]:
    """Run the block on rank 0 first, then on the others (for steps that write caches)."""
    if ctx.enabled and not ctx.is_main:
        ctx.barrier()
    yield
    if ctx.enabled and ctx.is_main:
        ctx.barrier()


def take(obs: Observation, part: slice) -> Observation:
    """The items ``part`` of an observation batch."""
    return replace(obs, images=[x[part] for x in obs.images], state=obs.state[part],
                   lang=obs.lang[part], aux=obs.aux[part] if obs.aux is not None else None)


def slice_weight(valid: torch.Tensor, part: slice) -> float:
    """This rank's share of the global batch's ``valid`` entries (first dim = items).

    Multiplying the rank's mean loss by ``world_size x`` this weight makes DDP's gradient
    average the gradient of the global mean.
    """
    total = float(valid.sum())
    return float(valid[part].sum()) / total if total > 0 else 0.0


def wrap(module: torch.nn.Module, ctx: DistContext, device: str) -> torch.nn.Module:
    """``module`` in ``DistributedDataParallel`` when several processes run, else itself.

    Unused parameters are allowed (heads leave some out, state dropout is random per rank).
    """
    if not ctx.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [torch.device(device).index] if device.startswith("cuda") else None
    return DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False,
                                   find_unused_parameters=True)


class LossModule(torch.nn.Module):
    """A module whose ``forward`` is a loss function of ``model``, for DDP to wrap.

    Args:
        model: The trained model (its parameters are this module's).
        loss_fn: ``loss_fn(model, *args) -> (loss, metrics)``.
    """

    def __init__(self, model: torch.nn.Module, loss_fn: Any) -> None:
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, *args: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss and metrics of ``args``."""
        return self.loss_fn(self.model, *args)
