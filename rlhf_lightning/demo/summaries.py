"""The summarisation example's data: short bilingual articles and their one-line TL;DR.

An article is three to four sentences about one demo topic (the pre-training sentence templates, all
filled with the SAME three topic words, plus, sometimes, the topic's fact). Its reference summary
names the topic and the two words the article is mostly about::

    article:  "People who love the moon talk about tides and moonlight. Many stories about the moon
               mention tides. The words tides and moonlight often appear next to the moon."
    summary:  "The moon: tides and moonlight."      (Chinese: "月亮：潮汐和月光。")

so a good summary has to copy the right words out of its article (ROUGE against the reference
rewards exactly that), not recite what it knows about the topic. Worse summaries, for the
preference pairs: another topic's summary, the article's first sentence (too long), the right topic
with two words the article does not contain, or a cut-off summary.

``python -m rlhf_lightning.demo.summaries --out configs/summarize/data`` writes:

- ``sft_train.jsonl`` / ``sft_val.jsonl``: TL;DR rows ``{prompt, completion}`` (the prompt is
  :data:`PROMPT_TEMPLATE` filled with the article, as the public TL;DR sets ship it);
- ``preference_train.jsonl`` / ``preference_val.jsonl``: ``{prompt, chosen, rejected}``;
- ``prompts_train.jsonl`` / ``prompts_heldout.jsonl``: ``{text, reference, topic, lang}`` — raw
  articles, rendered by the data modules' ``prompt_template`` option; ``reference`` feeds the
  ``rouge`` reward. Held-out articles are never in a training file.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from rlhf_lightning.demo.corpus import DEFAULT_SEED, LANGS, _cap
from rlhf_lightning.demo.templates import PRETRAIN
from rlhf_lightning.demo.topics import TOPICS, Topic

PROMPT_TEMPLATE = "Summarize:\n{text}\n\nTL;DR:"
N_SFT_TRAIN, N_SFT_VAL = 1600, 100
N_PREFERENCE_TRAIN, N_PREFERENCE_VAL = 1600, 100
N_PROMPTS_TRAIN, N_PROMPTS_HELDOUT = 200, 60
REJECT_KINDS = ("other_topic", "first_sentence", "absent_words", "cut")


def _words(topic: Topic, lang: str, idx: list[int]) -> list[str]:
    return [(topic.en_words if lang == "en" else topic.zh_words)[i] for i in idx]


def article(rng: random.Random, topic: Topic, lang: str) -> tuple[str, list[int]]:
    """``(text, word indices)``: 3-4 sentences about ``topic`` whose slots hold the same three words."""
    idx = rng.sample(range(len(topic.en_words)), 3)
    slots = {"t": topic.en, "T": _cap(topic.en), "n": topic.zh}
    for k, i in enumerate(idx, start=1):
        slots.update({f"w{k}": topic.en_words[i], f"W{k}": _cap(topic.en_words[i]), f"z{k}": topic.zh_words[i]})
    sentences = [tpl.format_map(slots) for tpl in rng.sample(PRETRAIN[lang], rng.randint(3, 4))]
    if rng.random() < 0.3:
        sentences.insert(rng.randint(0, len(sentences)), topic.en_fact if lang == "en" else topic.zh_fact)
    return (" " if lang == "en" else "").join(sentences), idx


def summary(topic: Topic, lang: str, words: list[str]) -> str:
    """The TL;DR: topic and two words ("The moon: tides and moonlight." / "月亮：潮汐和月光。")."""
    if lang == "en":
        return f"{_cap(topic.en)}: {words[0]} and {words[1]}."
    return f"{topic.zh}：{words[0]}和{words[1]}。"


def _example(rng: random.Random, topic: Topic, lang: str) -> dict | None:
    """An article and its summary, or ``None`` when the article mentions fewer than two of its words."""
    text, idx = article(rng, topic, lang)
    words = _words(topic, lang, idx)
    lower = text.lower()
    counts = [lower.count(w.lower()) for w in words]
    # the two words the article mentions most (ties: the order the article first uses them)
    ranked = sorted((k for k in range(3) if counts[k]), key=lambda k: (-counts[k], lower.find(words[k].lower())))
    if len(ranked) < 2:
        return None
    top = [words[k] for k in ranked[:2]]
    return {"text": text, "reference": summary(topic, lang, top), "topic": topic.key, "lang": lang, "idx": idx}


def _rejected(rng: random.Random, ex: dict, kind: str, topics: list[Topic]) -> str:
    topic = next(t for t in TOPICS if t.key == ex["topic"])
    lang = ex["lang"]
    if kind == "other_topic":
        other = rng.choice([t for t in topics if t.key != topic.key])
        return summary(other, lang, _words(other, lang, rng.sample(range(len(other.en_words)), 2)))
    if kind == "first_sentence":
        end = ". " if lang == "en" else "。"
        first = ex["text"].split(end)[0]
        return first + ("." if lang == "en" and not first.endswith(".") else "" if lang == "en" else "。")
    if kind == "absent_words":
        absent = [i for i in range(len(topic.en_words)) if i not in ex["idx"]]
        return summary(topic, lang, _words(topic, lang, rng.sample(absent, 2)))
    if kind == "cut":
        ref = ex["reference"]
        return ref[: max(1, len(ref) // 2)].rstrip(" :：")
    raise ValueError(f"unknown rejected kind {kind!r}; known: {', '.join(REJECT_KINDS)}")


def examples(n: int, split: str, seed: int = DEFAULT_SEED, exclude: set[str] | None = None) -> list[dict]:
    """``n`` distinct articles (texts in ``exclude`` skipped), topics and languages drawn uniformly.
    Train and held-out articles share topics; they differ by article (held-out texts are excluded)."""
    rng = random.Random(f"{seed}-summaries-{split}")
    seen, rows = set(exclude or ()), []
    while len(rows) < n:
        ex = _example(rng, rng.choice(TOPICS), rng.choice(LANGS))
        if ex is not None and ex["text"] not in seen:
            seen.add(ex["text"])
            rows.append(ex)
    return rows


def generate(out_dir: str | Path, seed: int = DEFAULT_SEED) -> dict[str, Path]:
    """Write the example's data files into ``out_dir``; returns {file name: path}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    heldout = examples(N_PROMPTS_HELDOUT, "heldout", seed)
    taken = {ex["text"] for ex in heldout}
    train = examples(N_SFT_TRAIN + N_SFT_VAL + N_PREFERENCE_VAL + N_PROMPTS_TRAIN, "train", seed, exclude=taken)
    sft_train, rest = train[:N_SFT_TRAIN], train[N_SFT_TRAIN:]
    sft_val, pref_val, prompts = rest[:N_SFT_VAL], rest[N_SFT_VAL:N_SFT_VAL + N_PREFERENCE_VAL], rest[-N_PROMPTS_TRAIN:]
    rng = random.Random(f"{seed}-summaries-pairs")

    def tldr(ex: dict) -> dict:
        return {"prompt": PROMPT_TEMPLATE.format(text=ex["text"]), "completion": ex["reference"]}

    def pair(ex: dict) -> dict:
        kind = rng.choice(REJECT_KINDS)
        return {"prompt": PROMPT_TEMPLATE.format(text=ex["text"]), "chosen": ex["reference"],
                "rejected": _rejected(rng, ex, kind, list(TOPICS))}

    def prompt_row(ex: dict) -> dict:
        return {k: ex[k] for k in ("text", "reference", "topic", "lang")}

    files = {
        "sft_train.jsonl": [tldr(ex) for ex in sft_train],
        "sft_val.jsonl": [tldr(ex) for ex in sft_val],
        "preference_train.jsonl": [pair(ex) for ex in sft_train[:N_PREFERENCE_TRAIN]],
        "preference_val.jsonl": [pair(ex) for ex in pref_val],
        "prompts_train.jsonl": [prompt_row(ex) for ex in prompts],
        "prompts_heldout.jsonl": [prompt_row(ex) for ex in heldout],
    }
    paths = {}
    for name, rows in files.items():
        paths[name] = out / name
        with open(paths[name], "w", encoding="utf-8", newline="\n") as f:
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return paths


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(prog="python -m rlhf_lightning.demo.summaries", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="configs/summarize/data", help="output folder")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    paths = generate(args.out, seed=args.seed)
    for path in paths.values():
        print(path)
    return paths


if __name__ == "__main__":
    main()
