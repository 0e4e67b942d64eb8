"""Model-based reward against a tiny local Llama classifier and the real pretrained MiniLM encoder."""

from __future__ import annotations

import math
import os

import pytest
import torch

from rlhf_lightning.data.reward_inputs import uses_chat_template
from rlhf_lightning.errors import ConfigError, ModelError, PluginError
from rlhf_lightning.plugin_output import checked_scores
from rlhf_lightning.rewards.model import ClassifierReward, RunningNorm
from tests.rewards.classifiers import build_tiny_classifier, minilm_dir

PROMPTS = ["Write a poem about spring.", "Explain gravity.", "Translate: good morning.", "写一首诗。", "hello"]
COMPLETIONS = ["Spring wind brings flowers.", "Gravity pulls objects together.", "Bonjour.", "春风拂面。",
               "hello world thank you"]


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory):
    return build_tiny_classifier(tmp_path_factory.mktemp("rm"))


@pytest.fixture(scope="module")
def tiny_rm_scores(tiny_rm):
    return ClassifierReward(str(tiny_rm), batch_size=2)(PROMPTS, COMPLETIONS)


def test_matches_a_direct_forward_with_the_chat_template(tiny_rm, tiny_rm_scores):
    """The score is the classifier's logit on [user: prompt, assistant: completion] rendered by its template."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_rm)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_rm).eval()
    expected = []
    for p, c in zip(PROMPTS, COMPLETIONS, strict=True):
        text = tok.apply_chat_template([{"role": "user", "content": p}, {"role": "assistant", "content": c}],
                                       tokenize=False)
        assert text.startswith("<s><|im_start|>user\n")
        ids = tok(text, add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            expected.append(model(**ids).logits[0, 0].item())
    assert tiny_rm_scores == pytest.approx(expected, abs=1e-5)


def test_batching_invariance_determinism_and_eval_mode(tiny_rm, tiny_rm_scores):
    reward = ClassifierReward(str(tiny_rm), batch_size=5)
    assert reward(PROMPTS, COMPLETIONS) == pytest.approx(tiny_rm_scores, abs=1e-5)  # padding does not matter
    assert reward(PROMPTS, COMPLETIONS) == reward(PROMPTS, COMPLETIONS)
    model = reward.scorer.model
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert len(set(tiny_rm_scores)) == len(tiny_rm_scores) and all(math.isfinite(s) for s in tiny_rm_scores)


def test_left_truncation_keeps_the_end_of_the_completion(tiny_rm):
    """With max_length 8, two samples that differ only in their beginnings see the same 8 tokens."""
    reward = ClassifierReward(str(tiny_rm), max_length=8)
    tail = " the earth pulls the moon."
    a, b = reward(["Explain gravity.", "Write a poem about spring."], ["Gravity pulls." + tail, "Birds sing." + tail])
    assert a == pytest.approx(b, abs=1e-6)
    assert ClassifierReward(str(tiny_rm), max_length=8, truncation_side="right")(["a", "b"], ["x", "y"])


def test_setup_moves_the_model_and_text_pair_without_template(tmp_path):
    path = build_tiny_classifier(tmp_path / "notemplate", chat_template=False, num_labels=2)
    reward = ClassifierReward(str(path), label_index=1, activation="softmax")
    reward.setup("cpu")
    assert reward.scorer.model is not None and not uses_chat_template(reward.scorer.tokenizer)
    scores = reward(PROMPTS[:2], COMPLETIONS[:2])
    assert all(0.0 < s < 1.0 for s in scores)
    with pytest.raises(ConfigError, match="has no chat template"):
        ClassifierReward(str(path), chat_template=True)(["p"], ["c"])
    with pytest.raises(ConfigError, match="label_index 2 but .* has 2 labels"):
        ClassifierReward(str(path), label_index=2)(["p"], ["c"])


def test_missing_model_is_a_clear_error(tmp_path):
    reward = ClassifierReward(str(tmp_path / "nowhere"))
    with pytest.raises(ModelError, match="cannot load sequence classifier"):
        reward(["p"], ["c"])
    with pytest.raises(PluginError, match="failed: cannot load"):
        checked_scores(reward, ["p"], ["c"], name="reward 'rm'")


def test_running_normalisation_and_its_state(tiny_rm):
    """RunningNorm on [1,2,3] then [4,5]: mean 3, population variance 2 (Σ(x-3)² = 10 over 5)."""
    norm = RunningNorm()
    norm.update([1.0, 2.0, 3.0])
    norm.update([4.0, 5.0])
    assert (norm.count, norm.mean, norm.std) == (5, pytest.approx(3.0), pytest.approx(math.sqrt(2.0)))
    assert norm([3.0, 3.0 + math.sqrt(2.0)]) == pytest.approx([0.0, 1.0])

    reward = ClassifierReward(str(tiny_rm), normalize=True)
    first = reward(PROMPTS, COMPLETIONS)
    mean = sum(first) / len(first)
    assert mean == pytest.approx(0.0, abs=1e-6)
    assert math.sqrt(sum((s - mean) ** 2 for s in first) / len(first)) == pytest.approx(1.0, abs=1e-4)
    state = reward.state_dict()
    resumed = ClassifierReward(str(tiny_rm), normalize=True)
    resumed.load_state_dict(state)
    assert resumed(PROMPTS[:2], COMPLETIONS[:2]) == pytest.approx(reward(PROMPTS[:2], COMPLETIONS[:2]), abs=1e-6)
    assert set(reward.metrics()) == {"raw_mean", "running_mean", "running_std"}


def test_real_pretrained_minilm_offline():
    """all-MiniLM-L6-v2 with a fresh scalar head: random head, so shape, finiteness, determinism, batching."""
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    reward = ClassifierReward(str(minilm_dir()), num_labels=1, batch_size=2, max_length=128)
    scores = checked_scores(reward, PROMPTS, COMPLETIONS, name="minilm")
    assert len(scores) == len(PROMPTS) and all(math.isfinite(s) for s in scores)
    assert reward(PROMPTS, COMPLETIONS) == pytest.approx(scores, abs=1e-6)
    reward.scorer.batch_size = 5
    assert reward(PROMPTS, COMPLETIONS) == pytest.approx(scores, abs=1e-5)
    assert not uses_chat_template(reward.scorer.tokenizer)  # BERT: [CLS] prompt [SEP] completion [SEP]
    assert reward.scorer.render("hi", "there") == "[CLS] hi [SEP] there [SEP]"
    assert type(reward.scorer.model).__name__ == "BertForSequenceClassification"
