"""``rlhf-lightning constitution --config cai.yaml``: Constitutional AI's critique -> revision data (SL-CAI).

Bai et al. 2022, "Constitutional AI: Harmlessness from AI Feedback" §3.1: a policy (an HF folder or
hub id) answers each prompt; then, for each of ``principles_per_prompt`` principles drawn at random
(seeded) from the constitution, repeated ``rounds`` times, it critiques its current answer against
the principle and rewrites it (:mod:`rlhf_lightning.data.constitution` gives the conversations; chat
turns through the tokenizer's chat template, or the paper's ``Human:``/``Assistant:`` transcript when
the tokenizer has none). The final revision is the supervised target. Writes, in the ``output``
folder (replaced atomically, only if absent, empty or an earlier constitution output; its path is
the last line printed):

- ``sft.jsonl``: ``prompt``/``completion`` = the final revision, for SFT (``messages`` rows, a plain prompt as
  one user turn, when any prompt of the file is a chat: the stages read one layout per file);
- ``pairs.jsonl``: ``prompt``/``chosen`` = final revision/``rejected`` = original answer, for the
  reward and DPO stages; pairs with an empty side or a revision identical to the answer are dropped
  and counted in the summary;
- ``trace.jsonl``: per prompt, the answer and every step's principle, rendered critique prompt,
  critique, rendered revision prompt and revision; ``summary.json``: counts and settings.

Config (YAML)::

    policy: runs/demo/sft/export
    prompts: configs/demo/data/ppo_prompts.jsonl     # rows with `prompt` or `messages`
    principles:
      - name: harmful
        critique_request: Identify specific ways in which the assistant's last response is harmful ...
        revision_request: Please rewrite the assistant response to remove any and all harmful ...
    few_shot: []              # optional {prompt, answer, critique_request, critique, revision_request, revision}
    principles_per_prompt: 1  # distinct principles drawn per prompt (seeded)
    rounds: 1                 # the drawn principles are applied this many times, in order
    seed: 0
    generation: {max_new_tokens: 128, do_sample: true}
    output: runs/demo/constitution
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

from rlhf_lightning.errors import ConfigError

OUTPUT_KIND = "constitution"  # the marker .rlhf-lightning-constitution says a folder is ours to replace


def build_parser() -> Any:
    from jsonargparse import ActionConfigFile, ArgumentParser

    from rlhf_lightning.commands.sampling_options import add_generation_arguments
    from rlhf_lightning.rollout.generation import GenerationSpec

    parser = ArgumentParser(prog="rlhf-lightning constitution", exit_on_error=False,
                            description="Constitutional AI (SL-CAI): a policy answers, critiques and revises its "
                                        "answers by principles; writes SFT rows and revision-over-answer pairs.")
    parser.add_argument("--config", action=ActionConfigFile, help="the constitution YAML")
    parser.add_argument("--policy", type=str, required=True, help="causal-LM folder or hub id")
    parser.add_argument("--principles", type=list[dict[str, Any]], default=[],
                        help="the constitution: a list of {name, critique_request, revision_request}")
    parser.add_argument("--few_shot", type=Optional[list[dict[str, Any]]], default=None,
                        help="examples {prompt, answer, critique_request, critique, revision_request, revision} "
                             "put before every critique and revision conversation")
    parser.add_argument("--principles_per_prompt", type=int, default=1, help="distinct principles drawn per prompt")
    parser.add_argument("--rounds", type=int, default=1, help="times the drawn principles are applied")
    add_generation_arguments(parser, prompts_help="JSONL of prompts (`prompt` or `messages`)",
                             seed_help="seed of the principle draws and the sampling stream",
                             generation=GenerationSpec(max_new_tokens=128, do_sample=True), max_prompt_length=1024)
    parser.add_argument("--output", type=str, required=True, help="the output folder (replaced atomically)")
    return parser


def check_settings(init: Any) -> tuple[list, list[dict[str, str]]]:
    """ConfigError for settings that cannot work; returns the principles and the few-shot turns."""
    from rlhf_lightning.commands.sampling_options import check_generation_settings
    from rlhf_lightning.data.constitution import few_shot_turns, parse_principles

    check_generation_settings(init)
    principles = parse_principles(init.principles)
    turns = few_shot_turns(init.few_shot)
    if not 1 <= init.principles_per_prompt <= len(principles):
        raise ConfigError(f"principles_per_prompt must be in [1, {len(principles)}] (the number of principles), "
                          f"got {init.principles_per_prompt}")
    if init.rounds < 1:
        raise ConfigError(f"rounds must be >= 1, got {init.rounds}")
    return principles, turns


def main(argv: list[str] | None = None) -> int:
    from rlhf_lightning.commands.evaluate import check_policy_source
    from rlhf_lightning.commands.parsing import parse_and_instantiate
    from rlhf_lightning.evaluation.prompts import read_prompt_rows
    from rlhf_lightning.output_folders import check_replaceable

    init = parse_and_instantiate(build_parser(), argv, "constitution")
    principles, few_shot = check_settings(init)
    check_policy_source("policy", init.policy)
    inputs = [p for p in (init.policy, init.prompts) if Path(p).expanduser().exists()]
    check_replaceable(init.output, OUTPUT_KIND, inputs)  # before any model is loaded
    raw_rows = read_prompt_rows(init.prompts, init.prompt_template)
    return run(init, raw_rows, principles, few_shot)


def _generate(model, tokenizer, texts: list[str], init: Any, phase: int) -> tuple[list[str], list[bool], int]:
    """One completion per text, in batches; batch ``b`` of ``phase`` draws from the stream
    ``(seed, phase·B + b)`` (B batches per phase), so every phase of a rerun repeats its draws.
    Returns the completions, whether each finished, and how many prompts were cut to fit."""
    from rlhf_lightning.evaluation.prompts import prompt_batches
    from rlhf_lightning.evaluation.sampling import sample_batch

    batches, cut = prompt_batches([{"text": t} for t in texts], tokenizer, batch_size=init.batch_size,
                                  max_prompt_length=init.max_prompt_length)
    completions: list[str] = []
    finished: list[bool] = []
    for b, batch in enumerate(batches):
        r = sample_batch(model, tokenizer, batch, init.generation, seed=init.seed, index=phase * len(batches) + b)
        completions.extend(r.completions)
        finished.extend(r.finished.tolist())
    return completions, finished, cut


def run(init: Any, raw_rows: list[dict], principles: list, few_shot: list[dict[str, str]]) -> int:
    """Answer, then critique and revise step by step, build the rows and write the folder."""
    import torch

    from rlhf_lightning.atomic_paths import atomic_directory
    from rlhf_lightning.commands.evaluate import load_policy
    from rlhf_lightning.data import constitution as cai
    from rlhf_lightning.data.prompts import prompt_messages
    from rlhf_lightning.evaluation.prompts import prepare_rows
    from rlhf_lightning.models.loading import load_tokenizer

    started = time.time()
    device = torch.device(init.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    tokenizer = load_tokenizer(init.policy, padding_side="left")
    rows = prepare_rows(raw_rows, tokenizer, source=init.prompts)
    prompts = [prompt_messages(raw, source=init.prompts, index=i) for i, raw in enumerate(raw_rows)]
    drawn = [cai.draw_principles(principles, init.principles_per_prompt, seed=init.seed, index=i)
             for i in range(len(prompts))]
    model = load_policy(init.policy, tokenizer, dtype=init.dtype, device=device)
    steps = init.rounds * init.principles_per_prompt
    print(f"constitution: {len(prompts)} prompts, {steps} critique/revision steps each, from {init.policy}",
          file=sys.stderr, flush=True)

    answers, finished, truncated = _generate(model, tokenizer, [r["text"] for r in rows], init, phase=0)
    traces = [{"prompt_index": i, "prompt": p, "answer": a, "answer_finished": f, "steps": []}
              for i, (p, a, f) in enumerate(zip(prompts, answers, finished, strict=True))]
    current = list(answers)
    cut = {"answer": truncated, "critique": 0, "revision": 0}
    for step in range(steps):
        round_, k = divmod(step, init.principles_per_prompt)
        chosen = [d[k] for d in drawn]
        critique_turns = [cai.critique_conversation(p, a, c, few_shot)
                          for p, a, c in zip(prompts, current, chosen, strict=True)]
        critique_texts = [cai.render_turns(tokenizer, t) for t in critique_turns]
        critiques, _, n_cut = _generate(model, tokenizer, critique_texts, init, phase=1 + 2 * step)
        cut["critique"] += n_cut
        revision_texts = [cai.render_turns(tokenizer, cai.revision_conversation(t, c, p))
                          for t, c, p in zip(critique_turns, critiques, chosen, strict=True)]
        revisions, _, n_cut = _generate(model, tokenizer, revision_texts, init, phase=2 + 2 * step)
        cut["revision"] += n_cut
        for i, trace in enumerate(traces):
            trace["steps"].append({"round": round_, "principle": chosen[i].name,
                                   "critique_prompt": critique_texts[i], "critique": critiques[i],
                                   "revision_prompt": revision_texts[i], "revision": revisions[i]})
        current = revisions

    sft, pairs = [], []
    dropped = {"empty": 0, "identical": 0}
    for prompt, answer, final, trace in zip(cai.uniform_prompts(prompts), answers, current, traces, strict=True):
        trace["final"] = final
        if final.strip():
            sft.append(cai.sft_row(prompt, final))
        problem = cai.pair_problem(final, answer)
        if problem is None:
            pairs.append(cai.pair_row(prompt, final, answer))
        else:
            dropped[problem] += 1
    summary = {
        "policy": init.policy, "prompts": init.prompts, "prompts_count": len(prompts),
        "principles": [p.name for p in principles], "principles_per_prompt": init.principles_per_prompt,
        "rounds": init.rounds, "few_shot_examples": len(few_shot) // len(cai.FEW_SHOT_FIELDS),
        "principle_uses": {p.name: sum(s["principle"] == p.name for t in traces for s in t["steps"])
                           for p in principles},
        "revisions": len(prompts) * steps, "sft_rows": len(sft), "sft_dropped_empty": len(prompts) - len(sft),
        "pairs": len(pairs), "pairs_dropped_empty": dropped["empty"], "pairs_dropped_identical": dropped["identical"],
        "prompts_truncated": cut, "chat_template": bool(getattr(tokenizer, "chat_template", None)),
        "seed": init.seed, "elapsed_seconds": round(time.time() - started, 1),
    }
    with atomic_directory(init.output, what=OUTPUT_KIND) as tmp:
        for name, items in (("sft", sft), ("pairs", pairs), ("trace", traces)):
            _write_jsonl(tmp / f"{name}.jsonl", items)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"revised {len(prompts)} answers in {steps} steps each: {len(sft)} SFT rows, {len(pairs)} pairs "
          f"({dropped['identical']} identical and {dropped['empty']} empty dropped)")
    print(Path(init.output).expanduser().absolute())
    return 0


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
