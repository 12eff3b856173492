"""The order of training data: which images each step of each epoch sees, and their augmentation.

Every epoch's order is a permutation drawn from ``(seed, epoch)`` and every image's augmentation
from ``(seed, epoch, index)``, so a run resumed from a checkpoint sees exactly the batches of an
uninterrupted one. Under DDP each rank takes every ``world``-th batch.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from aakit.config import Config
from aakit.engine.noise import aug_seed
from aakit.errors import AakitError


def epoch_batches(n: int, batch: int, *, seed: int, epoch: int, rank: int = 0, world: int = 1) -> list[list[int]]:
    """This rank's batches of one epoch: a permutation drawn from (seed, epoch), drop_last.

    Every rank draws the same permutation and takes every ``world``-th batch, so the ranks
    together see each image at most once per epoch, like DistributedSampler.
    """
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=g).tolist()
    per_step = batch * world
    steps = n // per_step
    if steps == 0:
        raise AakitError(f"train.batch_size = {batch} x {world} process(es) is larger than the "
                         f"training set ({n} images)")
    return [order[s * per_step + rank * batch : s * per_step + (rank + 1) * batch] for s in range(steps)]


class _EpochItems(torch.utils.data.Dataset[dict[str, Any]]):
    """Dataset view whose augmentation is seeded by (seed, epoch, index)."""

    def __init__(self, dataset: Any, seed: int, epoch: int) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, self.epoch, idx])
        item: dict[str, Any] = self.dataset.sample(idx, rng)
        return item


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in items[0]:
        vals = [it[k] for it in items]
        out[k] = torch.stack([torch.as_tensor(v) for v in vals]) if k != "id" else vals
    return out


def iterate_epoch(dataset: Any, batches: list[list[int]], cfg: Config, epoch: int, skip: int) -> Iterator[dict[str, Any]]:
    seed = aug_seed(cfg.train)  # train.seed unless train.aug_seed is set (aakit.engine.noise)
    view = _EpochItems(dataset, seed, epoch)
    loader = torch.utils.data.DataLoader(
        view,
        batch_sampler=batches[skip:],
        num_workers=cfg.data.num_workers,
        collate_fn=collate,
        persistent_workers=False,
        # its own generator: creating the iterator must not draw from the global torch RNG,
        # whose state (dropout) a checkpoint restores
        generator=torch.Generator().manual_seed(seed * 1_000 + epoch),
    )
    yield from loader

