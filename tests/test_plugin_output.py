"""Bad plugin output is never turned into a number: each case names the plugin and the sample."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rlhf_lightning import RewardFunction
from rlhf_lightning.errors import DataError, PluginError
from rlhf_lightning.plugin_output import checked_scores, validate_scores


class Returns(RewardFunction):
    """Returns a fixed value."""

    def __init__(self, value=None):
        super().__init__()
        self.value = value

    def __call__(self, prompts, completions, **columns):
        return self.value


class FailsOn(RewardFunction):
    """Raises on the completion 'boom'."""

    def __call__(self, prompts, completions, **columns):
        return [1 / 0 if c == "boom" else 1.0 for c in completions]


PROMPTS = ["first prompt", "second prompt", "third prompt"]
COMPS = ["a", "b", "c"]


@pytest.mark.parametrize("value", [[1.0, 2.0, 3.0], (1, 2, 3), torch.tensor([1.0, 2.0, 3.0]),
                                   np.array([1.0, 2.0, 3.0], dtype=np.float32), [np.float32(1), 2, 3.0]])
def test_good_outputs(value):
    assert checked_scores(Returns(value), PROMPTS, COMPS, name="r") == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(("value", "match"), [
    ([1.0, 2.0], r"'r' returned 2 scores for 3 samples"),
    ([1.0, math.nan, 3.0], r"'r' returned a non-finite score \(nan\) for sample 1 \(prompt 'second prompt'\)"),
    ([1.0, 2.0, math.inf], r"non-finite score \(inf\) for sample 2"),
    (torch.tensor([1.0, -math.inf, 0.0]), r"non-finite score \(-inf\) for sample 1"),
    ([1.0, "2.0", 3.0], r"non-numeric score '2.0' \(str\) for sample 1"),
    ([None, 1.0, 2.0], r"non-numeric score None \(NoneType\) for sample 0"),
    ([True, 1.0, 2.0], r"non-numeric score True \(bool\) for sample 0"),
    ([1 + 2j, 1.0, 2.0], r"non-numeric score"),
    (torch.ones(3, 1), r"shape \(3, 1\)"),
    (torch.tensor([True, False, True]), r"dtype torch.bool"),
    (np.array(["a", "b", "c"]), r"dtype <U1"),
    (3.0, r"returned float; expected a list of 3 scores"),
    ("1 2 3", r"returned str"),
    (None, r"returned NoneType"),
])
def test_bad_outputs_name_plugin_and_sample(value, match):
    with pytest.raises(PluginError, match=match):
        checked_scores(Returns(value), PROMPTS, COMPS, name="'r'")


def test_exception_inside_plugin_names_plugin_and_sample():
    with pytest.raises(PluginError, match=r"'boomer' raised ZeroDivisionError: .* \(on sample 1 "
                                          r"\(prompt 'second prompt'\)\)") as info:
        checked_scores(FailsOn(), PROMPTS, ["a", "boom", "c"], name="'boomer'")
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_offset_numbers_samples_in_a_file_and_default_label():
    with pytest.raises(PluginError, match=r"for sample 12 "):
        checked_scores(Returns([0.0, math.nan, 0.0]), PROMPTS, COMPS, offset=11)
    with pytest.raises(PluginError, match=r"test_plugin_output.Returns"):  # unregistered: class path
        checked_scores(Returns([0.0]), PROMPTS, COMPS)


def test_user_errors_in_plugins_are_wrapped_without_per_sample_retry():
    calls = []

    class Picky(RewardFunction):
        def __call__(self, prompts, completions, **columns):
            calls.append(len(prompts))
            raise DataError("needs column 'answer'")

    with pytest.raises(PluginError, match=r"'picky' failed: needs column 'answer'"):
        checked_scores(Picky(), PROMPTS, COMPS, name="'picky'")
    assert calls == [3]


def test_prompt_completion_mismatch_and_columns_reach_plugin():
    with pytest.raises(PluginError, match="3 prompts but 2 completions"):
        checked_scores(Returns([1.0] * 3), PROMPTS, COMPS[:2])

    class Echo(RewardFunction):
        def __call__(self, prompts, completions, **columns):
            return [float(x) for x in columns["gold"]]

    assert checked_scores(Echo(), PROMPTS, COMPS, {"gold": [1, 2, 3]}) == [1.0, 2.0, 3.0]
    assert validate_scores([1, 2], 2, plugin="x") == [1.0, 2.0]


def test_environment_errors_are_raised_once_not_re_run_per_sample():
    """A network or disk failure is no sample's fault: re-running per sample would repeat it N times."""
    calls = []

    class Offline(RewardFunction):
        def __call__(self, prompts, completions, **columns):
            calls.append(len(prompts))
            raise ConnectionResetError("peer reset")

    with pytest.raises(PluginError, match=r"'judge' raised ConnectionResetError: peer reset \(on the batch of 3\)"):
        checked_scores(Offline(), PROMPTS, COMPS, name="'judge'")
    assert calls == [3]


@pytest.mark.parametrize("value", [
    np.array([1.0, np.nan, 3.0]),
    np.array([1.0, np.inf, 3.0], dtype=np.float32),
    [np.float32(1), np.float32("nan"), np.float64(3)],
    [1.0, np.float16("-inf"), 3],
    torch.tensor([1.0, math.nan, 3.0]),
    [1.0, math.nan, 3.0],
], ids=["np-array-nan", "np-float32-array-inf", "np-scalars-nan", "np-float16-scalar-inf", "tensor", "list"])
def test_skip_invalid_collects_non_finite_values_of_every_kind(value):
    invalid: list[int] = []
    assert checked_scores(Returns(value), PROMPTS, COMPS, name="r", invalid=invalid) == [1.0, 0.0, 3.0]
    assert invalid == [1]


def test_ppo_on_invalid_skip_marks_numpy_nan_samples():
    from rlhf_lightning.modules.ppo.experience import total_reward
    from rlhf_lightning.rollout.samples import Rollout, position_ids_of

    ids = torch.ones(3, 3, dtype=torch.long)
    rollout = Rollout(input_ids=ids, attention_mask=torch.ones_like(ids), position_ids=position_ids_of(ids),
                      prompt_width=1, completion_ids=ids[:, 1:], mask=torch.ones(3, 2, dtype=torch.bool),
                      finished=torch.ones(3, dtype=torch.bool), group_ids=torch.arange(3), prompts=PROMPTS,
                      completions=COMPS)
    plugins = [("judge", Returns(np.array([1.0, np.nan, 3.0])), 1.0)]
    total, invalid, logs = total_reward(plugins, rollout, skip_invalid=True)
    assert invalid.tolist() == [False, True, False] and logs["reward/invalid"] == 1.0
    assert total.tolist() == [1.0, 2.0, 3.0]  # the invalid sample takes the valid samples' mean
