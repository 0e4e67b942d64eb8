"""``rlhf-lightning predict`` for every stage through ``rlhf_lightning.cli.main`` on tiny models: DPO and
PPO/GRPO answer ``data.predict`` prompts with their decoding options; a reward model scores each row's
(prompt, completion or response) exactly as the ``classifier`` reward plugin does; a missing
``data.predict`` is a one-line error with exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlhf_lightning.cli import main
from tests.cli.test_dpo_cli import dpo_config
from tests.cli.test_ppo_cli import ppo_config, prompt_file
from tests.cli.test_reward_cli import rm_config
from tests.rewards.classifiers import build_tiny_bert_classifier, build_tiny_classifier

# one file, two prompt layouts: the columns of both are kept in every output row
PROMPT_ROWS = [
    {"prompt": "Explain gravity.", "id": 0},
    {"messages": [{"role": "user", "content": "Say hello."}], "id": 1},
    {"prompt": "写一首关于春天的诗", "id": 2},
]
SCORED_ROWS = [
    {"prompt": "Explain gravity.", "completion": "Gravity pulls objects toward each other.", "id": 0},
    {"prompt": "Say hello.", "response": "Hello! How can I help you today?", "id": 1},
    {"prompt": "Write a poem about spring.", "completion": "no", "id": 2},
]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _predict(cfg: Path, out: Path, *extra: str) -> list[dict]:
    assert main(["predict", "--config", str(cfg), "--predictions.output", str(out), *extra]) == 0
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def _check_answers(rows: list[dict], per_prompt: int) -> None:
    assert [r["id"] for r in rows] == [i for i in range(len(PROMPT_ROWS)) for _ in range(per_prompt)]
    for row in rows:
        source = PROMPT_ROWS[row["id"]]
        assert row.get("prompt") == source.get("prompt") and row.get("messages") == source.get("messages")
        assert isinstance(row["completion"], str) and row["completion"].strip()
        assert "text" not in row and "input_ids" not in row


@pytest.fixture()
def pref_files(tmp_path):
    pairs = [{"prompt": "Explain gravity.", "chosen": "Gravity pulls.", "rejected": "Bonjour."}] * 2
    return {"train": _write(tmp_path / "train.jsonl", pairs), "val": _write(tmp_path / "val.jsonl", pairs)}


def test_dpo_predict_samples_n_answers_per_prompt(tmp_path, tiny_llama_dir, pref_files):
    cfg = dpo_config(tmp_path, tiny_llama_dir, pref_files, **{
        "data.init_args.predict": str(_write(tmp_path / "prompts.jsonl", PROMPT_ROWS)),
        "model.init_args.generation": {"max_new_tokens": 6, "min_new_tokens": 3, "do_sample": True,
                                       "num_return_sequences": 2},
    })
    rows = _predict(cfg, tmp_path / "pred.jsonl")
    _check_answers(rows, per_prompt=2)


@pytest.mark.parametrize("val_generation, per_prompt", [
    (None, 2),  # generation: 2 samples per prompt
    ({"max_new_tokens": 6, "min_new_tokens": 3, "num_return_sequences": 1}, 1),  # val_generation, greedy
], ids=["generation", "val_generation"])
def test_ppo_predict_uses_val_generation_else_generation(tmp_path, tiny_llama_dir, val_generation, per_prompt):
    cfg = ppo_config(tmp_path, tiny_llama_dir, prompt_file(tmp_path), **{
        "data.init_args.predict": str(_write(tmp_path / "heldout.jsonl", PROMPT_ROWS)),
        "model.init_args.generation": {"max_new_tokens": 6, "min_new_tokens": 3, "do_sample": True,
                                       "num_return_sequences": 2},
        "model.init_args.val_generation": val_generation,
    })
    rows = _predict(cfg, tmp_path / "pred.jsonl")
    _check_answers(rows, per_prompt)
    if per_prompt == 1:  # greedy: the same answers again
        assert _predict(cfg, tmp_path / "again.jsonl") == rows


@pytest.mark.parametrize("kind, max_length", [("llama", 96), ("llama", 12), ("bert", 96)],
                         ids=["chat-template", "truncated", "bert-text-pairs"])
def test_reward_predict_scores_like_the_classifier_plugin(tmp_path, kind, max_length):
    from rlhf_lightning.rewards.model import ClassifierReward

    build = build_tiny_classifier if kind == "llama" else build_tiny_bert_classifier
    clf = build(tmp_path / "clf")
    pairs = _write(tmp_path / "pairs.jsonl", [{"prompt": "a b", "chosen": "c", "rejected": "d"}] * 2)
    cfg = rm_config(tmp_path, clf, {"train": pairs, "val": pairs}, **{
        "data.init_args.predict": str(_write(tmp_path / "answers.jsonl", SCORED_ROWS)),
        "data.init_args.max_length": max_length, "data.init_args.eval_batch_size": 2,
    })
    rows = _predict(cfg, tmp_path / "scores.jsonl")
    assert [r["id"] for r in rows] == [0, 1, 2]
    for row, source in zip(rows, SCORED_ROWS, strict=True):
        assert {k: v for k, v in row.items() if k != "score" and v is not None} == source
        assert isinstance(row["score"], float)
    # the same numbers as scoring the model folder with the plugin (left truncation to max_length)
    plugin = ClassifierReward(str(clf), max_length=max_length)
    expected = plugin([r["prompt"] for r in SCORED_ROWS], [r.get("completion") or r["response"] for r in SCORED_ROWS])
    assert [r["score"] for r in rows] == pytest.approx(expected, abs=1e-4)
    assert len(set(expected)) == 3  # the rows are told apart


def _fails(args: list[str], capsys) -> str:
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err


def test_predict_without_data_predict_is_a_config_error(tmp_path, tiny_llama_dir, pref_files, capsys):
    dpo = dpo_config(tmp_path, tiny_llama_dir, pref_files)
    assert "data.predict is empty" in _fails(["predict", "--config", str(dpo)], capsys)
    ppo = ppo_config(tmp_path, tiny_llama_dir, prompt_file(tmp_path))
    assert "data.predict is empty" in _fails(["predict", "--config", str(ppo)], capsys)


def test_reward_predict_row_without_an_answer(tmp_path, capsys):
    clf = build_tiny_classifier(tmp_path / "clf")
    pairs = _write(tmp_path / "pairs.jsonl", [{"prompt": "a b", "chosen": "c", "rejected": "d"}] * 2)
    cfg = rm_config(tmp_path, clf, {"train": pairs, "val": pairs},
                    **{"data.init_args.predict": str(_write(tmp_path / "prompts.jsonl", PROMPT_ROWS))})
    err = _fails(["predict", "--config", str(cfg)], capsys)
    assert "'completion' or 'response'" in err and "row 0" in err
