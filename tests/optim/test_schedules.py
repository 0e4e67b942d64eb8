"""WarmupCosineLR factors at hand-computed steps."""

import math

import pytest
import torch

from rlhf_lightning.optim.schedules import WarmupCosineLR


def _factors(**kwargs):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WarmupCosineLR(opt, **kwargs)
    return [sched._factor(s) for s in range(12)]


def test_warmup_then_cosine():
    f = _factors(warmup_steps=2, total_steps=10)
    assert f[0] == pytest.approx(0.5) and f[1] == pytest.approx(1.0)
    # step 6: progress (6-2)/8 = 0.5 -> 0.5 * (1 + cos(pi/2)) = 0.5
    assert f[6] == pytest.approx(0.5)
    assert f[10] == pytest.approx(0.0, abs=1e-12) and f[11] == pytest.approx(0.0, abs=1e-12)


def test_min_ratio_linear_and_warmup_ratio():
    f = _factors(warmup_ratio=0.2, total_steps=10, decay="linear", min_lr_ratio=0.1)
    assert f[0] == pytest.approx(0.5)  # warm-up = 2 steps
    assert f[6] == pytest.approx(0.1 + 0.9 * 0.5)
    f = _factors(total_steps=None, warmup_steps=0)
    assert all(x == 1.0 for x in f)  # unknown length: constant


def test_cosine_formula_midpoint():
    f = _factors(total_steps=8)
    assert f[2] == pytest.approx(0.5 * (1 + math.cos(math.pi * 2 / 8)))


def test_bad_decay():
    with pytest.raises(ValueError, match="decay"):
        _factors(decay="step")
