"""Classifier constraint: a Hugging Face classifier whose score above a threshold marks a violation."""

from __future__ import annotations

from typing import Any, Literal

from rlhf_lightning.constraints.base import ConstraintChecker
from rlhf_lightning.rewards.model import Activation, SequenceClassifierScorer


class ClassifierConstraint(ConstraintChecker):
    """Cost = a sequence classifier's score (e.g. a harmfulness / cost model); violation when ``cost > threshold``.

    The cost is ``activation(logits)[:, label_index]``: with the default ``sigmoid`` a
    ``num_labels=1`` cost model gives a probability and ``threshold=0.5`` is natural; a
    multi-label classifier (e.g. toxic vs. non-toxic) uses ``softmax`` and the index of the bad
    label; ``activation="none"`` keeps raw logits (safe-rlhf cost models, threshold 0). Loading,
    chat templates, batching and truncation are those of
    :class:`~rlhf_lightning.rewards.model.SequenceClassifierScorer`.
    """

    def __init__(self, model: str, threshold: float = 0.5, label_index: int = 0, activation: Activation = "sigmoid",
                 tokenizer: str | None = None, batch_size: int = 16, max_length: int = 512,
                 chat_template: bool | None = None, truncation_side: Literal["left", "right"] = "left",
                 dtype: str | None = None, device: str | None = None, num_labels: int | None = None,
                 trust_remote_code: bool = False) -> None:
        super().__init__(threshold=threshold)
        self.scorer = SequenceClassifierScorer(
            model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length, label_index=label_index,
            activation=activation, chat_template=chat_template, truncation_side=truncation_side, dtype=dtype,
            device=device, num_labels=num_labels, trust_remote_code=trust_remote_code)

    def setup(self, device: Any = None) -> None:
        self.scorer.setup(device)

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        return self.scorer(list(prompts), list(completions))
