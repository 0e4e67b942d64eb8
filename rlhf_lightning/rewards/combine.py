"""Weighted sum of several rewards, keeping each component for logging."""

from __future__ import annotations

from typing import Any

from rlhf_lightning.errors import ConfigError
from rlhf_lightning.option_checks import require
from rlhf_lightning.plugin_output import checked_scores
from rlhf_lightning.rewards.base import RewardFunction


def component_names(plugins: list[Any], names: list[str] | None = None) -> list[str]:
    """Unique labels for plugins: given ``names``, else entry-point names (``keyword``, ``keyword_2`` …)."""
    from rlhf_lightning import registry

    if names is not None:
        if len(names) != len(plugins) or len(set(names)) != len(names):
            raise ConfigError(f"names must be {len(plugins)} unique strings, got {names}")
        return list(names)
    out: list[str] = []
    for plugin in plugins:
        base = registry.name_of(plugin) or type(plugin).__name__
        label, k = base, 2
        while label in out:
            label, k = f"{base}_{k}", k + 1
        out.append(label)
    return out


class WeightedSum(RewardFunction):
    """Sum of other rewards times their weights: ``score = Σ_k weights[k] · rewards[k](...)``.

    Each component is called through :func:`~rlhf_lightning.plugin_output.checked_scores`, so a bad
    component is named in the error. After each call, :attr:`last_components` holds every
    component's raw per-sample scores and :meth:`metrics` their batch means, keyed by ``names``
    (default: the components' entry-point names).
    """

    def __init__(self, rewards: list[RewardFunction], weights: list[float] | None = None,
                 names: list[str] | None = None) -> None:
        super().__init__()
        if not rewards:
            raise ConfigError("weighted_sum needs at least one reward")
        require(self, "weights", weights is None or len(weights) == len(rewards),
                f"must give one weight per reward ({len(rewards)})", weights,
                f"weighted_sum: {len(rewards)} rewards but {len(weights or [])} weights")
        self.rewards = list(rewards)
        self.weights = [float(w) for w in weights] if weights is not None else [1.0] * len(rewards)
        self.names = component_names(self.rewards, names)
        self.last_components: dict[str, list[float]] = {}

    def components(self, prompts: list[str], completions: list[str], **columns: Any) -> dict[str, list[float]]:
        """Every component's validated, unweighted scores, by name."""
        return {name: checked_scores(reward, prompts, completions, columns, name=f"reward {name!r}")
                for name, reward in zip(self.names, self.rewards, strict=True)}

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        parts = self.components(prompts, completions, **columns)
        self.last_components = parts
        total = [0.0] * len(prompts)
        for weight, scores in zip(self.weights, parts.values(), strict=True):
            total = [t + weight * s for t, s in zip(total, scores, strict=True)]
        return total

    def setup(self, device: Any = None) -> None:
        for reward in self.rewards:
            reward.setup(device)

    def state_dict(self) -> dict[str, Any]:
        return {name: r.state_dict() for name, r in zip(self.names, self.rewards, strict=True) if r.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, reward in zip(self.names, self.rewards, strict=True):
            if name in state:
                reward.load_state_dict(state[name])

    def metrics(self) -> dict[str, float]:
        out = {name: sum(s) / len(s) for name, s in self.last_components.items() if s}
        for name, reward in zip(self.names, self.rewards, strict=True):
            out.update({f"{name}/{k}": v for k, v in reward.metrics().items()})
        return out
