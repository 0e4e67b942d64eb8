"""What the online-RL stage keeps across a resume, and what it logs beyond scalars.

The checkpoint's ``ppo_state`` entry holds the KL controller, the Lagrange multipliers, the reward
and constraint plugins' own state, the counters and every process's random state (see
:mod:`rlhf_lightning.random_state`); the frozen reference policy is rebuilt from its source instead
of stored, as every stage's (:mod:`rlhf_lightning.models.reference`). Until issue #17 this was
``rlhf_lightning.modules.ppo_state`` (still importable there); checkpoints of that time hold a sharded
reference under ``ref_model.``, renamed on load.
"""

from __future__ import annotations

from typing import Any

from rlhf_lightning.algorithms.masked import masked_sum
from rlhf_lightning.loggers.sample_tables import log_sample_table, markdown_table
from rlhf_lightning.models.reference import drop_reference_weights, restore_reference_weights
from rlhf_lightning.modules.data_parallel import world_size
from rlhf_lightning.modules.ppo.experience import Experience
from rlhf_lightning.random_state import rng_state_for_rank, rng_states_of_all_ranks


def save_stage_state(stage: Any, checkpoint: dict[str, Any]) -> None:
    """Fill ``checkpoint["ppo_state"]`` from a ``PPOModule``; drop the frozen reference's weights."""
    drop_reference_weights(checkpoint.get("state_dict", {}), stage.reference_model)
    rngs = rng_states_of_all_ranks(world_size(stage._trainer))
    checkpoint["ppo_state"] = {
        "kl_controller": stage.kl_ctl.state_dict(),
        "lambdas": {name: lam.state_dict() for name, lam in stage.lambdas.items()},
        "rng": rngs[0],
        "rng_per_rank": rngs,
        "rollouts_done": stage.rollouts_done,
        "optimizer_steps": stage.optimizer_steps,
        "rewards": {name: p.state_dict() for name, p, _ in stage.reward_plugins},
        "constraints": {name: rule.checker.state_dict()
                        for name, rule in zip(stage.constraint_names, stage.constraint_rules, strict=True)},
    }


def load_stage_state(stage: Any, checkpoint: dict[str, Any]) -> None:
    """Restore a ``PPOModule`` from ``checkpoint``; its random state is applied at the next training
    step (``stage._pending_rng``), after the loaders are built."""
    restore_reference_weights(checkpoint, stage.reference_model)
    state = checkpoint.get("ppo_state")
    if not state:
        return
    stage.kl_ctl.load_state_dict(state["kl_controller"])
    for name, lam_state in state["lambdas"].items():
        if name in stage.lambdas:
            stage.lambdas[name].load_state_dict(lam_state)
    stage.rollouts_done = state["rollouts_done"]
    stage.optimizer_steps = state.get("optimizer_steps", 0)
    for name, plugin, _ in stage.reward_plugins:
        if state["rewards"].get(name):
            plugin.load_state_dict(state["rewards"][name])
    for name, rule in zip(stage.constraint_names, stage.constraint_rules, strict=True):
        if state["constraints"].get(name):
            rule.checker.load_state_dict(state["constraints"][name])
    stage._pending_rng = rng_state_for_rank(state, stage.global_rank, world_size(stage._trainer))


SAMPLE_COLUMNS = ("prompt", "completion", "advantage")


def sample_rows(r: Experience, k: int) -> list[list[Any]]:
    """The first ``k`` samples as ``[prompt, completion, mean advantage per token]`` rows."""
    adv = masked_sum(r.advantages, r.mask, dim=-1) / r.mask.sum(-1).clamp(min=1)
    return [[r.prompts[i], r.completions[i], round(float(adv[i]), 4)] for i in range(min(k, len(r)))]


def samples_table(r: Experience, k: int) -> str:
    """A Markdown table of :func:`sample_rows`."""
    return markdown_table(SAMPLE_COLUMNS, sample_rows(r, k))


def log_samples(stage: Any, r: Experience) -> None:
    """Write ``stage.hparams.num_logged_samples`` rows of :func:`sample_rows` to every logger that takes
    tables (:mod:`rlhf_lightning.loggers.sample_tables`)."""
    log_sample_table(stage.trainer, SAMPLE_COLUMNS, sample_rows(r, stage.hparams.num_logged_samples),
                     key="samples", step=stage.global_step)
