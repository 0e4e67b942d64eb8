"""``rlhf-lightning evaluate --config eval.yaml``: are an aligned policy's answers better than the baseline's?

Config (YAML, validated at parse time; plugin ``class_path`` = entry-point name, class name or import path)::

    policies: {sft: runs/demo/sft/export, dpo: runs/demo/dpo/export}   # name -> HF causal-LM folder or hub id
    baseline: sft                    # one of the policies
    prompts: configs/demo/data/prompts_heldout.jsonl   # rows with `prompt` or `messages` (+ plugin columns)
    samples_per_prompt: 4
    seed: 0
    generation: {max_new_tokens: 48, do_sample: true, temperature: 1.0, top_k: 0, top_p: 1.0}
    max_prompt_length: 96
    batch_size: 16                   # prompts per generation batch (each sampled samples_per_prompt times)
    rewards:
      - class_path: classifier
        init_args: {model: runs/demo/reward/export}
    reward_names: [rm]               # optional labels (default: entry-point names)
    primary_reward: rm               # the reward behind the top-level win_rate (default: the first)
    constraints: []                  # optional ConstraintChecker plugins (+ constraint_names)
    logs: {sft: runs/demo/sft}       # optional: stage folders whose TensorBoard curves are plotted
    examples: 4                      # prompts shown with every policy's answer in report.md
    bootstrap_samples: 2000
    output: runs/demo/report

Every policy answers every prompt ``samples_per_prompt`` times with the same random draws (common
random numbers, :mod:`rlhf_lightning.evaluation.sampling`); answer ``j`` of a policy is compared
with answer ``j`` of the baseline under each reward. The report folder (``report.json``,
``report.md``, ``answers.jsonl``, PNG plots) replaces ``output`` atomically; its path is the last
line printed. ``output`` must be new, empty or an earlier report (it holds ``.rlhf-lightning-report``),
and must not contain the policies, logs or prompts read: checked before anything is loaded.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import sys
import time
from pathlib import Path
from typing import Any, Optional

from rlhf_lightning.errors import ConfigError, ModelError

KL_ESTIMATOR = ("mean over the policy's own answers of sum_t [log pi(y_t|x,y<t) - log pi_base(y_t|x,y<t)] "
                "over the completion tokens (EOS included), log-probs at temperature 1")


def build_parser() -> Any:
    from jsonargparse import ActionConfigFile, ArgumentParser

    from rlhf_lightning import registry
    from rlhf_lightning.commands.sampling_options import add_sampling_arguments
    from rlhf_lightning.constraints.base import ConstraintChecker

    registry.prepare_for_parsing()
    parser = ArgumentParser(prog="rlhf-lightning evaluate", exit_on_error=False,
                            description="Compare policies' sampled answers with a baseline's: win rates, KL, "
                                        "rewards, length, diversity; writes report.json, report.md and plots.")
    parser.add_argument("--config", action=ActionConfigFile, help="the evaluation YAML")
    parser.add_argument("--policies", type=dict[str, str], required=True, help="name -> causal-LM folder or hub id")
    parser.add_argument("--baseline", type=str, required=True, help="the policy the others are compared with")
    add_sampling_arguments(parser, prompts_help="JSONL of held-out prompts",
                           seed_help="seed of the sampling stream and the bootstrap")
    parser.add_argument("--primary_reward", type=Optional[str], default=None, help="default: the first reward")
    parser.add_argument("--constraints", type=list[ConstraintChecker], default=[], help="constraint plugins")
    parser.add_argument("--constraint_names", type=Optional[list[str]], default=None)
    parser.add_argument("--logs", type=dict[str, str], default={}, help="stage name -> trainer.default_root_dir")
    parser.add_argument("--examples", type=int, default=4, help="prompts shown side by side in report.md")
    parser.add_argument("--bootstrap_samples", type=int, default=2000)
    parser.add_argument("--confidence", type=float, default=0.95, help="level of the bootstrap interval")
    parser.add_argument("--output", type=str, required=True, help="the report folder (replaced atomically)")
    return parser


def check_settings(init: Any) -> tuple[list[str], list[str], str]:
    """ConfigError for settings that cannot work; returns reward names, constraint names, primary reward."""
    from rlhf_lightning.commands.sampling_options import check_sampling_settings
    from rlhf_lightning.rewards.combine import component_names

    if not init.policies:
        raise ConfigError("policies is empty: give name -> model folder for the baseline and the policies")
    if init.baseline not in init.policies:
        raise ConfigError(f"baseline {init.baseline!r} is not among the policies ({', '.join(init.policies)})")
    check_sampling_settings(init)
    if init.bootstrap_samples < 1:
        raise ConfigError(f"bootstrap_samples must be >= 1, got {init.bootstrap_samples}")
    if init.examples < 0:
        raise ConfigError(f"examples must be >= 0, got {init.examples}")
    if not 0.0 < init.confidence < 1.0:
        raise ConfigError(f"confidence must be between 0 and 1, got {init.confidence}")
    if not init.rewards:
        raise ConfigError("rewards is empty: win rates need at least one reward plugin")
    reward_names = component_names(init.rewards, init.reward_names)
    constraint_names = component_names(init.constraints, init.constraint_names)
    primary = init.primary_reward or reward_names[0]
    if primary not in reward_names:
        raise ConfigError(f"primary_reward {primary!r} is not a reward name ({', '.join(reward_names)})")
    return reward_names, constraint_names, primary


def check_policy_source(name: str, source: str) -> None:
    """ConfigError when a policy names a local folder that does not exist. ``model`` and
    ``namespace/model`` (whose namespace is no local folder) are taken as hub ids; the loader
    reports them if unreachable."""
    path = Path(source).expanduser()
    if path.is_dir():
        return
    slashes = source.count("/")
    looks_local = (path.is_absolute() or source.startswith((".", "~")) or "\\" in source or slashes > 1
                   or (slashes == 1 and path.parent.is_dir()))
    if looks_local:
        raise ConfigError(f"policy {name!r}: folder {source} does not exist")


def load_tokenizers(policies: dict[str, str], baseline: str) -> Any:
    """The baseline's tokenizer (left padding); ModelError naming both when a policy's vocabulary differs."""
    from rlhf_lightning.models.loading import load_tokenizer

    base = load_tokenizer(policies[baseline], padding_side="left")
    vocab = base.get_vocab()
    for name, source in policies.items():
        if name == baseline:
            continue
        other = load_tokenizer(source, padding_side="left").get_vocab()
        if other != vocab:
            diff = sorted(set(other.items()) ^ set(vocab.items()))[:1]
            raise ModelError(f"policy {name!r} ({source}) and the baseline {baseline!r} ({policies[baseline]}) have "
                             f"different tokenizer vocabularies ({len(other)} vs {len(vocab)} tokens, e.g. "
                             f"{diff[0] if diff else '?'}); the KL to the baseline needs one vocabulary")
    return base


def load_policy(source: str, tokenizer: Any, *, dtype: str, device: Any) -> Any:
    from rlhf_lightning.models.loading import load_causal_lm
    from rlhf_lightning.models.spec import ModelSpec

    return load_causal_lm(ModelSpec(name_or_path=source, dtype=dtype), tokenizer=tokenizer).to(device).eval()


def _release_memory(device: Any) -> None:
    """Return a deleted model's memory before the next one loads."""
    import torch

    gc.collect()
    if getattr(device, "type", None) == "cuda":
        torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> int:
    from rlhf_lightning.commands.parsing import parse_and_instantiate

    init = parse_and_instantiate(build_parser(), argv, "evaluation")
    reward_names, constraint_names, primary = check_settings(init)
    for name, source in init.policies.items():
        check_policy_source(name, source)
    from rlhf_lightning.output_folders import check_replaceable

    inputs = [*init.policies.values(), *(init.logs or {}).values(), init.prompts]
    check_replaceable(init.output, "report", [p for p in inputs if Path(p).expanduser().exists()])

    from rlhf_lightning.evaluation.curves import check_log_folders
    from rlhf_lightning.evaluation.prompts import read_prompt_rows

    check_log_folders(init.logs)
    raw_rows = read_prompt_rows(init.prompts, init.prompt_template)
    return run(init, raw_rows, reward_names, constraint_names, primary)


def run(init: Any, raw_rows: list[dict], reward_names: list[str], constraint_names: list[str], primary: str) -> int:
    """Load, sample, score, summarise and write the report (settings already checked)."""
    import torch

    from rlhf_lightning.evaluation import sampling, summary
    from rlhf_lightning.evaluation.curves import stage_curves
    from rlhf_lightning.evaluation.prompts import prepare_rows, prompt_batches
    from rlhf_lightning.evaluation.report import cpu_model, plot_names, write_report
    from rlhf_lightning.rollout.scoring import check_plugin_setup

    started = time.time()
    device = torch.device(init.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    tokenizer = load_tokenizers(init.policies, init.baseline)
    rows = prepare_rows(raw_rows, tokenizer, source=init.prompts)
    batches, truncated = prompt_batches(rows, tokenizer, batch_size=init.batch_size,
                                        max_prompt_length=init.max_prompt_length)
    plugins = [*init.rewards, *init.constraints]
    check_plugin_setup(plugins, device)
    rewards = list(zip(reward_names, init.rewards, strict=True))
    constraints = list(zip(constraint_names, init.constraints, strict=True))
    spec = sampling.with_draws(init.generation, init.samples_per_prompt)

    # Stateful plugins (e.g. a running reward normalisation) start every policy from the same state,
    # so a policy's scores do not depend on which policies were scored before it.
    states = [copy.deepcopy(p.state_dict()) for p in plugins]
    base_model = load_policy(init.policies[init.baseline], tokenizer, dtype=init.dtype, device=device)
    samples: dict[str, sampling.PolicySamples] = {}
    for name, source in init.policies.items():
        print(f"evaluate: sampling {name} ({source})", file=sys.stderr, flush=True)
        is_base = name == init.baseline
        model = base_model if is_base else load_policy(source, tokenizer, dtype=init.dtype, device=device)
        for plugin, state in zip(plugins, states, strict=True):
            plugin.load_state_dict(copy.deepcopy(state))
        samples[name] = sampling.evaluate_policy(model, tokenizer, batches, spec, seed=init.seed,
                                                 baseline=None if is_base else base_model,
                                                 rewards=rewards, constraints=constraints)
        del model  # the baseline stays referenced by base_model; another policy is freed here
        _release_memory(device)
    del base_model
    _release_memory(device)

    n = init.samples_per_prompt
    policies = {}
    for name, s in samples.items():
        figures = summary.policy_figures(s, samples[init.baseline], draws=n, primary=primary,
                                         bootstrap_samples=init.bootstrap_samples, seed=init.seed,
                                         confidence=init.confidence)
        policies[name] = {"path": init.policies[name], **figures}
    curves = [stage_curves(stage, folder) for stage, folder in init.logs.items()]
    kl_note = sampling.check_generation(init.generation)
    generation = {k: v for k, v in dataclasses.asdict(init.generation).items() if k != "num_return_sequences"}
    report = {
        "baseline": init.baseline,
        "primary_reward": primary,
        "reward_names": reward_names,
        "constraint_names": constraint_names,
        "policies": policies,
        "examples": summary.examples([r["prompt"] for r in rows], samples, draws=n, count=init.examples,
                                     primary=primary),
        "stages": {c.stage: {"folder": c.folder, "log_dir": c.log_dir, "final": c.final(),
                             "plotted": list(c.plotted())} for c in curves},
        "plots": plot_names(curves),
        "settings": {
            "prompts": init.prompts, "prompts_count": len(rows), "prompts_truncated": truncated,
            "samples_per_prompt": n, "seed": init.seed, "generation": generation,
            "max_prompt_length": init.max_prompt_length, "batch_size": init.batch_size,
            "bootstrap_samples": init.bootstrap_samples, "confidence": init.confidence,
            "kl_estimator": KL_ESTIMATOR, "kl_samples_from_policy": kl_note is None, "kl_note": kl_note,
            "device": str(device), "dtype": init.dtype, "cpu": cpu_model(), "torch": torch.__version__,
            "elapsed_seconds": round(time.time() - started, 1),
        },
    }
    answers = summary.answer_rows([r["prompt"] for r in rows], samples, draws=n)
    out = write_report(report, init.output, curves, answers)
    print_summary(report)
    print(out)
    return 0


def print_summary(report: dict[str, Any]) -> None:
    base, primary = report["baseline"], report["primary_reward"]
    s = report["settings"]
    print(f"evaluated {len(report['policies'])} policies on {s['prompts_count']} prompts x "
          f"{s['samples_per_prompt']} samples against {base!r} (win rates by {primary!r})")
    for name, p in report["policies"].items():
        lo, hi = p["win_rate_ci"]
        rewards = ", ".join(f"{r} {v:.3f}" for r, v in p["rewards"].items())
        print(f"  {name:<12} win rate {p['win_rate']:.3f} [{lo:.3f}, {hi:.3f}]  KL {p['kl']:.3f} "
              f"(sd {p['kl_std']:.3f})  {rewards}  length {p['mean_length']:.1f} tokens")
    if s["kl_note"]:
        print(f"  note: {s['kl_note']}")

