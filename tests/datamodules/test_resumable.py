"""The resumable sampler: a resumed epoch yields exactly the indices an uninterrupted one has left,
per rank, with one process or several."""

from __future__ import annotations

import pytest
from torch.utils.data import DataLoader, DistributedSampler

from rlhf_lightning.datamodules.resumable import ResumableSampler


def batches(sampler, batch_size):
    return [b.tolist() for b in DataLoader(list(range(sampler.n)), batch_size=batch_size, sampler=sampler)]


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("done", [0, 1, 2])
def test_resume_after_k_batches_continues_every_rank(world, done):
    """11 rows, batch 2: after ``done`` batches per rank, ``done * 2 * world`` indices of the padded order
    are used; the resumed iteration of each rank equals the rest of its uninterrupted iteration."""
    n, bs = 11, 2
    for rank in range(world):
        full = batches(_sampler(n, world, rank, epoch=1), bs)
        resumed_sampler = _sampler(n, world, rank, epoch=1)
        resumed_sampler.resume(1, done * bs * world)
        assert batches(resumed_sampler, bs) == full[done:], (world, rank, done)


def _sampler(n, world, rank, epoch):
    s = ResumableSampler(n, seed=4, num_replicas=world, rank=rank)
    s.set_epoch(epoch)
    return s


def test_ranks_partition_the_padded_epoch():
    n, world = 7, 3
    parts = [list(_sampler(n, world, r, epoch=0)) for r in range(world)]
    assert all(len(p) == 3 == len(_sampler(n, world, 0, 0)) for p in parts)  # ceil(7 / 3), padded
    used = sorted(i for p in parts for i in p)
    assert set(used) == set(range(n)) and len(used) == 9  # every row, two repeated as padding
    order = ResumableSampler(n, seed=4, num_replicas=world).order(0)
    assert order[7:] == order[:2]  # padding repeats the head of the order, as DistributedSampler does


def test_order_depends_on_seed_and_epoch_only_and_resume_is_one_shot():
    a, b = ResumableSampler(10, seed=3), ResumableSampler(10, seed=3)
    assert list(a) == list(b) == a.order(0)
    b.set_epoch(1)
    assert list(b) != list(a) and sorted(b) == list(range(10))
    a.resume(0, 4)
    assert list(a) == a.order(0)[4:]
    assert list(a) == a.order(0)  # the next iteration is a whole epoch again
    a.resume(5, 4)
    assert list(a) == a.order(0)  # a position in another epoch does not apply to this one
    assert list(ResumableSampler(4, shuffle=False)) == [0, 1, 2, 3]


def test_lightning_does_not_wrap_it():
    """Lightning replaces a sampler that is not a DistributedSampler by DistributedSamplerWrapper,
    whose padding would be computed on the shortened (resumed) order."""
    assert isinstance(ResumableSampler(3), DistributedSampler)
