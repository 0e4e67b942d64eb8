"""``rlhf-lightning score``: apply configured rewards and constraints to a JSONL of prompt/completion pairs.

Config (YAML, validated at parse time; ``class_path`` = entry-point name, class name or import path)::

    rewards:
      - class_path: length
        init_args: {target: 50}
      - class_path: keyword
        init_args: {keywords: [thanks]}
    weights: [1.0, 0.5]          # optional, one per reward (default 1.0 each)
    constraints:
      - class_path: max_length
        init_args: {max_length: 120}

Each output row is the input row plus ``rewards`` (each reward's unweighted score, by name),
``reward`` (the weighted total), ``costs`` (each constraint's cost), ``violations`` (each
constraint's ``cost > threshold``) and ``violated`` (any). Names are entry-point names
(``keyword``, ``keyword_2`` for a second one) unless ``reward_names`` / ``constraint_names`` are
given. Other input columns are passed to the plugins as ``columns``. The output file is written
atomically: a partial run leaves no partial file.
"""

from __future__ import annotations

import sys
from typing import Any

from rlhf_lightning.data.jsonl import read_jsonl_objects, write_jsonl_atomic
from rlhf_lightning.errors import ConfigError, DataError, PluginError

RESERVED = ("rewards", "reward", "costs", "violations", "violated")


def build_parser() -> Any:
    from jsonargparse import ActionConfigFile, ArgumentParser

    from rlhf_lightning import registry
    from rlhf_lightning.constraints.base import ConstraintChecker
    from rlhf_lightning.rewards.base import RewardFunction

    registry.prepare_for_parsing()
    parser = ArgumentParser(prog="rlhf-lightning score", exit_on_error=False,
                            description="Score prompt/completion pairs with reward and constraint plugins.")
    parser.add_argument("--config", action=ActionConfigFile, help="YAML with rewards/weights/constraints")
    parser.add_argument("--input", type=str, required=True, help="JSONL with prompt and completion fields")
    parser.add_argument("--output", type=str, required=True, help="JSONL to write (atomically)")
    parser.add_argument("--rewards", type=list[RewardFunction], default=[], help="reward plugins")
    parser.add_argument("--weights", type=list[float] | None, default=None, help="one weight per reward")
    parser.add_argument("--reward_names", type=list[str] | None, default=None, help="labels of the rewards")
    parser.add_argument("--constraints", type=list[ConstraintChecker], default=[], help="constraint plugins")
    parser.add_argument("--constraint_names", type=list[str] | None, default=None, help="labels of the constraints")
    parser.add_argument("--prompt_key", type=str, default="prompt")
    parser.add_argument("--completion_key", type=str, default="completion")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--device", type=str | None, default=None, help="device for model-based plugins")
    return parser


def read_rows(path: str, prompt_key: str, completion_key: str) -> list[dict[str, Any]]:
    rows = []
    for lineno, row in read_jsonl_objects(path):
        for key in (prompt_key, completion_key):
            if not isinstance(row.get(key), str):
                raise DataError(f"{path}:{lineno}: field {key!r} must be a string "
                                f"(fields present: {', '.join(row) or 'none'})")
        clash = [k for k in RESERVED if k in row]
        if clash:
            raise DataError(f"{path}:{lineno}: input already has output field(s) {clash}; rename them")
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def score_rows(rows: list[dict[str, Any]], rewards: list[Any], constraints: list[Any], *,
               weights: list[float] | None = None, reward_names: list[str] | None = None,
               constraint_names: list[str] | None = None, prompt_key: str = "prompt",
               completion_key: str = "completion", batch_size: int = 32) -> list[dict[str, Any]]:
    """Return copies of ``rows`` with per-plugin scores, the weighted total, costs and violation flags."""
    from rlhf_lightning.plugin_output import checked_scores
    from rlhf_lightning.rewards.combine import component_names

    if weights is not None and len(weights) != len(rewards):
        raise ConfigError(f"{len(rewards)} rewards but {len(weights)} weights")
    weights = list(weights) if weights is not None else [1.0] * len(rewards)
    r_names = component_names(rewards, reward_names)
    c_names = component_names(constraints, constraint_names)
    out = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        prompts = [r[prompt_key] for r in batch]
        completions = [r[completion_key] for r in batch]
        keys = sorted({k for r in batch for k in r} - {prompt_key, completion_key})
        columns = {k: [r.get(k) for r in batch] for k in keys}
        r_scores = {n: checked_scores(p, prompts, completions, columns, name=f"reward {n!r}", offset=start)
                    for n, p in zip(r_names, rewards, strict=True)}
        c_costs = {n: checked_scores(p, prompts, completions, columns, name=f"constraint {n!r}", what="cost",
                                     offset=start) for n, p in zip(c_names, constraints, strict=True)}
        c_flags = {n: p.violated(c_costs[n]) for n, p in zip(c_names, constraints, strict=True)}
        for i, row in enumerate(batch):
            new = dict(row)
            new["rewards"] = {n: s[i] for n, s in r_scores.items()}
            new["reward"] = sum(w * r_scores[n][i] for w, n in zip(weights, r_names, strict=True))
            new["costs"] = {n: c[i] for n, c in c_costs.items()}
            new["violations"] = {n: f[i] for n, f in c_flags.items()}
            new["violated"] = any(new["violations"].values())
            out.append(new)
    return out


def main(argv: list[str] | None = None) -> int:
    from rlhf_lightning.commands.parsing import parse_and_instantiate

    init = parse_and_instantiate(build_parser(), argv, "scoring")
    if not init.rewards and not init.constraints:
        raise ConfigError("nothing to score: give at least one of rewards / constraints")
    if init.batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {init.batch_size}")
    rows = read_rows(init.input, init.prompt_key, init.completion_key)
    for plugin in [*init.rewards, *init.constraints]:
        try:
            plugin.setup(init.device)
        except PluginError:
            raise
        except Exception as exc:  # noqa: BLE001
            from rlhf_lightning.registry import describe

            raise PluginError(f"setup of {describe(plugin)} failed: {type(exc).__name__}: {exc}") from exc
    scored = score_rows(rows, init.rewards, init.constraints, weights=init.weights, reward_names=init.reward_names,
                        constraint_names=init.constraint_names, prompt_key=init.prompt_key,
                        completion_key=init.completion_key, batch_size=init.batch_size)
    write_jsonl_atomic(init.output, scored, what="scores")
    n = len(scored)
    summary = [f"scored {n} rows -> {init.output}", f"  reward mean {sum(r['reward'] for r in scored) / n:.4f}"]
    for name in scored[0]["rewards"]:
        summary.append(f"  reward {name}: mean {sum(r['rewards'][name] for r in scored) / n:.4f}")
    for name in scored[0]["costs"]:
        rate = sum(r["violations"][name] for r in scored) / n
        summary.append(f"  constraint {name}: mean cost {sum(r['costs'][name] for r in scored) / n:.4f}, "
                       f"violation rate {rate:.3f}")
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    from rlhf_lightning.errors import RLHFError

    try:
        sys.exit(main())
    except RLHFError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
