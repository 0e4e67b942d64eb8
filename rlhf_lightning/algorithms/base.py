"""Base class of advantage estimators for online RL (group ``rlhf_lightning.advantage_estimators``).

Math layer: imports torch only.
"""

from __future__ import annotations

from torch import Tensor


class AdvantageEstimator:
    """Turns token-level rewards into advantages (and value targets when a critic is trained).

    Call contract::

        estimator(rewards, mask, values=None, group_ids=None) -> (advantages, returns)

    - ``rewards``: ``(B, T)`` token-level rewards over the completion tokens (the stage puts the
      sequence score on the last token and a per-token KL penalty everywhere).
    - ``mask``: ``(B, T)`` bool/0-1, ``1`` on real completion tokens, ``0`` on padding; outputs
      must be 0 where the mask is 0.
    - ``values``: ``(B, T)`` critic values when ``needs_critic = True``, else ``None``.
    - ``group_ids``: ``(B,)`` int id of the prompt each sample answers, so group-relative
      estimators (GRPO, RLOO) can compare samples of one prompt; ``None`` when not grouped. An
      estimator that needs groups sets ``needs_groups = True`` and the stage samples several
      completions per prompt.
    - ``advantages``: ``(B, T)``; ``returns``: ``(B, T)`` critic targets, or ``None`` when
      ``needs_critic = False``.

    Estimators hold only their hyperparameters (``gamma``, ``lam``, ``whiten`` …) and must not keep
    state between calls (state breaks exact resumption).
    """

    needs_critic: bool = False
    needs_groups: bool = False

    def __init__(self) -> None:
        pass

    def __call__(self, rewards: Tensor, mask: Tensor, values: Tensor | None = None,
                 group_ids: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__")
