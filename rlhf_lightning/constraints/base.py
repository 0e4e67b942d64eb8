"""Base class of constraint plugins (entry-point group ``rlhf_lightning.constraints``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ConstraintChecker:
    """Measures a cost per sample; a cost above ``threshold`` is a violation.

    Call contract::

        checker(prompts: list[str], completions: list[str], **columns) -> list[float] | Tensor  # (B,)

    Return exactly ``B`` finite, real costs (0 = fine; larger = worse). ``columns`` are the batch's
    other dataset columns, as for :class:`~rlhf_lightning.RewardFunction`. ``threshold`` says where
    a cost counts as a violation (``cost > threshold``); a constrained PPO skips, penalises or
    prices (Lagrangian) the costs, so make them graded where possible, not just 0/1.

    The base constructor takes only the optional ``threshold``; subclasses expose it as their own
    ``__init__`` argument and pass it on. ``setup``, ``state_dict``, ``load_state_dict`` and
    ``metrics`` are the same optional hooks as on :class:`~rlhf_lightning.RewardFunction`.
    """

    def __init__(self, threshold: float = 0.0) -> None:
        self.threshold = float(threshold)

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(prompts, completions, **columns)")

    def violated(self, costs: Sequence[float]) -> list[bool]:
        """Which costs count as violations (``cost > threshold``)."""
        return [float(c) > self.threshold for c in costs]

    def setup(self, device: Any = None) -> None:
        """Load and move any model to ``device``; no-op by default."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def metrics(self) -> dict[str, float]:
        return {}
