"""Deterministic generator of the offline demo data: topics, splits, examples, pre-training text, SFT, prompts.

An assistant answers short requests (poems, explanations, word lists, advice, translations, greetings)
about ~50 topics in English and Chinese. Answers are assembled from the asked topic's own words
(:mod:`rlhf_lightning.demo.topics`), which is what lets a tiny model trained for a few minutes answer
on topic, and what :func:`is_on_topic` checks.

Splits (all fixed by the topic's position in the inventory, not by the seed):

- one (topic, task) combination per topic is **held out**: it appears in no training file, only in
  ``sft_val.jsonl`` (training phrasings) and ``prompts_heldout.jsonl`` (held-out phrasings, see
  :mod:`rlhf_lightning.demo.templates`), so held-out prompts test generalisation to new combinations
  and new wordings at once;
- a few topics are reserved for the preference/ranking **validation** files and absent from their
  training files, so reward-model accuracy is measured on unseen topics.

Everything is drawn from ``random.Random`` seeded with strings, so the files are byte-identical on
every run and platform.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache

from rlhf_lightning.demo.templates import (
    ANSWERS,
    FOLLOW_UP,
    LANGS,
    PRETRAIN,
    PROMPTS,
    SEED_ROWS,
    SMALL_TALK,
    SYSTEM_PROMPTS,
    TASKS,
    TRANSLATION_PAIRS,
)
from rlhf_lightning.demo.topics import BY_KEY, TOPICS, Topic

DEFAULT_SEED = 0
_HELDOUT_TASK_OFFSET = 3  # chosen so the seed tutorials' examples fall in training combinations
_PREF_VAL_EVERY = 7  # every 7th topic (offset 3) is a preference-validation topic

# Sizes of the generated files.
PRETRAIN_DOCS_PER_TOPIC_LANG = 28
GLOSSARY_DOCS_PER_TOPIC_LANG = 4  # of which bilingual word lists
SFT_SAMPLES_PER_COMBO = 5
SFT_VAL_SAMPLES_PER_COMBO = 2
N_PPO_PROMPTS = 200
N_MESSAGES = 300


@dataclass(frozen=True)
class Example:
    prompt: str
    response: str
    topic: str | None  # topic key; None for topic-free small talk
    task: str
    lang: str  # language of the prompt


# ---------------------------------------------------------------------------------------------------
# splits

def heldout_task(topic: str) -> str:
    """The task whose (topic, task) combination is held out of every training file."""
    i = _index(topic)
    return TASKS[(i + _HELDOUT_TASK_OFFSET) % len(TASKS)]


def heldout_lang(topic: str) -> str:
    """Language of the topic's prompt in ``prompts_heldout.jsonl`` (alternates across the inventory)."""
    return LANGS[(_index(topic) // len(TASKS)) % len(LANGS)]


def preference_val_topics() -> list[str]:
    """Topics reserved for ``preference_val``/``ranking_val`` and absent from their training files."""
    return [t.key for i, t in enumerate(TOPICS) if i % _PREF_VAL_EVERY == 3]


def is_heldout(topic: str | None, task: str) -> bool:
    return topic is not None and heldout_task(topic) == task


def _index(topic: str) -> int:
    return [t.key for t in TOPICS].index(topic)


def _train_combos(topics: list[Topic]) -> list[tuple[Topic, str, str]]:
    return [(t, task, lang) for t in topics for task in TASKS for lang in LANGS if not is_heldout(t.key, task)]


# ---------------------------------------------------------------------------------------------------
# on-topic judgement

def _english_name(topic: Topic) -> str:
    return topic.en[4:] if topic.en.lower().startswith("the ") else topic.en


def topic_words(topic: str, lang: str) -> list[str]:
    """The topic's name and vocabulary in ``lang`` (``"en"`` or ``"zh"``), name first."""
    t = BY_KEY[topic]
    if lang == "en":
        words = [_english_name(t), *t.en_words]
        if t.key.isalpha() and t.key not in words:
            words.append(t.key)
        return words
    if lang == "zh":
        return [t.zh, *t.zh_words]
    raise ValueError(f"unknown language {lang!r}; known: {', '.join(LANGS)}")


@lru_cache(maxsize=None)
def _matchers(topic: str) -> tuple:
    out = []
    for w in topic_words(topic, "en"):
        stem = w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
        out.append(re.compile(r"(?<![A-Za-z])" + re.escape(stem) + r"(?:s|es)?(?![A-Za-z])", re.IGNORECASE))
    out.extend(topic_words(topic, "zh"))
    return tuple(out)


def topic_hits(text: str, topic: str) -> int:
    """How many distinct words of ``topic`` (either language) occur in ``text``."""
    return sum(1 for m in _matchers(topic) if (m in text if isinstance(m, str) else m.search(text)))


def is_on_topic(text: str, topic: str) -> bool:
    """True when ``text`` uses at least one word of ``topic`` and no other topic's words more often.

    Words of both languages count (a translation answers in the other language). English matches
    whole words, case-insensitively, with an optional plural ending; Chinese matches substrings, so
    a one-character name such as 风 also matches 海风 — a tie with another topic still counts as on
    topic, a heuristic good enough to judge a tiny model's generations.
    """
    hits = topic_hits(text, topic)
    if hits == 0:
        return False
    return all(topic_hits(text, other.key) <= hits for other in TOPICS if other.key != topic)


# ---------------------------------------------------------------------------------------------------
# sampling one example

def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _slots(rng: random.Random, topic: Topic) -> dict[str, str]:
    idx = rng.sample(range(len(topic.en_words)), 3)
    slots = {"t": topic.en, "T": _cap(topic.en), "n": topic.zh, "fact": topic.en_fact, "zfact": topic.zh_fact}
    for k, i in enumerate(idx, start=1):
        slots[f"w{k}"] = topic.en_words[i]
        slots[f"W{k}"] = _cap(topic.en_words[i])
        slots[f"z{k}"] = topic.zh_words[i]
    return slots


def sample_example(rng: random.Random, topic: Topic, task: str, lang: str, phrasing: str = "train") -> Example:
    """One prompt/answer for ``topic`` and ``task`` with a prompt in ``lang`` (``phrasing``: train|heldout)."""
    slots = _slots(rng, topic)
    prompt_tpl = rng.choice(PROMPTS[task][lang][phrasing])
    answer_tpl = rng.choice(ANSWERS[task][lang])
    if task == "translate":
        en, zh = (s.format_map(slots) for s in rng.choice(TRANSLATION_PAIRS))
        src, tgt = (en, zh) if lang == "en" else (zh, en)
        return Example(prompt_tpl.format(s=src), answer_tpl.format(s=tgt), topic.key, task, lang)
    return Example(prompt_tpl.format_map(slots), answer_tpl.format_map(slots), topic.key, task, lang)

# ---------------------------------------------------------------------------------------------------
# the files

def _glossary(rng: random.Random, topic: Topic, lang: str, k: int) -> str:
    """A bilingual word list of ``topic`` (pairs in random order), for the translation tasks.

    Pre-training is where the model learns which Chinese word goes with which English one: the
    translation of a held-out topic's words is never shown in the SFT data.
    """
    pairs = list(zip(topic.en_words, topic.zh_words, strict=True))
    rng.shuffle(pairs)
    if lang == "en":
        if k % 2 == 0:
            body = "; ".join(f"{e} = {z}" for e, z in pairs)
            return f"{_cap(topic.en)} in Chinese is {topic.zh}. {body}."
        body = ", ".join(f"{z} means {e}" for e, z in pairs)
        return f"Chinese words about {topic.en}: {topic.zh} means {topic.en}, {body}."
    if k % 2 == 0:
        return f"{topic.zh}的英文是{topic.en}。" + "；".join(f"{z} = {e}" for e, z in pairs) + "。"
    return f"和{topic.zh}有关的英文单词：" + "，".join(f"{e}是{z}" for e, z in pairs) + "。"


def pretrain_docs(seed: int = DEFAULT_SEED) -> list[str]:
    """Short paragraphs about every topic, half English and half Chinese, shuffled."""
    rng = random.Random(f"{seed}-pretrain")
    docs = []
    for topic in TOPICS:
        for lang in LANGS:
            fact = topic.en_fact if lang == "en" else topic.zh_fact
            sep = " " if lang == "en" else ""
            for k in range(PRETRAIN_DOCS_PER_TOPIC_LANG):
                if k < GLOSSARY_DOCS_PER_TOPIC_LANG:
                    docs.append(_glossary(rng, topic, lang, k))
                    continue
                sents = [tpl.format_map(_slots(rng, topic)) for tpl in rng.sample(PRETRAIN[lang], rng.randint(2, 3))]
                if rng.random() < 0.6:
                    sents.insert(rng.randint(0, len(sents)), fact)
                docs.append(sep.join(sents))
    rng.shuffle(docs)
    return docs


def sft_examples(seed: int = DEFAULT_SEED) -> list[Example]:
    """Training prompt/response pairs: every non-held-out (topic, task, language) plus small talk."""
    rng = random.Random(f"{seed}-sft")
    seen, rows = set(), []

    def add(ex: Example) -> None:
        if (ex.prompt, ex.response) not in seen:
            seen.add((ex.prompt, ex.response))
            rows.append(ex)

    for p, r, topic, task in SEED_ROWS:
        assert not is_heldout(topic, task), (topic, task)
        add(Example(p, r, topic, task, "zh"))
    for lang, talks in SMALL_TALK.items():
        for prompt, answers in talks:
            for answer in answers:
                add(Example(prompt, answer, None, "small_talk", lang))
    for topic, task, lang in _train_combos(list(TOPICS)):
        for _ in range(SFT_SAMPLES_PER_COMBO):
            add(sample_example(rng, topic, task, lang))
    rng.shuffle(rows)
    return rows


def sft_val_examples(seed: int = DEFAULT_SEED) -> list[Example]:
    """Held-out combinations with training phrasings (prompts never in the training files)."""
    rng = random.Random(f"{seed}-sft-val")
    rows, seen = [], set()
    for topic in TOPICS:
        for lang in LANGS:
            for _ in range(SFT_VAL_SAMPLES_PER_COMBO):
                ex = sample_example(rng, topic, heldout_task(topic.key), lang)
                if ex.prompt not in seen:
                    seen.add(ex.prompt)
                    rows.append(ex)
    return rows


def heldout_examples(seed: int = DEFAULT_SEED) -> list[Example]:
    """One prompt per topic: its held-out task, with a held-out phrasing."""
    rng = random.Random(f"{seed}-heldout")
    return [sample_example(rng, t, heldout_task(t.key), heldout_lang(t.key), phrasing="heldout") for t in TOPICS]

def ppo_prompt_rows(n: int, seed: int = DEFAULT_SEED) -> list[dict]:
    """Distinct training prompts for RL, with ``topic``/``task``/``lang`` columns for keyword rewards."""
    rng = random.Random(f"{seed}-ppo")
    combos = _train_combos(list(TOPICS))
    rows, seen = [], set()
    while len(rows) < n:
        ex = sample_example(rng, *rng.choice(combos))
        if ex.prompt not in seen:
            seen.add(ex.prompt)
            rows.append({"prompt": ex.prompt, "topic": ex.topic, "task": ex.task, "lang": ex.lang})
    return rows


def message_rows(n: int, seed: int = DEFAULT_SEED) -> list[dict]:
    """Two-turn conversations (system, user, assistant, user, assistant) about one topic."""
    rng = random.Random(f"{seed}-messages")
    rows = []
    for _ in range(n):
        topic, lang = rng.choice(TOPICS), rng.choice(LANGS)
        tasks = [t for t in TASKS if not is_heldout(topic.key, t)]
        first_task, second_task = rng.choice(tasks), rng.choice([t for t in tasks if t != "greet"])
        first, second = sample_example(rng, topic, first_task, lang), sample_example(rng, topic, second_task, lang)
        rows.append({"messages": [
            {"role": "system", "content": rng.choice(SYSTEM_PROMPTS[lang])},
            {"role": "user", "content": first.prompt},
            {"role": "assistant", "content": first.response},
            {"role": "user", "content": rng.choice(FOLLOW_UP[lang]).format(p=second.prompt)},
            {"role": "assistant", "content": second.response},
        ]})
    return rows
