"""Calling reward / constraint plugins on sampled completions (rollout/scoring.py)."""

from __future__ import annotations

import pytest
import torch

from rlhf_lightning.errors import PluginError
from rlhf_lightning.rewards.base import RewardFunction
from rlhf_lightning.rewards.rules import LengthReward
from rlhf_lightning.rollout.samples import Rollout, position_ids_of
from rlhf_lightning.rollout.scoring import NamedPlugin, check_plugin_setup, plugin_names, score, weighted_total


class Fixed(RewardFunction):
    def __init__(self, values):
        super().__init__()
        self.values = values

    def __call__(self, prompts, completions, **columns):
        return list(self.values)


def rollout(n=3) -> Rollout:
    ids = torch.ones(n, 3, dtype=torch.long)
    return Rollout(input_ids=ids, attention_mask=torch.ones_like(ids), position_ids=position_ids_of(ids),
                   prompt_width=1, completion_ids=ids[:, 1:], mask=torch.ones(n, 2, dtype=torch.bool),
                   finished=torch.ones(n, dtype=torch.bool), group_ids=torch.arange(n), prompts=["p"] * n,
                   completions=["a", "bb", "ccc"][:n])


def test_weighted_total_of_named_plugins():
    """[1, 2, 3] · 1 + [10, 0, -10] · 0.5 = [6, 2, -2]; a plain (name, plugin, weight) tuple is taken too."""
    plugins = [NamedPlugin("a", Fixed([1.0, 2.0, 3.0])), ("b", Fixed([10.0, 0.0, -10.0]), 0.5)]
    values, invalid = score(plugins, rollout())
    assert values["a"].tolist() == [1.0, 2.0, 3.0] and not invalid.any()
    assert weighted_total(values, plugins, 3, "cpu").tolist() == [6.0, 2.0, -2.0]
    assert NamedPlugin("c", None).weight == 1.0


def test_non_finite_score_is_marked_or_refused_naming_the_plugin():
    plugins = [NamedPlugin("judge", Fixed([1.0, float("nan"), 3.0]))]
    _, invalid = score(plugins, rollout(), skip_invalid=True)
    assert invalid.tolist() == [False, True, False]
    with pytest.raises(PluginError, match="judge"):
        score(plugins, rollout())


def test_plugin_names_are_given_entry_point_or_class_names_made_unique():
    assert plugin_names([LengthReward(), LengthReward(), Fixed([])]) == ["length", "length_2", "Fixed"]
    assert plugin_names([LengthReward(), Fixed([])], ["mine", None]) == ["mine", "Fixed"]


def test_setup_failure_names_the_plugin():
    class Broken(Fixed):
        def setup(self, device):
            raise RuntimeError("no weights")

    check_plugin_setup([Fixed([])], "cpu")  # no hook: nothing to do
    with pytest.raises(PluginError, match=r"Broken.setup\(cpu\) failed: RuntimeError: no weights"):
        check_plugin_setup([Broken([])], "cpu")
