"""``rlhf-lightning sample``: a tiny Llama's sampled answers become preference pairs, rankings and
best-of-N rows (checked by hand against samples.jsonl), reproducibly; bad settings exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlhf_lightning.cli import main as cli_main
from rlhf_lightning.data.comparisons import to_comparison
from rlhf_lightning.data.sampled_preferences import pair_rows

PROMPTS = [{"prompt": "Write a poem about spring.", "topic": "spring"},
           {"messages": [{"role": "user", "content": "请解释什么是人工智能。"}], "topic": "ai"},
           {"prompt": "Explain gravity.", "topic": "physics"}]


def _config(tmp_path: Path, policy: str, **overrides) -> str:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in PROMPTS), encoding="utf-8")
    values = {
        "policy": policy, "prompts": str(prompts), "samples_per_prompt": 4, "seed": 3,
        "generation": {"max_new_tokens": 6, "do_sample": True}, "max_prompt_length": 64, "batch_size": 2,
        "rewards": [{"class_path": "length", "init_args": {"target": 12, "unit": "chars"}},
                    {"class_path": "keyword", "init_args": {"keywords": ["a", "e"]}}],
        "reward_names": ["len", "kw"], "reward_weights": [1.0, 0.5], "pairs": "all", "min_margin": 0.01,
        "output": str(tmp_path / "samples"),
    }
    values.update(overrides)
    path = tmp_path / "sample.yaml"
    path.write_text(json.dumps(values, ensure_ascii=False), encoding="utf-8")
    return str(path)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_sample_writes_pairs_rankings_and_best_of_n_from_the_scored_answers(tmp_path, tiny_llama_dir, capsys):
    assert cli_main(["sample", "--config", _config(tmp_path, str(tiny_llama_dir))]) == 0
    out = tmp_path / "samples"
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out.absolute())
    samples = _jsonl(out / "samples.jsonl")
    assert [(s["prompt_index"], s["draw"]) for s in samples] == [(p, d) for p in range(3) for d in range(4)]
    for s in samples:  # the ranking score is the weighted sum of the rewards
        assert s["score"] == pytest.approx(s["rewards"]["len"] + 0.5 * s["rewards"]["kw"])
    assert samples[4]["prompt"] == "请解释什么是人工智能。"

    expected = []
    for p, row in enumerate(PROMPTS):
        mine = [s for s in samples if s["prompt_index"] == p]
        prompt = row.get("prompt", row.get("messages"))
        expected += pair_rows(prompt, [s["completion"] for s in mine], [s["score"] for s in mine], mode="all",
                              min_margin=0.01)
    pairs = _jsonl(out / "pairs.jsonl")
    assert pairs == expected and pairs  # random tiny-model answers differ in length
    for i, pair in enumerate(pairs):
        assert pair["chosen_score"] - pair["rejected_score"] > 0.01
        to_comparison(pair, "pairwise", source="pairs.jsonl", index=i)  # the stages read it unchanged
    assert any(isinstance(p["prompt"], list) for p in pairs) or not any(s["prompt_index"] == 1 for s in samples)

    best = _jsonl(out / "best_of_n.jsonl")
    assert len(best) == 3
    assert best[0]["completion"] == max((s for s in samples if s["prompt_index"] == 0), key=lambda s: s["score"])[
        "completion"]
    assert best[1]["messages"][:-1] == PROMPTS[1]["messages"] and best[1]["messages"][-1]["role"] == "assistant"
    rankings = _jsonl(out / "ranking.jsonl")
    assert all(r["scores"] == sorted(r["scores"], reverse=True) for r in rankings)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert (summary["answers"], summary["pairs"], summary["best_of_n"]) == (12, len(pairs), 3)
    assert summary["reward_weights"] == {"len": 1.0, "kw": 0.5}

    # the same seed draws the same answers; the folder is replaced whole
    first = (out / "samples.jsonl").read_text(encoding="utf-8")
    assert cli_main(["sample", "--config", _config(tmp_path, str(tiny_llama_dir))]) == 0
    assert (out / "samples.jsonl").read_text(encoding="utf-8") == first
    assert cli_main(["sample", "--config", _config(tmp_path, str(tiny_llama_dir), seed=4)]) == 0
    assert (out / "samples.jsonl").read_text(encoding="utf-8") != first


@pytest.mark.parametrize("overrides, message", [
    ({"samples_per_prompt": 1}, "samples_per_prompt must be >= 2"),
    ({"generation": {"max_new_tokens": 4, "do_sample": False}}, "greedy decoding"),
    ({"rewards": [], "reward_names": None, "reward_weights": None}, "rewards is empty"),
    ({"reward_weights": [1.0]}, "reward_weights must be 2 finite numbers"),
    ({"min_margin": -1.0}, "min_margin must be a finite number >= 0"),
    ({"pairs": "best"}, "pairs"),
    ({"policy": "/no/such/policy"}, "folder /no/such/policy does not exist"),
    ({"prompt_template": "Summarize: {}"}, "prompt_template: field {} in 'Summarize: {}' is not a column name"),
    ({"prompt_template": "About {topic}."}, "row index 1: prompt_template builds a plain prompt, but the row is "
                                            "conversational"),
])
def test_bad_settings_exit_2_with_one_message(tmp_path, tiny_llama_dir, capsys, overrides, message):
    overrides.setdefault("policy", str(tiny_llama_dir))
    assert cli_main(["sample", "--config", _config(tmp_path, **overrides)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "samples").exists()


def test_prompt_template_builds_the_prompts_from_columns(tmp_path, tiny_llama_dir, capsys):
    """The template replaces each row's prompt; a row without a column it names is one error."""
    articles = tmp_path / "articles.jsonl"
    articles.write_text('{"text": "Rain falls.", "id": 1}\n{"text": "Snow.", "id": 2}\n', encoding="utf-8")
    config = _config(tmp_path, str(tiny_llama_dir), prompts=str(articles), prompt_template="Summarize: {text}")
    assert cli_main(["sample", "--config", config]) == 0
    rows = _jsonl(tmp_path / "samples" / "samples.jsonl")
    assert sorted({r["prompt"] for r in rows}) == ["Summarize: Rain falls.", "Summarize: Snow."]
    config = _config(tmp_path, str(tiny_llama_dir), prompts=str(articles), prompt_template="{title}: {text}")
    assert cli_main(["sample", "--config", config]) == 2
    assert "row index 0: prompt_template needs column 'title', which the row lacks" in capsys.readouterr().err
