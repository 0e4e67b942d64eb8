"""Reward and constraint plugins called on sampled completions (no Lightning).

A plugin travels with its log label and weight as a :class:`NamedPlugin`; :func:`score` calls each
on a :class:`~rlhf_lightning.rollout.samples.Rollout` and checks its output (one finite float per
sample, see :func:`~rlhf_lightning.plugin_output.checked_scores`). Shapes: ``N`` samples.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence

import torch
from torch import Tensor

from rlhf_lightning.errors import PluginError
from rlhf_lightning.plugin_output import checked_scores
from rlhf_lightning.rollout.samples import Rollout


class NamedPlugin(NamedTuple):
    """A reward or constraint plugin with its label in logs and its weight in the total score."""

    name: str
    plugin: Any  # a RewardFunction or a ConstraintChecker
    weight: float = 1.0


def score(plugins: Sequence[NamedPlugin], rollout: Rollout, *, what: str = "score",
          skip_invalid: bool = False) -> tuple[dict[str, Tensor], Tensor]:
    """Call each plugin on the rollout's samples; one checked float per sample.

    Returns ``({name: (N,) values}, invalid (N,) bool)``; ``invalid`` marks samples for which some
    plugin returned NaN/inf when ``skip_invalid`` (otherwise that raises a PluginError naming the
    plugin and the sample).
    """
    device = rollout.input_ids.device
    invalid = torch.zeros(len(rollout), dtype=torch.bool, device=device)
    values: dict[str, Tensor] = {}
    for p in map(NamedPlugin._make, plugins):
        bad: list[int] | None = [] if skip_invalid else None  # non-finite values become 0 and are listed
        got = checked_scores(p.plugin, rollout.prompts, rollout.completions, rollout.columns, name=repr(p.name),
                             what=what, invalid=bad)
        values[p.name] = torch.tensor(got, dtype=torch.float32, device=device)
        if bad:
            invalid[bad] = True
    return values, invalid


def weighted_total(values: dict[str, Tensor], plugins: Sequence[NamedPlugin], n: int, device) -> Tensor:
    """``Σ_k w_k · score_k`` over the reward plugins ``(N,)``."""
    total = torch.zeros(n, dtype=torch.float32, device=device)
    for p in map(NamedPlugin._make, plugins):
        total = total + p.weight * values[p.name]
    return total


def plugin_names(plugins: Sequence[Any], given: Optional[Sequence[Optional[str]]] = None) -> list[str]:
    """Log labels: the given name, else the entry-point name, else the class name; made unique."""
    from rlhf_lightning import registry

    names: list[str] = []
    for i, p in enumerate(plugins):
        name = (given[i] if given else None) or registry.name_of(p) or type(p).__name__
        base, k = name, 2
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    return names


def check_plugin_setup(plugins: Sequence[Any], device) -> None:
    """Call each plugin's optional ``setup(device)`` hook, naming the plugin on failure."""
    for p in plugins:
        hook = getattr(p, "setup", None)
        if hook is None:
            continue
        try:
            hook(device)
        except PluginError:
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin bug becomes one clear error
            raise PluginError(f"{type(p).__name__}.setup({device}) failed: {type(exc).__name__}: {exc}") from exc
