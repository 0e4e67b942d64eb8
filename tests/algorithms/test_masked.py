"""Masked reductions: hand-computed sums, means, variances and whitening; padding never leaks."""

from __future__ import annotations

import math

import torch

from rlhf_lightning.algorithms.masked import masked_mean, masked_sum, masked_var, whiten

# Row 0 has 3 real tokens [1, 2, 3]; row 1 has 1 real token [4]; padding holds inf/nan on purpose.
X = torch.tensor([[1.0, 2.0, 3.0, float("inf")], [4.0, float("nan"), float("-inf"), 7.0]])
M = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])


def test_sum_and_mean_ignore_padding_even_if_not_finite():
    assert masked_sum(X, M).item() == 10.0
    assert masked_sum(X, M, dim=1).tolist() == [6.0, 4.0]
    assert masked_mean(X, M).item() == 2.5  # 10 / 4 real tokens
    assert masked_mean(X, M.bool(), dim=1).tolist() == [2.0, 4.0]
    assert masked_mean(X, M, dim=0).tolist() == [2.5, 2.0, 3.0, 0.0]  # empty column → 0, not nan


def test_var_biased_and_unbiased():
    # values 1, 2, 3, 4: mean 2.5, squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5
    assert math.isclose(masked_var(X, M).item(), 5 / 3, rel_tol=1e-6)
    assert math.isclose(masked_var(X, M, unbiased=False).item(), 5 / 4, rel_tol=1e-6)
    one = torch.tensor([[3.0, 9.0]])
    assert masked_var(one, torch.tensor([[1, 0]])).item() == 0.0  # a single entry: 0, not nan
    assert masked_var(one, torch.tensor([[0, 0]])).item() == 0.0  # empty: 0, not nan


def test_whiten_hand_values_and_zero_padding():
    y = whiten(X, M)
    std = math.sqrt(5 / 3 + 1e-8)
    expected = [[-1.5 / std, -0.5 / std, 0.5 / std, 0.0], [1.5 / std, 0.0, 0.0, 0.0]]
    torch.testing.assert_close(y, torch.tensor(expected))
    assert abs(masked_mean(y, M).item()) < 1e-6 and math.isclose(masked_var(y, M).item(), 1.0, rel_tol=1e-5)
    y2 = whiten(X, M, shift_mean=False)  # mean kept: 2.5 added back on real tokens only
    torch.testing.assert_close(y2, torch.where(M.bool(), y + 2.5, 0.0))


def test_whiten_constant_is_finite_and_grad_skips_padding():
    c = torch.full((2, 3), 5.0)
    assert whiten(c, torch.ones(2, 3)).abs().max().item() == 0.0
    x = X.clone().requires_grad_(True)
    masked_mean(x, M).backward()
    assert torch.equal(x.grad, M.float() / 4)  # no nan from the inf/nan padding
