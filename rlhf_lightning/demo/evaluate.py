"""Judge demo generations: how many answers to held-out prompts stay on the prompt's topic.

    python -m rlhf_lightning.demo.evaluate runs/demo/sft/predictions.jsonl [--min-rate 0.5] [--show 8]

Reads the JSONL that ``rlhf-lightning predict`` writes (rows keep the prompt file's ``topic``
column) and prints the on-topic rate (topic words of either language, :func:`is_on_topic`) and a
few samples. With ``--min-rate`` it exits 1 when the rate is lower.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rlhf_lightning.demo.corpus import is_on_topic


def on_topic_rate(rows: list[dict]) -> float:
    judged = [is_on_topic(r["completion"], r["topic"]) for r in rows if r.get("topic")]
    if not judged:
        raise ValueError("no rows with a 'topic' column to judge")
    return sum(judged) / len(judged)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlhf_lightning.demo.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("predictions", type=Path)
    parser.add_argument("--min-rate", type=float, default=None)
    parser.add_argument("--show", type=int, default=8, help="samples to print")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in args.predictions.read_text(encoding="utf-8").splitlines() if line.strip()]
    rate = on_topic_rate(rows)
    for row in rows[: args.show]:
        mark = "on-topic " if is_on_topic(row["completion"], row.get("topic", "")) else "OFF-topic"
        print(f"[{mark}] {row['prompt']}\n            -> {row['completion']}")
    print(f"on-topic answers to held-out prompts: {rate:.0%} of {len(rows)}")
    if args.min_rate is not None and rate < args.min_rate:
        print(f"below the required {args.min_rate:.0%}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
