"""The ``rouge`` reward plugin: by entry-point name, against a reference column, with clear errors."""

from __future__ import annotations

import pytest

from rlhf_lightning import registry
from rlhf_lightning.errors import ConfigError, DataError
from rlhf_lightning.rewards.rouge import RougeReward


def test_entry_point_name_scores_against_the_reference_column():
    reward = registry.get("rewards", "rouge")(column="summary", variant="rouge1", scale=2.0)
    # "a b c" vs "a b": F = 0.8 (see tests/evaluation/test_rouge.py), scaled by 2; a list: best reference
    scores = reward(["p", "p", "p"], ["a b c", "a b c", "zzz"], summary=["a b", ["x", "a b"], "a b"])
    assert scores == pytest.approx([1.6, 1.6, 0.0])


def test_missing_column_and_bad_reference_are_named():
    reward = RougeReward(column="summary")
    with pytest.raises(ConfigError, match="'summary'.*columns present: answer"):
        reward(["p"], ["a"], answer=["a"])
    with pytest.raises(DataError, match="sample 1: column 'summary'.*got int"):
        reward(["p", "p"], ["a", "b"], summary=["a", 3])


@pytest.mark.parametrize("kwargs, option", [({"variant": "rouge3"}, "variant"), ({"measure": "f2"}, "measure"),
                                            ({"scale": 0}, "scale"), ({"column": ""}, "column")])
def test_bad_options_name_the_option(kwargs, option):
    with pytest.raises(ConfigError, match=option):
        RougeReward(**kwargs)
