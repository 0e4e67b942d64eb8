"""Critics for PPO with GAE: a value head on the policy backbone, or a separate value model.

Values are predicted for the state *before* each completion token, i.e. from the hidden state at
the position whose logits sample that token (the same positions the policy's log-probs use).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from rlhf_lightning.errors import ConfigError


class ValueHead(nn.Module):
    """``V(s_t) = w·h_t + b`` on the last hidden state ``h_t`` ``(B, T, H)`` → ``(B, T)``.

    Starts at zero output (zero weights and bias), so the critic's first values do not inject noise
    into the first advantages; it learns from the first value loss on.
    """

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.linear(hidden.to(self.linear.weight.dtype)).squeeze(-1)


def hidden_size_of(model: Any) -> int:
    config = model.config
    for key in ("hidden_size", "n_embd", "d_model"):
        if getattr(config, key, None):
            return int(getattr(config, key))
    text = getattr(config, "get_text_config", None)
    if text is not None:
        return int(text().hidden_size)
    raise ConfigError(f"cannot find the hidden size of {type(model).__name__} for a value head")


def score_head(model: Any) -> nn.Module:
    """The per-position scalar head of a decoder sequence classifier (``score``), for a separate critic."""
    head = getattr(model, "score", None)
    if not isinstance(head, nn.Module):
        raise ConfigError(f"a separate critic needs a decoder sequence classifier with a `score` head "
                          f"(e.g. this project's reward-model export of a causal LM); "
                          f"{type(model).__name__} has none")
    return head


def separate_critic_values(model: Any, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor,
                           prompt_width: int) -> Tensor:
    """Per-token values from a separate value model ``(N, P + C)`` → ``(N, C)``.

    The sequence classifier's head is applied at every position (not only the last, as for a
    reward), on the backbone's last hidden state.
    """
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                output_hidden_states=True, use_cache=False)
    hidden = out.hidden_states[-1][:, prompt_width - 1:-1]
    head = score_head(model)
    values = head(hidden.to(next(head.parameters()).dtype))
    return values[..., 0].float() if values.dim() == 3 else values.float()


def freeze_(model: nn.Module) -> nn.Module:
    """No gradients, eval mode (reference models, reward models)."""
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def disable_dropout_(model: nn.Module) -> int:
    """Set every dropout probability to 0 (old, new and reference log-probs must use one distribution)."""
    n = 0
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
            n += 1
    return n


__all__ = ["ValueHead", "hidden_size_of", "score_head", "separate_critic_values", "freeze_", "disable_dropout_"]
