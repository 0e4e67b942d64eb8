"""Experience making for online RL: generate → score → (constraints) → shape → advantages.

Functions of models and tensors, called by :class:`~rlhf_lightning.modules.ppo.PPOModule`; no
Lightning here. Shapes: ``B`` prompts, ``n`` samples per prompt, ``N = B·n`` samples, ``P`` the
(left-padded) prompt width, ``C`` the completion width.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from rlhf_lightning.algorithms.lagrangian import lagrangian_scores
from rlhf_lightning.algorithms.shaping import last_token_index
from rlhf_lightning.errors import PluginError
from rlhf_lightning.losses.logprobs import token_logps
from rlhf_lightning.plugin_output import checked_scores
from rlhf_lightning.rollout.generation import GenerationSpec, generate, stop_token_ids
from rlhf_lightning.rollout.onednn import onednn_linear

#: batch keys that are not dataset columns for the plugins
NOT_COLUMNS = ("text", "prompt", "input_ids", "attention_mask")


@dataclass
class Rollout:
    """Sampled completions of one prompt batch and everything the update needs about them."""

    input_ids: Tensor        # (N, P + C) prompt + completion
    attention_mask: Tensor   # (N, P + C)
    position_ids: Tensor     # (N, P + C)
    prompt_width: int        # P
    completion_ids: Tensor   # (N, C)
    mask: Tensor             # (N, C) bool: real completion tokens (EOS included)
    finished: Tensor         # (N,) bool: ended with EOS or a stop string
    group_ids: Tensor        # (N,) the prompt each sample answers
    prompts: list[str]       # (N,) raw prompts, repeated n times
    completions: list[str]   # (N,) decoded completions
    columns: dict[str, list] = field(default_factory=dict)  # other dataset columns, repeated n times
    # filled by the stage:
    valid: Optional[Tensor] = None       # (N,) bool: takes part in the update
    old_logps: Optional[Tensor] = None   # (N, C)
    ref_logps: Optional[Tensor] = None   # (N, C)
    values: Optional[Tensor] = None      # (N, C)
    advantages: Optional[Tensor] = None  # (N, C)
    returns: Optional[Tensor] = None     # (N, C)

    @property
    def loss_mask(self) -> Tensor:
        """Tokens that take part in the update: real tokens of valid samples."""
        return self.mask if self.valid is None else self.mask & self.valid[:, None]

    def __len__(self) -> int:
        return self.completion_ids.shape[0]


def position_ids_of(attention_mask: Tensor) -> Tensor:
    """Positions counted from each row's first real token (what ``generate`` uses with left padding)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def completion_mask(completion_ids: Tensor, stop_ids: Sequence[int], pad_id: Optional[int]) -> tuple[Tensor, Tensor]:
    """Which completion tokens are real, and which completions finished.

    A completion ends at its first stop (EOS / end-of-turn) token, included; generation pads
    after it. A completion cut by a stop string ends with pad tokens instead (when the pad token is
    not a stop token). Returns ``mask`` ``(N, C)`` bool and ``finished`` ``(N,)`` bool.
    """
    stops = torch.tensor(list(stop_ids), device=completion_ids.device, dtype=completion_ids.dtype)
    is_stop = torch.isin(completion_ids, stops)
    after_stop = (is_stop.long().cumsum(-1) - is_stop.long()) > 0
    mask = ~after_stop
    finished = is_stop.any(-1)
    if pad_id is not None and pad_id not in stop_ids:
        last_real = last_token_index(completion_ids != pad_id)
        positions = torch.arange(completion_ids.shape[1], device=completion_ids.device)
        mask &= positions[None, :] <= last_real[:, None]
        finished |= last_real < completion_ids.shape[1] - 1
    return mask, finished


def plugin_columns(batch: dict[str, Any], n: int) -> dict[str, list]:
    """The batch's dataset columns (lists), each value repeated for the ``n`` samples of its prompt."""
    return {k: [x for x in v for _ in range(n)] for k, v in batch.items()
            if k not in NOT_COLUMNS and isinstance(v, list)}


@torch.no_grad()
def sample(model, tokenizer, batch: dict[str, Any], spec: GenerationSpec) -> Rollout:
    """Generate ``spec.num_return_sequences`` completions per prompt (KV cache, left padding)."""
    prompt_ids, prompt_mask = batch["input_ids"], batch["attention_mask"]
    n = spec.num_return_sequences
    completion_ids, texts = generate(model, tokenizer, prompt_ids, prompt_mask, spec)
    mask, finished = completion_mask(completion_ids, stop_token_ids(tokenizer, model), tokenizer.pad_token_id)
    prompt_ids = prompt_ids.repeat_interleave(n, dim=0)
    prompt_mask = prompt_mask.repeat_interleave(n, dim=0)
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
    attention_mask = torch.cat([prompt_mask, mask.to(prompt_mask.dtype)], dim=1)
    raw = batch.get("prompt") or batch.get("text")
    return Rollout(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids_of(attention_mask),
        prompt_width=prompt_ids.shape[1], completion_ids=completion_ids, mask=mask, finished=finished,
        group_ids=torch.arange(len(raw), device=input_ids.device).repeat_interleave(n),
        prompts=[p for p in raw for _ in range(n)], completions=list(texts), columns=plugin_columns(batch, n),
    )


def forward_completion(model, rollout: Rollout, rows: Optional[Tensor] = None, *, temperature: float = 1.0,
                       hidden: bool = False) -> tuple[Tensor, Tensor, Optional[Tensor]]:
    """One forward pass over prompt + completion: per-token log-probs of the completion tokens.

    Only the ``C + 1`` last positions get logits (``logits_to_keep``), the ones that predict the
    completion. Returns ``(logps (n, C), logits (n, C, V), hidden (n, C, H) or None)``.
    """
    idx = slice(None) if rows is None else rows
    c = rollout.completion_ids.shape[1]
    with onednn_linear():  # forward here; its backward GEMMs run through oneDNN too (autograd saves the route)
        out = model(input_ids=rollout.input_ids[idx], attention_mask=rollout.attention_mask[idx],
                    position_ids=rollout.position_ids[idx], use_cache=False, logits_to_keep=c + 1,
                    output_hidden_states=hidden)
    logits = out.logits[:, :-1]
    logps = token_logps(logits, rollout.completion_ids[idx], temperature)
    h = out.hidden_states[-1][:, rollout.prompt_width - 1:-1] if hidden else None
    return logps, logits, h


def score(plugins: Sequence[tuple[str, Any, float]], rollout: Rollout, *, what: str = "score",
          skip_invalid: bool = False) -> tuple[dict[str, Tensor], Tensor]:
    """Call each ``(name, plugin, weight)`` on the rollout's samples; one checked float per sample.

    Returns ``({name: (N,) values}, invalid (N,) bool)``; ``invalid`` marks samples for which some
    plugin returned NaN/inf when ``skip_invalid`` (otherwise that raises a PluginError naming the
    plugin and the sample).
    """
    device = rollout.input_ids.device
    invalid = torch.zeros(len(rollout), dtype=torch.bool, device=device)
    values: dict[str, Tensor] = {}
    for name, plugin, _ in plugins:
        bad: list[int] | None = [] if skip_invalid else None  # non-finite values become 0 and are listed
        got = checked_scores(plugin, rollout.prompts, rollout.completions, rollout.columns, name=repr(name),
                             what=what, invalid=bad)
        values[name] = torch.tensor(got, dtype=torch.float32, device=device)
        if bad:
            invalid[bad] = True
    return values, invalid


def weighted_total(values: dict[str, Tensor], plugins: Sequence[tuple[str, Any, float]], n: int,
                   device) -> Tensor:
    """``Σ_k w_k · score_k`` over the reward plugins ``(N,)``."""
    total = torch.zeros(n, dtype=torch.float32, device=device)
    for name, _, weight in plugins:
        total = total + weight * values[name]
    return total


def total_reward(plugins: Sequence[tuple[str, Any, float]], rollout: Rollout, *,
                 skip_invalid: bool) -> tuple[Tensor, Tensor, dict[str, float]]:
    """The weighted reward ``(N,)``, the invalid samples ``(N,)`` bool (see :func:`score`) and the
    means of each plugin over valid samples. Invalid samples get the valid samples' mean reward, so
    group baselines and whitening stay sane (they are kept out of the update by the caller)."""
    components, invalid = score(plugins, rollout, skip_invalid=skip_invalid)
    total = weighted_total(components, plugins, len(rollout), rollout.input_ids.device)
    ok = ~invalid
    if invalid.any():
        total = torch.where(invalid, total[ok].mean() if ok.any() else 0.0, total)

    def mean(values: Tensor) -> float:
        return float(values[ok].mean()) if ok.any() else float("nan")

    logs = {"reward": mean(total), **{f"reward/{name}": mean(v) for name, v in components.items()},
            "reward/invalid": float(invalid.sum())}
    return total, invalid, logs


def apply_constraints(rules: Sequence[Any], names: Sequence[str], lambdas: dict[str, Any], rollout: Rollout,
                      total: Tensor, valid: Tensor, global_mean) -> tuple[Tensor, Tensor, dict[str, float]]:
    """Apply each :class:`~rlhf_lightning.modules.ppo_config.ConstraintRule`: ``skip`` drops violators
    from ``valid``, ``penalize`` subtracts ``coef · cost`` from ``total``, ``lagrangian`` ascends λ on
    the global mean cost (``global_mean(sum, count)``) and prices the cost with it.
    Returns the new ``(total (N,), valid (N,), logs)``."""
    logs: dict[str, float] = {}
    if not rules:
        return total, valid, logs
    costs, _ = score([(name, rule.checker, 1.0) for name, rule in zip(names, rules)], rollout, what="cost")
    for name, rule in zip(names, rules):
        cost = costs[name]
        violated = torch.tensor(rule.checker.violated(cost.tolist()), dtype=torch.bool, device=cost.device)
        logs[f"constraint/{name}/cost"] = float(cost.mean())
        logs[f"constraint/{name}/violation_rate"] = float(violated.float().mean())
        if rule.mode == "skip":
            valid = valid & ~violated
        elif rule.mode == "penalize":
            total = total - rule.coef * cost
        else:  # lagrangian
            mean_cost = global_mean(cost.sum(), torch.tensor(float(cost.numel())))
            lam = lambdas[name].update(float(mean_cost), rule.checker.threshold)
            total = lagrangian_scores(total, cost, lam, normalize=rule.normalize)
            logs[f"constraint/{name}/lambda"] = lam
    return total, valid, logs


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
