"""Classifier-threshold constraint (the seeds' constraint model) on a tiny local classifier."""

from __future__ import annotations

import pytest
import torch

from rlhf_lightning.constraints.classifier import ClassifierConstraint
from rlhf_lightning.rewards.model import ClassifierReward
from tests.rewards.classifiers import build_tiny_classifier


@pytest.fixture(scope="module")
def cost_model(tmp_path_factory):
    return build_tiny_classifier(tmp_path_factory.mktemp("cost"), seed=1)


def test_cost_is_sigmoid_of_the_logit_and_threshold_marks_violations(cost_model):
    prompts, comps = ["Explain gravity.", "hello", "写一首诗。"], ["The earth pulls the moon.", "thank you", "春风。"]
    logits = ClassifierReward(str(cost_model))(prompts, comps)
    costs = ClassifierConstraint(str(cost_model))(prompts, comps)
    assert costs == pytest.approx(torch.sigmoid(torch.tensor(logits)).tolist(), abs=1e-6)
    middle = sorted(costs)[1]
    checker = ClassifierConstraint(str(cost_model), threshold=middle)
    assert checker.violated(costs) == [c > middle for c in costs] and sum(checker.violated(costs)) == 1
    raw = ClassifierConstraint(str(cost_model), activation="none", threshold=0.0)
    assert raw(prompts, comps) == pytest.approx(logits, abs=1e-6)
