"""Weighted mixtures of training sources: which row of which source each sample of an epoch is.

A mixture of sources ``0..S-1`` with ``n_s`` rows each and weights ``w_s`` (sampling probabilities,
normalised over the sources, as TRL's ``dataset_mixture`` / LLaMA-Factory's ``interleave_probs``)
defines an epoch of ``N = sum_s n_s`` samples (the size of the plain concatenation): sample ``t``
draws its source ``s_t ~ Categorical(w)`` independently, and the ``k``-th sample drawn from source
``s`` is row ``perm_{s,p}[k mod n_s]`` of that source, ``p = k // n_s`` the pass over it, each pass a
fresh seeded permutation (file order without shuffling). So a source is read without repeats until
all its rows were used once, then starts over (an up-weighted small source repeats, a down-weighted
large one is subsampled), and source ``s`` gets ``N w_s`` samples an epoch in expectation
(binomial: standard deviation ``sqrt(N w_s (1 - w_s))``).

The order is a function of ``(sizes, weights, seed, epoch)`` only, so the resumable sampler
(:mod:`~rlhf_lightning.datamodules.resumable`) resumes a mixture mid-epoch with the same
``(epoch, samples_done)`` position as a plain epoch.
"""

from __future__ import annotations

import torch

# Keeps a mixture's generators apart from the plain per-epoch permutation of the same seed.
_STREAM = 7_919


def normalised(weights: list[float]) -> list[float]:
    """Weights divided by their sum (all positive and finite: :func:`~rlhf_lightning.data.spec.as_sources`
    checks them)."""
    total = float(sum(weights))
    return [float(w) / total for w in weights]


def mixture_order(sizes: list[int], weights: list[float], *, seed: int, epoch: int,
                  shuffle: bool = True) -> list[int]:
    """Indices into the concatenation of the sources (source ``s`` at offset ``sum(sizes[:s])``) for
    one epoch of ``sum(sizes)`` samples, as the module docstring defines them.

    Args:
        sizes: rows per source (each at least 1).
        weights: one positive weight per source (normalised here).
        seed, epoch: the order is a function of these (and of sizes and weights) only.
        shuffle: a fresh random permutation for each pass over a source; else its rows in order.
    """
    if len(sizes) != len(weights):
        raise ValueError(f"{len(sizes)} source sizes but {len(weights)} weights")
    if any(n < 1 for n in sizes):
        raise ValueError(f"every source of a mixture needs rows, got sizes {sizes}")
    total = sum(sizes)
    gen = torch.Generator().manual_seed(seed * _STREAM + epoch)
    probs = torch.tensor(normalised(weights), dtype=torch.float64)
    choices = torch.multinomial(probs, total, replacement=True, generator=gen).tolist()
    offsets = [sum(sizes[:s]) for s in range(len(sizes))]
    drawn = [0] * len(sizes)
    passes: dict[tuple[int, int], list[int]] = {}
    order = []
    for s in choices:
        k, n = drawn[s], sizes[s]
        p = k // n
        if (s, p) not in passes:
            if shuffle:
                g = torch.Generator().manual_seed(((seed * _STREAM + epoch) * 1_000_003 + s) * 1_009 + p)
                passes[(s, p)] = torch.randperm(n, generator=g).tolist()
            else:
                passes[(s, p)] = list(range(n))
        order.append(offsets[s] + passes[(s, p)][k % n])
        drawn[s] += 1
    return order
