"""The committed demo data: reproducible, held-out prompts really held out, formats as documented."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from rlhf_lightning.demo import corpus, files, preferences
from rlhf_lightning.demo.corpus import is_on_topic, topic_words
from rlhf_lightning.demo.templates import TASKS
from rlhf_lightning.demo.topics import TOPICS

DATA = Path(__file__).resolve().parents[2] / "configs" / "demo" / "data"

EXPECTED_KEYS = {
    "pretrain.jsonl": {"text"},
    "sft_val.jsonl": {"prompt", "response"},
    "prompts_heldout.jsonl": {"prompt", "topic", "task", "lang", "reference"},
    "preference_train.jsonl": {"prompt", "chosen", "rejected"},
    "preference_val.jsonl": {"prompt", "chosen", "rejected"},
    "ranking_train.jsonl": {"prompt", "responses", "ranking"},
    "ranking_val.jsonl": {"prompt", "responses", "ranking"},
    "scored_train.jsonl": {"prompt", "response", "score"},
    "ppo_prompts.jsonl": {"prompt", "topic", "task", "lang"},
    "messages_train.jsonl": {"messages"},
}


def _jsonl(name: str) -> list[dict]:
    with open(DATA / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _csv(name: str) -> list[dict]:
    with open(DATA / name, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_regenerating_gives_the_committed_files(tmp_path):
    paths = files.generate(tmp_path)
    committed = sorted(p.name for p in DATA.iterdir())
    assert sorted(paths) == committed, "configs/demo/data holds files the generator does not write (or lacks some)"
    for name, path in paths.items():
        assert path.read_bytes() == (DATA / name).read_bytes(), (
            f"{name} differs from a fresh run: regenerate with `python -m rlhf_lightning.demo` and commit"
        )


@pytest.mark.parametrize("name", sorted(EXPECTED_KEYS))
def test_jsonl_rows_have_the_documented_fields(name):
    rows = _jsonl(name)
    assert rows
    for row in rows:
        assert set(row) == EXPECTED_KEYS[name]
        for key, value in row.items():
            if key not in ("responses", "ranking", "score", "messages"):
                assert isinstance(value, str) and value.strip(), (name, key, row)


def test_sizes_fit_a_two_core_demo():
    assert 2000 <= len(_csv("sft_train.csv")) <= 4000
    assert 150 <= len(_jsonl("sft_val.jsonl")) <= 250
    assert 40 <= len(_jsonl("prompts_heldout.jsonl")) <= 80
    assert len(_jsonl("ppo_prompts.jsonl")) == 200
    docs = [r["text"] for r in _jsonl("pretrain.jsonl")]
    assert len(docs) >= 2000 and sum(map(len, docs)) <= 600_000
    assert sum(p.stat().st_size for p in DATA.iterdir()) < 2_500_000


def test_sft_csv_round_trips_chinese_through_csv_and_datasets(tmp_path):
    from datasets import load_dataset

    rows = _csv("sft_train.csv")
    assert list(rows[0]) == ["prompt", "response"]
    ds = load_dataset("csv", data_files=str(DATA / "sft_train.csv"), split="train", cache_dir=str(tmp_path))
    assert ds.column_names == ["prompt", "response"]
    assert ds["prompt"] == [r["prompt"] for r in rows] and ds["response"] == [r["response"] for r in rows]
    assert "写一首关于春天的诗" in ds["prompt"]  # the seed tutorial's example, intact
    assert sum(any("\u4e00" <= c <= "\u9fff" for c in p) for p in ds["prompt"]) > len(ds) // 3


def _training_prompts() -> set[str]:
    prompts = {r["prompt"] for r in _csv("sft_train.csv")}
    for name in ("preference_train.jsonl", "ranking_train.jsonl", "scored_train.jsonl", "ppo_prompts.jsonl"):
        prompts |= {r["prompt"] for r in _jsonl(name)}
    for row in _jsonl("messages_train.jsonl"):
        prompts |= {m["content"] for m in row["messages"] if m["role"] == "user"}
    return prompts


def test_heldout_prompts_occur_in_no_training_file():
    train = _training_prompts()
    heldout = [r["prompt"] for r in _jsonl("prompts_heldout.jsonl")]
    val = [r["prompt"] for r in _jsonl("sft_val.jsonl")]
    for prompt in heldout + val:
        assert not any(prompt in p for p in train), prompt
    assert not set(heldout) & set(val)


def test_heldout_combinations_are_absent_from_training_examples():
    for ex in corpus.sft_examples():
        assert ex.topic is None or ex.task != corpus.heldout_task(ex.topic), ex
    rows = _jsonl("prompts_heldout.jsonl")
    assert {r["topic"] for r in rows} == {t.key for t in TOPICS}
    assert {r["task"] for r in rows} == set(TASKS) and {r["lang"] for r in rows} == {"en", "zh"}
    for r in rows:
        assert r["task"] == corpus.heldout_task(r["topic"])
        assert is_on_topic(r["reference"], r["topic"]), r


def test_preference_validation_uses_unseen_prompts():
    for kind in ("preference", "ranking"):
        train = {r["prompt"] for r in _jsonl(f"{kind}_train.jsonl")}
        val = {r["prompt"] for r in _jsonl(f"{kind}_val.jsonl")}
        assert not train & val, kind


def _main_topic(text: str) -> str | None:
    """The topic with strictly the most word hits in ``text`` (None on a tie or no hit)."""
    hits = sorted(((corpus.topic_hits(text, t.key), t.key) for t in TOPICS), reverse=True)
    return hits[0][1] if hits[0][0] > hits[1][0] else None


def test_validation_topics_appear_in_no_training_answer():
    """Not even as a rejected (off-topic) answer: the reward model must not learn "their words are bad"."""
    val = set(corpus.preference_val_topics())
    for name in ("preference_train.jsonl", "ranking_train.jsonl", "scored_train.jsonl"):
        for row in _jsonl(name):
            answers = row.get("responses") or [row[k] for k in ("chosen", "rejected", "response") if k in row]
            assert not any(_main_topic(a) in val for a in answers), (name, row)
    val_answers = [a for r in _jsonl("preference_val.jsonl") for a in (r["chosen"], r["rejected"])]
    assert sum(_main_topic(a) in val for a in val_answers) > len(val_answers) // 2  # the check can fire


def test_off_topic_training_answers_are_also_chosen_for_their_own_prompt():
    """Mirrored pairs: an answer is bad only against another topic's prompt, never by itself."""
    rows = _jsonl("preference_train.jsonl")
    chosen = {r["chosen"] for r in rows}
    off_topic = [r for r in rows[:-1]  # the last row's mirror may fall beyond the file's length
                 if None != _main_topic(r["rejected"]) != _main_topic(r["chosen"]) != None
                 and not r["chosen"].startswith(r["rejected"])]  # not a truncated answer
    assert len(off_topic) > len(rows) // 4
    assert all(r["rejected"] in chosen for r in off_topic)


def test_preference_pairs_differ_and_rankings_are_permutations():
    for name in ("preference_train.jsonl", "preference_val.jsonl"):
        for row in _jsonl(name):
            assert row["chosen"] != row["rejected"], row
    for name in ("ranking_train.jsonl", "ranking_val.jsonl"):
        for row in _jsonl(name):
            assert len(row["responses"]) == 4 and len(set(row["responses"])) == 4, row
            assert sorted(row["ranking"]) == [0, 1, 2, 3], row
    scores = [r["score"] for r in _jsonl("scored_train.jsonl")]
    assert all(isinstance(s, float) for s in scores) and min(scores) < 0.1 and max(scores) > 0.9


def test_ranking_best_answer_is_on_topic_and_complete():
    for row in preferences.ranking_rows("train", 50):
        best, second = (row["responses"][i] for i in row["ranking"][:2])
        assert best.startswith(second) and len(best) > len(second)


def test_messages_alternate_roles():
    for row in _jsonl("messages_train.jsonl"):
        roles = [m["role"] for m in row["messages"]]
        assert roles == ["system", "user", "assistant", "user", "assistant"]


def test_generated_answers_are_judged_on_topic_and_other_topics_are_not():
    examples = [ex for ex in corpus.sft_examples() if ex.topic is not None][::3]
    assert all(is_on_topic(ex.response, ex.topic) for ex in examples)
    for ex in examples[:200]:
        other = next(t.key for t in TOPICS if t.key != ex.topic and not is_on_topic(ex.response, t.key))
        assert not is_on_topic(ex.response, other)
    off = [is_on_topic(preferences.rejected(random.Random(i), ex, "off_topic"), ex.topic)
           for i, ex in enumerate(examples[:200])]
    assert sum(off) <= 10  # a few off-topic answers share a word (e.g. 风 in 海风) and tie


def test_topic_words_and_is_on_topic_on_hand_written_text():
    assert topic_words("moon", "en")[0] == "moon" and "月亮" in topic_words("moon", "zh")
    assert is_on_topic("春风拂面，百花齐放，燕子呢喃，绿意盎然。", "spring")
    assert is_on_topic("The Moon rises; moonlight on the water.", "moon")
    assert is_on_topic("My cat likes a long nap.", "cat")  # singular of "cats"
    assert is_on_topic("量子力学是研究微观粒子运动规律的物理学。", "quantum")
    assert not is_on_topic("I don't know.", "spring")
    assert not is_on_topic("我不知道。", "tea")
    assert not is_on_topic("Waves crash on the beach and seagulls cry.", "mountains")
    assert not is_on_topic("Tea leaves in a teapot, and a cat asleep.", "ocean")
    with pytest.raises(ValueError, match="unknown language"):
        topic_words("moon", "fr")
