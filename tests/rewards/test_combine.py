"""Weighted sum of rewards: values, per-component scores and metrics, errors naming the component."""

from __future__ import annotations

import math

import pytest

from rlhf_lightning import RewardFunction
from rlhf_lightning.errors import ConfigError, PluginError
from rlhf_lightning.rewards.combine import WeightedSum
from rlhf_lightning.rewards.rules import KeywordReward, LengthReward


def test_weighted_sum_values_and_components():
    """length(target 2, scale 2) on "a b", "a": 1, 0.5; keyword(a) fraction: 1, 1.

    total = 2·length + 0.5·keyword = 2.5, 1.5.
    """
    r = WeightedSum([LengthReward(target=2, scale=2), KeywordReward(["a"])], weights=[2.0, 0.5])
    assert r(["p", "p"], ["a b", "a"]) == pytest.approx([2.5, 1.5])
    assert r.names == ["length", "keyword"]
    assert r.last_components == {"length": [1.0, 0.5], "keyword": [1.0, 1.0]}
    assert r.metrics() == {"length": 0.75, "keyword": 1.0}


def test_names_default_unique_and_weights_default_one():
    r = WeightedSum([KeywordReward(["a"]), KeywordReward(["b"])])
    assert r.names == ["keyword", "keyword_2"] and r.weights == [1.0, 1.0]
    assert r(["p"], ["a b"]) == [2.0]
    assert WeightedSum([KeywordReward(["a"])], names=["has_a"]).names == ["has_a"]


def test_bad_component_is_named():
    class Nan(RewardFunction):
        def __call__(self, prompts, completions, **columns):
            return [math.nan] * len(prompts)

    r = WeightedSum([LengthReward(), Nan()], names=["len", "broken_one"])
    with pytest.raises(PluginError, match=r"reward 'broken_one' returned a non-finite score"):
        r(["p"], ["x"])


def test_config_errors():
    with pytest.raises(ConfigError, match="2 rewards but 1 weights"):
        WeightedSum([LengthReward(), LengthReward()], weights=[1.0])
    with pytest.raises(ConfigError):
        WeightedSum([])
    with pytest.raises(ConfigError):
        WeightedSum([LengthReward(), LengthReward()], names=["a", "a"])
