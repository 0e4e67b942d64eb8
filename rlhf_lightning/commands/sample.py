"""``rlhf-lightning sample --config sample.yaml``: preference data from a policy's own answers.

Samples ``samples_per_prompt`` answers per prompt from a policy (an HF folder or hub id), scores
every answer with reward plugins (any reward: the ``classifier`` reward model, rules, a remote
judge), and writes, in the ``output`` folder (replaced atomically; its path is the last line printed):

- ``pairs.jsonl``: pairwise rows for the reward-model and DPO stages (``pairs: best_worst`` = best
  vs worst answer per prompt; ``all`` = every pair; only pairs whose scores differ by more than
  ``min_margin``);
- ``ranking.jsonl``: K-wise ranking rows (distinct answers best first, with ``scores``);
- ``best_of_n.jsonl``: the best answer per prompt as an SFT row (rejection sampling), if it scores
  at least ``min_best_score``;
- ``samples.jsonl``: every answer with each reward's score; ``summary.json``: counts and settings.

Config (YAML; plugin ``class_path`` = entry-point name, class name or import path)::

    policy: runs/demo/sft/export
    prompts: configs/demo/data/ppo_prompts.jsonl   # rows with `prompt` or `messages` (+ plugin columns)
    samples_per_prompt: 8
    seed: 0
    generation: {max_new_tokens: 40, do_sample: true, temperature: 1.0}
    rewards: [{class_path: classifier, init_args: {model: runs/demo/reward/export}}]
    reward_weights: null          # the ranking score is sum_k w_k * reward_k (default: all 1)
    pairs: best_worst             # or: all
    min_margin: 0.0
    output: runs/demo/samples
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Literal, Optional

from rlhf_lightning.errors import ConfigError


def build_parser() -> Any:
    from jsonargparse import ActionConfigFile, ArgumentParser

    from rlhf_lightning import registry
    from rlhf_lightning.commands.sampling_options import add_sampling_arguments

    registry.prepare_for_parsing()
    parser = ArgumentParser(prog="rlhf-lightning sample", exit_on_error=False,
                            description="Sample a policy's answers, score them with reward plugins and write "
                                        "preference pairs, rankings and best-of-N SFT rows.")
    parser.add_argument("--config", action=ActionConfigFile, help="the sampling YAML")
    parser.add_argument("--policy", type=str, required=True, help="causal-LM folder or hub id")
    add_sampling_arguments(parser, prompts_help="JSONL of prompts (`prompt` or `messages`)",
                           seed_help="seed of the sampling stream")
    parser.add_argument("--reward_weights", type=Optional[list[float]], default=None,
                        help="weights of the ranking score (default: 1 each)")
    parser.add_argument("--pairs", type=Literal["best_worst", "all"], default="best_worst")
    parser.add_argument("--min_margin", type=float, default=0.0, help="a pair's scores must differ by more")
    parser.add_argument("--min_best_score", type=Optional[float], default=None,
                        help="best-of-N rows only for answers scoring at least this")
    parser.add_argument("--output", type=str, required=True, help="the output folder (replaced atomically)")
    return parser


def check_settings(init: Any) -> tuple[list[str], list[float]]:
    """ConfigError for settings that cannot work; returns the reward names and weights."""
    import math

    from rlhf_lightning.commands.sampling_options import check_sampling_settings
    from rlhf_lightning.rewards.combine import component_names

    check_sampling_settings(init)
    if init.samples_per_prompt < 2:
        raise ConfigError(f"samples_per_prompt must be >= 2 to compare answers, got {init.samples_per_prompt}")
    if not init.generation.do_sample:
        raise ConfigError("generation.do_sample is false: greedy decoding gives one answer per prompt, "
                          "nothing to compare")
    if not init.rewards:
        raise ConfigError("rewards is empty: ranking answers needs at least one reward plugin")
    if init.min_margin < 0 or not math.isfinite(init.min_margin):
        raise ConfigError(f"min_margin must be a finite number >= 0, got {init.min_margin}")
    names = component_names(init.rewards, init.reward_names)
    weights = init.reward_weights if init.reward_weights is not None else [1.0] * len(names)
    if len(weights) != len(names) or not all(math.isfinite(w) for w in weights):
        raise ConfigError(f"reward_weights must be {len(names)} finite numbers (one per reward), got {weights}")
    return names, list(weights)


def main(argv: list[str] | None = None) -> int:
    from rlhf_lightning.commands.evaluate import check_policy_source
    from rlhf_lightning.commands.parsing import parse_and_instantiate
    from rlhf_lightning.evaluation.prompts import read_prompt_rows

    init = parse_and_instantiate(build_parser(), argv, "sampling")
    names, weights = check_settings(init)
    check_policy_source("policy", init.policy)
    raw_rows = read_prompt_rows(init.prompts, init.prompt_template)
    return run(init, raw_rows, names, weights)


def run(init: Any, raw_rows: list[dict], names: list[str], weights: list[float]) -> int:
    """Load, sample, score, build the rows and write the folder (settings already checked)."""
    import torch

    from rlhf_lightning.atomic_paths import atomic_directory
    from rlhf_lightning.commands.evaluate import load_policy
    from rlhf_lightning.data.prompts import prompt_messages
    from rlhf_lightning.data.sampled_preferences import best_of_n_row, pair_rows, ranking_row
    from rlhf_lightning.evaluation import sampling
    from rlhf_lightning.evaluation.prompts import prepare_rows, prompt_batches
    from rlhf_lightning.models.loading import load_tokenizer
    from rlhf_lightning.rollout.scoring import check_plugin_setup

    started = time.time()
    device = torch.device(init.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    tokenizer = load_tokenizer(init.policy, padding_side="left")
    rows = prepare_rows(raw_rows, tokenizer, source=init.prompts)
    batches, truncated = prompt_batches(rows, tokenizer, batch_size=init.batch_size,
                                        max_prompt_length=init.max_prompt_length)
    check_plugin_setup(init.rewards, device)
    model = load_policy(init.policy, tokenizer, dtype=init.dtype, device=device)
    spec = sampling.with_draws(init.generation, init.samples_per_prompt)
    print(f"sample: {len(rows)} prompts x {init.samples_per_prompt} answers from {init.policy}",
          file=sys.stderr, flush=True)
    s = sampling.evaluate_policy(model, tokenizer, batches, spec, seed=init.seed,
                                 rewards=list(zip(names, init.rewards, strict=True)))
    n = init.samples_per_prompt
    scores = [sum(w * s.rewards[name][i] for name, w in zip(names, weights, strict=True)) for i in range(len(s.completions))]

    samples, pairs, rankings, best = [], [], [], []
    for p, raw in enumerate(raw_rows):
        prompt = prompt_messages(raw, source=init.prompts, index=p)
        lo, hi = p * n, (p + 1) * n
        answers, answer_scores = s.completions[lo:hi], scores[lo:hi]
        for j in range(lo, hi):
            samples.append({"prompt_index": p, "draw": j - lo, "prompt": rows[p]["prompt"],
                            "completion": s.completions[j], "score": scores[j], "finished": s.finished[j],
                            "tokens": s.lengths[j], "rewards": {k: s.rewards[k][j] for k in names}})
        pairs.extend(pair_rows(prompt, answers, answer_scores, mode=init.pairs, min_margin=init.min_margin))
        ranking = ranking_row(prompt, answers, answer_scores)
        if ranking is not None:
            rankings.append(ranking)
        row = best_of_n_row(prompt, answers, answer_scores, min_score=init.min_best_score)
        if row is not None:
            best.append(row)

    summary = {
        "policy": init.policy, "prompts": init.prompts, "prompts_count": len(rows), "prompts_truncated": truncated,
        "samples_per_prompt": n, "answers": len(samples), "pairs": len(pairs), "rankings": len(rankings),
        "best_of_n": len(best), "mean_score": sum(scores) / len(scores) if scores else None,
        "rewards": {k: sum(v) / len(v) for k, v in s.rewards.items() if v}, "reward_weights": dict(zip(names, weights, strict=True)),
        "pair_mode": init.pairs, "min_margin": init.min_margin, "min_best_score": init.min_best_score,
        "seed": init.seed, "elapsed_seconds": round(time.time() - started, 1),
    }
    with atomic_directory(init.output, what="samples") as tmp:
        for name, items in (("samples", samples), ("pairs", pairs), ("ranking", rankings), ("best_of_n", best)):
            _write_jsonl(tmp / f"{name}.jsonl", items)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"sampled {len(samples)} answers to {len(rows)} prompts: {len(pairs)} pairs, {len(rankings)} rankings, "
          f"{len(best)} best-of-{n} rows; mean score {summary['mean_score']:.3f}")
    out = Path(init.output).expanduser().absolute()
    print(out)
    return 0


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
