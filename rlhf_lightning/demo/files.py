"""Write every demo data file (``python -m rlhf_lightning.demo`` calls :func:`generate`)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from rlhf_lightning.demo.corpus import (
    DEFAULT_SEED,
    N_MESSAGES,
    N_PPO_PROMPTS,
    Example,
    heldout_examples,
    message_rows,
    ppo_prompt_rows,
    pretrain_docs,
    sft_examples,
    sft_val_examples,
)
from rlhf_lightning.demo.preferences import (
    N_PREFERENCE_TRAIN,
    N_PREFERENCE_VAL,
    N_RANKING_TRAIN,
    N_RANKING_VAL,
    N_SCORED_TRAIN,
    preference_rows,
    ranking_rows,
    scored_rows,
)


def _example_row(ex: Example, *, meta: bool = False, reference: bool = False) -> dict:
    row = {"prompt": ex.prompt}
    if not meta:
        row["response"] = ex.response
        return row
    row.update(topic=ex.topic, task=ex.task, lang=ex.lang)
    if reference:
        row["reference"] = ex.response
    return row


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_csv(path: Path, rows: list[Example]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["prompt", "response"])
        for ex in rows:
            w.writerow([ex.prompt, ex.response])


def generate(out_dir: str | Path, seed: int = DEFAULT_SEED) -> dict[str, Path]:
    """Write every demo data file into ``out_dir``; returns {file name: path}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[dict] | list[Example]] = {
        "pretrain.jsonl": [{"text": d} for d in pretrain_docs(seed)],
        "sft_train.csv": sft_examples(seed),
        "sft_val.jsonl": [_example_row(e) for e in sft_val_examples(seed)],
        "prompts_heldout.jsonl": [_example_row(e, meta=True, reference=True) for e in heldout_examples(seed)],
        "preference_train.jsonl": preference_rows("train", N_PREFERENCE_TRAIN, seed),
        "preference_val.jsonl": preference_rows("val", N_PREFERENCE_VAL, seed),
        "ranking_train.jsonl": ranking_rows("train", N_RANKING_TRAIN, seed),
        "ranking_val.jsonl": ranking_rows("val", N_RANKING_VAL, seed),
        "scored_train.jsonl": scored_rows(N_SCORED_TRAIN, seed),
        "ppo_prompts.jsonl": ppo_prompt_rows(N_PPO_PROMPTS, seed),
        "messages_train.jsonl": message_rows(N_MESSAGES, seed),
    }
    paths = {}
    for name, rows in files.items():
        paths[name] = out / name
        (write_csv if name.endswith(".csv") else write_jsonl)(paths[name], rows)
    return paths
