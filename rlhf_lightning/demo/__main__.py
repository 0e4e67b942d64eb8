"""Regenerate the offline demo data and tokenizer (deterministic: same seed, same bytes).

    python -m rlhf_lightning.demo --out configs/demo/data --tokenizer-out configs/demo/tokenizer
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rlhf_lightning.demo.corpus import DEFAULT_SEED
from rlhf_lightning.demo.files import generate
from rlhf_lightning.demo.tokenizer import DEMO_VOCAB_SIZE, demo_texts, train_tokenizer


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(prog="python -m rlhf_lightning.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("configs/demo/data"), help="data folder")
    parser.add_argument("--tokenizer-out", type=Path, default=Path("configs/demo/tokenizer"), help="tokenizer folder")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--vocab-size", type=int, default=DEMO_VOCAB_SIZE)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    paths = generate(args.out, seed=args.seed)
    tok_dir = train_tokenizer(demo_texts(args.out), args.tokenizer_out, vocab_size=args.vocab_size)
    paths.update({f"tokenizer/{p.name}": p for p in sorted(tok_dir.iterdir()) if p.is_file()})
    if not args.quiet:
        for path in paths.values():
            with open(path, "rb") as f:
                lines = sum(1 for _ in f)
            print(f"{path}  {path.stat().st_size:>9,d} bytes  {lines:>6,d} lines")
    return paths


if __name__ == "__main__":
    main()
