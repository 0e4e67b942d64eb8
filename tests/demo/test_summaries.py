"""The summarisation example's data: regenerated files match the committed ones, references are
copied from their article, held-out articles are unseen, and the configs use the generator's template."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rlhf_lightning.data.formats import detect_format
from rlhf_lightning.demo import summaries
from rlhf_lightning.demo.topics import BY_KEY
from rlhf_lightning.evaluation.rouge import rouge

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "configs" / "summarize" / "data"


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines()]


def test_regenerating_gives_the_committed_files(tmp_path):
    paths = summaries.generate(tmp_path)
    assert sorted(p.name for p in DATA.iterdir()) == sorted(paths)
    for name, path in paths.items():
        assert path.read_bytes() == (DATA / name).read_bytes(), f"{name} differs: rerun python -m rlhf_lightning.demo.summaries"


def test_reference_names_the_topic_and_two_words_of_its_article():
    for row in _rows("prompts_train.jsonl") + _rows("prompts_heldout.jsonl"):
        topic = BY_KEY[row["topic"]]
        words = topic.en_words if row["lang"] == "en" else topic.zh_words
        named = [w for w in words if w.lower() in row["reference"].lower()]
        assert len(named) >= 2 and all(w.lower() in row["text"].lower() for w in named), row


def test_heldout_articles_are_in_no_training_file():
    heldout = {r["text"] for r in _rows("prompts_heldout.jsonl")}
    train_prompts = {r["prompt"] for name in ("sft_train.jsonl", "sft_val.jsonl", "preference_train.jsonl",
                                              "preference_val.jsonl") for r in _rows(name)}
    assert not {summaries.PROMPT_TEMPLATE.format(text=t) for t in heldout} & train_prompts
    assert not heldout & {r["text"] for r in _rows("prompts_train.jsonl")}


def test_pairs_prefer_the_reference_and_the_formats_are_detected():
    pairs = _rows("preference_train.jsonl")
    assert all(p["chosen"] != p["rejected"] for p in pairs)
    # the rejected summaries are worse by ROUGE-L against the reference (the chosen one IS the reference)
    assert sum(rouge(p["rejected"], p["chosen"]) < 1.0 for p in pairs) == len(pairs)
    assert detect_format(list(_rows("sft_train.jsonl")[0]), source="sft") == "prompt_completion"


@pytest.mark.parametrize("name", ["sft.yaml", "grpo.yaml", "evaluate.yaml"])
def test_configs_use_the_generators_prompt_template(name):
    text = (ROOT / "configs" / "summarize" / name).read_text(encoding="utf-8")
    templates = []

    def walk(node):
        if isinstance(node, dict):
            templates.extend(v for k, v in node.items() if k == "prompt_template")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(yaml.safe_load(text))
    assert templates and all(t == summaries.PROMPT_TEMPLATE for t in templates)
