"""ROUGE against a reference column: the summarisation reward (and evaluation score)."""

from __future__ import annotations

from typing import Any

from rlhf_lightning.errors import ConfigError, DataError
from rlhf_lightning.evaluation.rouge import VARIANTS, Measure, Variant, rouge
from rlhf_lightning.option_checks import require
from rlhf_lightning.rewards.base import RewardFunction

MEASURES = ("f1", "precision", "recall")


class RougeReward(RewardFunction):
    """Scores each completion by ROUGE against the sample's reference text(s) in a dataset column.

    ``variant``: ``rouge1`` / ``rouge2`` (unigram / bigram overlap) or ``rougeL`` (longest common
    subsequence); ``measure``: ``f1`` (default), ``precision`` or ``recall``; ``scale`` multiplies
    the score (0..1 by default). A reference may be a string or a list of strings (best one counts).
    See :mod:`rlhf_lightning.evaluation.rouge` for the tokenisation (CJK per character, no stemming).
    """

    def __init__(self, column: str = "reference", variant: Variant = "rougeL", measure: Measure = "f1",
                 scale: float = 1.0) -> None:
        super().__init__()
        require(self, "variant", variant in VARIANTS, f"must be one of {', '.join(VARIANTS)}", variant)
        require(self, "measure", measure in MEASURES, f"must be one of {', '.join(MEASURES)}", measure)
        require(self, "scale", isinstance(scale, (int, float)) and scale > 0, "must be > 0", scale)
        require(self, "column", isinstance(column, str) and bool(column), "must be a column name", column)
        self.column, self.variant, self.measure, self.scale = column, variant, measure, float(scale)

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        if self.column not in columns:
            raise ConfigError(f"rouge reward needs the dataset column {self.column!r} (the reference summary); "
                              f"columns present: {', '.join(sorted(columns)) or '(none)'}")
        out = []
        for i, (text, ref) in enumerate(zip(completions, columns[self.column], strict=True)):
            refs = [ref] if isinstance(ref, str) else ref
            if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
                raise DataError(f"rouge reward: sample {i}: column {self.column!r} must be a string or a non-empty "
                                f"list of strings, got {type(ref).__name__}")
            out.append(self.scale * rouge(text, refs, self.variant, self.measure))
        return out
