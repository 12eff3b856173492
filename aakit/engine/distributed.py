"""Multi-GPU (or multi-process CPU) training under ``torchrun``.

``torchrun --nproc_per_node N -m aakit.cli train CONFIG`` sets RANK / WORLD_SIZE / LOCAL_RANK;
:func:`init_distributed` reads them, picks the backend (nccl on CUDA, gloo on CPU) and the
device of this rank. Rank 0 alone writes the run directory; every rank sees its own shard of
each epoch (see :func:`aakit.engine.batches.epoch_batches`) and a seed offset by its rank.
"""
from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owner: bool = False  # this call joined the group (and so leaves it in cleanup)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> DistInfo:
    """Join the process group if launched by torchrun; a no-op otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    owner = not dist.is_initialized()
    if owner:
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank=rank, world=world, local_rank=local, owner=owner)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_object(info: DistInfo, obj: object) -> object:
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_floats(info: DistInfo, value: float) -> list[float]:
    if not info.enabled:
        return [value]
    out: list[object] = [None] * info.world
    dist.all_gather_object(out, value)
    return [float(v) for v in out]  # type: ignore[arg-type]


def cleanup(info: DistInfo) -> None:
    """Leave the process group (only if this process joined it).

    DDP and gloo objects caught in reference cycles would otherwise be freed during interpreter
    shutdown, after the group is gone, where gloo's threads abort the process ("terminate called
    without an active exception", SIGABRT — after a finished run, so torchrun reports a failure).
    Collecting them here, while the group still exists, makes the exit clean.
    """
    if info.enabled and info.owner and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()
