"""Preference data for the demo's reward-model and DPO stages: worse answers and the files built on them.

A rejected answer is another topic's answer to the same task (off-topic), a cut-off answer, a rude one
or "I don't know" — the seeds' examples. Validation files use only the reserved topics
(:func:`~rlhf_lightning.demo.corpus.preference_val_topics`), training files only the others, so
reward-model accuracy is measured on topics absent from its training pairs.
"""

from __future__ import annotations

import random
import re

from rlhf_lightning.demo.corpus import (
    DEFAULT_SEED,
    Example,
    _train_combos,
    is_heldout,
    preference_val_topics,
    sample_example,
)
from rlhf_lightning.demo.templates import REJECT_IDK, REJECT_RUDE
from rlhf_lightning.demo.topics import TOPICS, Topic

# Sizes of the generated files.
N_PREFERENCE_TRAIN, N_PREFERENCE_VAL = 3000, 200
N_RANKING_TRAIN, N_RANKING_VAL = 600, 100
N_SCORED_TRAIN = 1200

REJECT_KINDS: tuple[str, ...] = ("off_topic", "truncated", "rude", "idk")
_END_PUNCT = ".,;:!?。，；：！？、…\"”"
_CJK = re.compile(r"[\u4e00-\u9fff]")


def truncate(text: str, rng: random.Random) -> str:
    """Cut ``text`` to its first third to two thirds, without final punctuation.

    English-only text is cut between words; text with Chinese characters is cut between characters.
    """
    spaced = " " in text and not _CJK.search(text)
    units = text.split(" ") if spaced else list(text)
    k = rng.randint(max(1, len(units) // 3), max(1, (2 * len(units)) // 3))
    out = (" " if spaced else "").join(units[:k]).rstrip(_END_PUNCT + " ")
    return out or units[0]


def rejected(rng: random.Random, ex: Example, kind: str, topics: tuple[Topic, ...] | list[Topic] = TOPICS) -> str:
    """A worse answer to ``ex.prompt``: another topic's answer, a cut-off answer, a rude one or "I don't know".

    An off-topic answer is about one of ``topics`` (the split's own topics, so a validation topic's
    words never appear in a training file, not even in a rejected answer).
    """
    if kind == "off_topic":
        return _off_topic_example(rng, ex, topics).response
    if kind == "truncated":
        return truncate(ex.response, rng)
    if kind == "rude":
        return rng.choice(REJECT_RUDE[ex.lang])
    if kind == "idk":
        return rng.choice(REJECT_IDK[ex.lang])
    raise ValueError(f"unknown rejected kind {kind!r}; known: {', '.join(REJECT_KINDS)}")


def _off_topic_example(rng: random.Random, ex: Example, topics) -> Example:
    """The same task in the same language about another of ``topics``."""
    other = rng.choice([t for t in topics if t.key != ex.topic])
    return sample_example(rng, other, ex.task, ex.lang)


def _pref_topics(split: str) -> list[Topic]:
    val = set(preference_val_topics())
    return [t for t in TOPICS if (t.key in val) == (split == "val")]


def preference_rows(split: str, n: int, seed: int = DEFAULT_SEED) -> list[dict]:
    """``{"prompt", "chosen", "rejected"}``; rejected is off-topic (40 % of draws), truncated, rude or
    "I don't know".

    In the training split each off-topic pair comes with its mirror (the other topic's prompt, its own
    answer chosen, this one rejected), so an answer is never good or bad by itself, only against its
    prompt (without mirrors the demo reward model learnt per-topic preferences: 0.87 held-out accuracy
    against 0.9+ with them). The validation split is drawn as before (no mirrors); the last row may be
    an off-topic pair whose mirror fell beyond ``n``.
    """
    rng = random.Random(f"{seed}-preference-{split}")
    topics = _pref_topics(split)
    combos = _train_combos(topics)
    rows: list[dict] = []
    while len(rows) < n:
        ex = sample_example(rng, *rng.choice(combos))
        kind = rng.choices(REJECT_KINDS, weights=(4, 2, 2, 2))[0]
        if kind == "off_topic" and split == "train":  # the mirror's prompt must be a training combination
            other = _off_topic_example(rng, ex, [t for t in topics if not is_heldout(t.key, ex.task)])
            rows.append({"prompt": ex.prompt, "chosen": ex.response, "rejected": other.response})
            rows.append({"prompt": other.prompt, "chosen": other.response, "rejected": ex.response})
        else:
            rows.append({"prompt": ex.prompt, "chosen": ex.response, "rejected": rejected(rng, ex, kind, topics)})
    return rows[:n]


def ranking_rows(split: str, n: int, seed: int = DEFAULT_SEED) -> list[dict]:
    """``{"prompt", "responses": [4], "ranking": [best→worst indices]}``.

    Quality order: on-topic complete > truncated > off-topic > rude or "I don't know".
    """
    rng = random.Random(f"{seed}-ranking-{split}")
    topics = _pref_topics(split)
    combos = _train_combos(topics)
    rows = []
    for _ in range(n):
        ex = sample_example(rng, *rng.choice(combos))
        by_quality = [ex.response, rejected(rng, ex, "truncated"), rejected(rng, ex, "off_topic", topics),
                      rejected(rng, ex, rng.choice(("rude", "idk")))]
        perm = list(range(4))
        rng.shuffle(perm)  # responses[j] is the answer of quality rank perm[j]
        responses = [by_quality[q] for q in perm]
        rows.append({"prompt": ex.prompt, "responses": responses, "ranking": sorted(range(4), key=perm.__getitem__)})
    return rows


SCORES = {"good": 1.0, "truncated": 0.5, "off_topic": 0.2, "idk": 0.1, "rude": 0.0}


def scored_rows(n: int, seed: int = DEFAULT_SEED) -> list[dict]:
    """``{"prompt", "response", "score"}``: score by answer kind (:data:`SCORES`) ± 0.05 noise."""
    rng = random.Random(f"{seed}-scored")
    topics = _pref_topics("train")
    combos = _train_combos(topics)
    rows = []
    for _ in range(n):
        ex = sample_example(rng, *rng.choice(combos))
        kind = rng.choices(list(SCORES), weights=(4, 2, 2, 1, 1))[0]
        response = ex.response if kind == "good" else rejected(rng, ex, kind, topics)
        score = round(SCORES[kind] + rng.uniform(-0.05, 0.05), 3)
        rows.append({"prompt": ex.prompt, "response": response, "score": score})
    return rows
