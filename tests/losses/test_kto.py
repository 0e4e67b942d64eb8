"""KTO and unpaired APO-zero against hand-derived values.

Inputs make every sigmoid known in closed form: ``β·(r - z0) = ±ln 3`` gives σ = 3/4 or 1/4, and
``r = z0`` gives σ(0) = 1/2. Row by row (β = 1 unless said otherwise)::

    desirable,   r = ln 3 + z0     ->  λ_D (1 - σ(ln 3))  = λ_D / 4
    desirable,   r = z0 - ln 3     ->  λ_D (1 - σ(-ln 3)) = 3 λ_D / 4
    undesirable, r = z0 - ln 3     ->  λ_U (1 - σ(ln 3))  = λ_U / 4
    undesirable, r = z0            ->  λ_U / 2
"""

from __future__ import annotations

import math

import pytest
import torch

from rlhf_lightning.errors import InvalidOption
from rlhf_lightning.losses.kto import (
    APOZeroUnpairedLoss,
    KTOLoss,
    apo_zero_unpaired_loss,
    kl_estimate,
    kto_loss,
)

LN3 = math.log(3)
T = torch.tensor


def test_kl_estimate_is_the_detached_mean_log_ratio():
    kl_logps = T([-2.0, -4.0, -3.0], requires_grad=True)
    ref = T([-3.0, -3.0, -3.5])
    kl = kl_estimate(kl_logps, ref)  # mean(1, -1, 0.5) = 1/6
    assert kl.item() == pytest.approx(1 / 6) and not kl.requires_grad


def test_kto_rows_against_hand_values_and_weights():
    z0 = 0.5
    r = T([LN3 + z0, z0 - LN3, z0 - LN3, z0])
    labels = T([True, True, False, False])
    got = kto_loss(r, labels, T(z0), beta=1.0, desirable_weight=2.0, undesirable_weight=0.5)
    torch.testing.assert_close(got, T([2.0 / 4, 2.0 * 3 / 4, 0.5 / 4, 0.5 / 2]))


def test_beta_scales_the_distance_to_the_reference_point():
    # β = 2, r - z0 = ln3 / 2  ->  β (r - z0) = ln 3  ->  1/4
    got = kto_loss(T([LN3 / 2 + 1.0]), T([True]), T(1.0), beta=2.0)
    torch.testing.assert_close(got, T([0.25]))


def test_a_negative_kl_estimate_is_clamped_at_zero():
    r = T([LN3, -LN3])
    labels = T([True, False])
    torch.testing.assert_close(kto_loss(r, labels, T(-5.0), beta=1.0), T([0.25, 0.25]))
    torch.testing.assert_close(kto_loss(r, labels, T(-5.0)), kto_loss(r, labels, T(0.0)))


def test_no_gradient_flows_through_the_reference_point():
    r = T([0.3, -0.2], requires_grad=True)
    kl = T(0.1, requires_grad=True)
    kto_loss(r, T([True, False]), kl, beta=1.0).sum().backward()
    assert kl.grad is None
    # d/dr of 1 - σ(r - z0) is -σ'(.) = -σ(1-σ); of 1 - σ(z0 - r) it is +σ'(.)
    s0, s1 = torch.sigmoid(T(0.2)), torch.sigmoid(T(0.3))
    torch.testing.assert_close(r.grad, torch.stack([-s0 * (1 - s0), s1 * (1 - s1)]))


def test_apo_zero_unpaired_has_no_reference_point():
    r = T([LN3, -LN3, LN3, 0.0])
    labels = T([True, True, False, False])
    got = apo_zero_unpaired_loss(r, labels, beta=1.0, desirable_weight=1.0, undesirable_weight=2.0)
    torch.testing.assert_close(got, T([0.25, 0.75, 2 * 0.75, 2 * 0.5]))


def test_kto_plugin_returns_losses_rewards_and_clamped_kl():
    loss = KTOLoss(beta=0.5, desirable_weight=1.0, undesirable_weight=1.0)
    logps, ref = T([-1.0, -3.0]), T([-2.0, -2.0])  # r = (1, -1)
    losses, metrics = loss(logps, ref, T([True, False]), kl=T(-0.2))
    s = torch.sigmoid(T(0.5))
    torch.testing.assert_close(losses, T([1 - s, 1 - s]))  # z0 = 0: β r = ±0.5 on the right side each
    torch.testing.assert_close(metrics["rewards"], T([0.5, -0.5]))
    assert metrics["kl"].item() == 0.0
    assert loss.needs_kl and not APOZeroUnpairedLoss.needs_kl
    with pytest.raises(ValueError, match="needs the KL estimate"):
        loss(logps, ref, T([True, False]))


def test_apo_zero_plugin_needs_no_kl():
    losses, metrics = APOZeroUnpairedLoss(beta=1.0)(T([LN3]), T([0.0]), T([False]))
    torch.testing.assert_close(losses, T([0.75]))
    assert "kl" not in metrics


@pytest.mark.parametrize("kwargs, option", [
    ({"beta": 0.0}, "beta"), ({"beta": -1.0}, "beta"), ({"desirable_weight": -1.0}, "desirable_weight"),
    ({"undesirable_weight": -0.1}, "undesirable_weight"),
    ({"desirable_weight": 0.0, "undesirable_weight": 0.0}, "desirable_weight"),
])
def test_bad_options_name_the_option(kwargs, option):
    with pytest.raises(InvalidOption) as info:
        KTOLoss(**kwargs)
    assert info.value.option == option
