"""The resumable sampler: a resumed epoch yields exactly the indices an uninterrupted one has left,
per rank, with one process or several."""

from __future__ import annotations

import math

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


@pytest.mark.parametrize("world", [1, 2])
def test_a_mixture_resumes_mid_epoch_on_every_rank(world):
    """A weighted mixture's epoch resumes like a plain one: the same (epoch, samples_done) position."""
    mixture = ([5, 9], [0.7, 0.3])
    for rank in range(world):
        def sampler(rank=rank):
            s = ResumableSampler(14, seed=4, num_replicas=world, rank=rank, mixture=mixture)
            s.set_epoch(3)
            return s
        full = batches(sampler(), 2)
        resumed = sampler()
        resumed.resume(3, 2 * 2 * world)
        assert batches(resumed, 2) == full[2:]
    from rlhf_lightning.data.mixture import mixture_order

    assert ResumableSampler(14, seed=4, mixture=mixture).order(3) == mixture_order(*mixture, seed=4, epoch=3)


def _jsonl(path, rows):
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _module(kind, tmp_path, tokenizer):
    """Each training data module that takes sources, over source A (40 rows whose prompts start with
    "alpha") at weight 0.8 and source B (160 rows, "beta") at weight 0.2."""
    from rlhf_lightning.datamodules.comparisons import ComparisonDataModule
    from rlhf_lightning.datamodules.prompts import PromptDataModule
    from rlhf_lightning.datamodules.sft import SFTDataModule
    from rlhf_lightning.datamodules.unpaired import UnpairedDataModule

    def row(name, i):
        return {"sft": {"prompt": f"{name} {i}", "response": "ok"},
                "comparisons": {"prompt": f"{name} {i}", "chosen": "yes", "rejected": "no"},
                "prompts": {"prompt": f"{name} {i}"},
                "unpaired": {"prompt": f"{name} {i}", "completion": "ok", "label": i % 2 == 0}}[kind]

    train = [{"path": _jsonl(tmp_path / f"{name}.jsonl", [row(name, i) for i in range(n)]), "weight": w}
             for name, n, w in (("alpha", 40, 0.8), ("beta", 160, 0.2))]
    cls = {"sft": SFTDataModule, "comparisons": ComparisonDataModule, "prompts": PromptDataModule,
           "unpaired": UnpairedDataModule}[kind]
    return cls(train=train, tokenizer=str(tokenizer), batch_size=4, seed=3)


@pytest.mark.parametrize("kind", ["sft", "comparisons", "prompts", "unpaired"])
def test_every_training_data_module_samples_the_weights(kind, tmp_path, tiny_tokenizer_dir):
    """5 epochs of 200 samples: the count from source A is Binomial(1000, 0.8) (mean 800, sigma 12.6;
    4 sigma allowed), where concatenation would give 200. The rows drawn as source A are A's rows."""
    from transformers import AutoTokenizer

    dm = _module(kind, tmp_path, tiny_tokenizer_dir)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert dm.train_sizes == [40, 160] and dm.sampler.mixture == ([40, 160], [0.8, 0.2])
    drawn = []
    for epoch in range(5):
        dm.sampler.set_epoch(epoch)
        drawn += list(dm.sampler)
    assert len(drawn) == 1000 and len(loader) == 50
    n_alpha = sum(i < 40 for i in drawn)
    assert abs(n_alpha - 800) <= 4 * math.sqrt(1000 * 0.8 * 0.2), n_alpha
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    for i in (0, 39, 40, 199):
        row = dm.train_data[i]
        text = row["text"] if kind == "prompts" else tok.decode(
            row["input_ids"] if "input_ids" in row else row["responses"][0]["input_ids"]
            if "responses" in row else next(v for v in row.values() if isinstance(v, list)))
        assert ("alpha" if i < 40 else "beta") in text, (i, text)
