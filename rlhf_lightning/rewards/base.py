"""Base class of reward plugins (entry-point group ``rlhf_lightning.rewards``)."""

from __future__ import annotations

from typing import Any


class RewardFunction:
    """Scores completions: one number per sample, higher is better.

    Call contract::

        reward(prompts: list[str], completions: list[str], **columns) -> list[float] | Tensor  # (B,)

    ``prompts[i]`` and ``completions[i]`` form sample ``i``; ``columns`` carries the batch's other
    dataset columns, each a list of length ``B`` (e.g. ``answer=[...]`` for a reference answer).
    Return exactly ``B`` finite real numbers. Unknown columns must be ignored, so always accept
    ``**columns``. Callers check the output with
    :func:`rlhf_lightning.plugin_output.checked_scores`.

    Hyperparameters are ``__init__`` arguments (they become the YAML ``init_args``); the base
    constructor takes none, so subclasses call ``super().__init__()`` and add their own.

    Optional hooks a stage calls:

    - ``setup(device)``: load heavy state (a model) and move it to ``device``; called once per
      process before the first call (and again if the device changes). Plugins that hold no model
      ignore it. Lazy loading on first call must also work, for use outside a stage.
    - ``state_dict()`` / ``load_state_dict(state)``: small state that belongs in a training
      checkpoint (e.g. running normalisation statistics) — never model weights.
    - ``metrics()``: scalars to log after the last call (e.g. each component of a weighted sum).
    """

    def __init__(self) -> None:
        pass

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(prompts, completions, **columns)")

    def setup(self, device: Any = None) -> None:
        """Load and move any model to ``device`` (a ``torch.device`` or string); no-op by default."""

    def state_dict(self) -> dict[str, Any]:
        """Checkpointable state (not model weights); empty by default."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def metrics(self) -> dict[str, float]:
        """Scalars describing the last call, for logging; empty by default."""
        return {}
