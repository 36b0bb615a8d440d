"""Training's batch sampler: seeded per epoch, resumable mid-epoch, split across processes."""

from __future__ import annotations


class EpochBatches:
    """Batches of (index, epoch) for one epoch, shuffled by (seed, epoch).

    Starting at `start` skips the batches already trained before an
    interruption, so a resumed epoch sees exactly the batches it had left.

    On `world` processes each step takes one global batch of world x batch_size
    from the same seeded order, and rank r keeps its every world-th photo
    (DistributedSampler's stride, applied per global batch). So N processes of
    batch B see exactly the photos one process of batch N x B sees, step by
    step, and a resumed epoch still starts at the right batch. Not
    DistributedSampler itself: it pads the epoch with repeated photos and
    knows nothing of resuming mid-epoch; the incomplete last global batch is
    dropped here instead, as on one process.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world = rank, world
        self.epoch, self.start = 0, 0

    def steps(self) -> int:
        # Full batches only (drop_last): a last batch of one image breaks BatchNorm.
        return max(1, self.n // (self.batch_size * self.world))

    def __len__(self) -> int:
        return self.steps() - self.start

    def __iter__(self):
        import torch

        g = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        # Fewer photos than one global batch: one step, the same count on each rank.
        size = min(self.batch_size, self.n // self.world) * self.world
        for b in range(self.start, self.steps()):
            step = order[b * size : (b + 1) * size]
            yield [(i, self.epoch) for i in step[self.rank :: self.world]]


class EpochAwareDataset:
    """Passes the epoch from the sampler to the dataset, so persistent workers stay correct."""

    def __init__(self, inner):
        self.inner = inner

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, key):
        index, epoch = key
        self.inner.epoch = epoch
        return self.inner[index]
