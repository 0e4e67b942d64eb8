"""The ``judge`` reward by its entry-point name in real CLI runs: ``score`` with an endpoint judge and a
local one, ``sample`` ranking each prompt's answers by a pairwise judge's win rates, and bad
configurations (unknown template field, unreachable judge, missing key) exiting 2 with one message."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rlhf_lightning.cli import main as cli_main
from tests.rewards.judges import build_judge_model, chat_behaviour, length_rater, longer_wins

ROWS = [{"prompt": "Explain gravity.", "completion": "abc", "answer": "x"},
        {"prompt": "Write a poem.", "completion": "abcdefghijkl", "answer": "y"},
        {"prompt": "Say hi.", "completion": "hi", "answer": "z"}]


def _write(tmp_path: Path, name: str, value) -> str:
    path = tmp_path / name
    if name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in value), encoding="utf-8")
    else:
        path.write_text(json.dumps(value), encoding="utf-8")
    return str(path)


def _score(tmp_path: Path, init_args: dict, *extra: str) -> int:
    config = _write(tmp_path, "scoring.yaml", {"rewards": [{"class_path": "judge", "init_args": init_args}]})
    return cli_main(["score", "--config", config, "--input", _write(tmp_path, "in.jsonl", ROWS),
                     "--output", str(tmp_path / "scored.jsonl"), *extra])


def _scored(tmp_path: Path) -> list[float]:
    lines = (tmp_path / "scored.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["rewards"]["judge"] for line in lines]


def test_score_command_with_an_endpoint_judge(tmp_path, judges, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-cli-41aa")
    server = judges(chat_behaviour(length_rater))
    init = {"model": "judge-7b", "base_url": server.url("/v1"), "api_key_env": "JUDGE_KEY", "timeout": 2}
    assert _score(tmp_path, init, "--batch_size", "2") == 0
    # lengths 3, 12, 2 -> ratings 3, 10, 2 -> (r - 1) / 9
    assert _scored(tmp_path) == pytest.approx([2 / 9, 1.0, 1 / 9])
    assert len(server.requests) == 3
    assert b"sk-cli-41aa" not in (tmp_path / "scored.jsonl").read_bytes()


def test_score_command_with_a_local_judge_reading_label_probabilities(tmp_path, tiny_tokenizer_dir):
    folder = build_judge_model(tmp_path / "judge", tiny_tokenizer_dir, {"Yes": math.log(4.0), "No": 0.0})
    init = {"model": str(folder), "read": "probabilities", "choices": {"Yes": 1.0, "No": 0.0},
            "template": "Is this a good answer to {prompt}?\n{completion}\nYes or No?"}
    assert _score(tmp_path, init) == 0
    assert _scored(tmp_path) == pytest.approx([0.8] * 3, abs=1e-6)  # e^ln4 / (e^ln4 + e^0) = 4/5


@pytest.mark.parametrize("init, message", [
    ({"model": "m", "template": "Rate {completion} given {gold}"}, r"template: has unknown field\(s\) \{gold\}"),
    ({"model": "m", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "NO_SUCH_JUDGE_KEY"},
     "environment variable NO_SUCH_JUDGE_KEY is not set"),
    ({"model": "m", "base_url": "ftp://judge/v1"}, "url must start with http:// or https://"),
])
def test_score_command_bad_judge_config_exits_2_with_one_message(tmp_path, capsys, monkeypatch, init, message):
    monkeypatch.delenv("NO_SUCH_JUDGE_KEY", raising=False)
    assert _score(tmp_path, init) == 2
    err = capsys.readouterr().err
    assert __import__("re").search(message, err) and "Traceback" not in err, err
    assert not (tmp_path / "scored.jsonl").exists()


def test_score_command_with_an_unreachable_judge_exits_2_naming_it(tmp_path, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    init = {"model": "m", "base_url": f"http://127.0.0.1:{port}/v1", "timeout": 1, "retries": 0}
    assert _score(tmp_path, init) == 2
    err = capsys.readouterr().err
    assert f"judge http://127.0.0.1:{port}/v1/chat/completions failed" in err and "Traceback" not in err


def _expected_win_rates(answers: list[str]) -> list[float]:
    """``longer_wins`` judged in both orders: longer beats shorter (1), equal length (or the same text) ties
    (the judge says "A" in both orders: (1 + 1 − 1) / 2 = 1/2)."""
    def p(a: str, b: str) -> float:
        return 0.5 if len(a) == len(b) else float(len(a) > len(b))

    return [sum(p(a, b) for j, b in enumerate(answers) if j != i) / (len(answers) - 1) for i, a in enumerate(answers)]


def test_sample_command_ranks_answers_by_a_pairwise_judge(tmp_path, tiny_llama_dir, judges, monkeypatch, capsys):
    monkeypatch.setenv("JUDGE_KEY", "sk-cli-41aa")
    server = judges(chat_behaviour(longer_wins))
    prompts = _write(tmp_path, "prompts.jsonl", [{"prompt": "Write a poem about spring."},
                                                 {"prompt": "Explain gravity."}, {"prompt": "Translate: hello"}])
    judge = {"class_path": "judge", "init_args": {"model": "judge-7b", "base_url": server.url("/v1"),
                                                  "api_key_env": "JUDGE_KEY", "mode": "pairwise", "timeout": 5}}
    config = _write(tmp_path, "sample.yaml", {
        "policy": str(tiny_llama_dir), "prompts": prompts, "samples_per_prompt": 4, "seed": 1,
        "generation": {"max_new_tokens": 8, "do_sample": True}, "max_prompt_length": 64, "batch_size": 2,
        "rewards": [judge], "reward_names": ["judge"], "pairs": "best_worst", "output": str(tmp_path / "samples")})
    assert cli_main(["sample", "--config", config]) == 0
    out = tmp_path / "samples"
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    asked = 0
    for p in range(3):
        mine = [s for s in samples if s["prompt_index"] == p]
        answers = [s["completion"] for s in mine]
        assert [s["rewards"]["judge"] for s in mine] == pytest.approx(_expected_win_rates(answers))
        asked += sum(a != b for i, a in enumerate(answers) for j, b in enumerate(answers) if i != j)
    assert len(server.requests) == asked  # K(K-1) per prompt, less the pairs of identical answers
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").read_text(encoding="utf-8").splitlines()]
    assert pairs and all(len(pair["chosen"]) > len(pair["rejected"]) for pair in pairs)  # longer answers win


def test_grpo_fit_with_a_pairwise_judge_compares_answers_within_each_group(tmp_path, tiny_llama_dir, judges,
                                                                          monkeypatch):
    from tests.cli.test_ppo_cli import PROMPTS, ppo_config, prompt_file
    from tests.rewards.judges import between, user_text

    monkeypatch.setenv("JUDGE_KEY", "sk-cli-41aa")
    server = judges(chat_behaviour(longer_wins))
    judge = {"class_path": "judge", "init_args": {"model": "judge-7b", "base_url": server.url("/v1"),
                                                  "api_key_env": "JUDGE_KEY", "mode": "pairwise", "timeout": 5,
                                                  "unpaired": "neutral"}}
    cfg = ppo_config(tmp_path, tiny_llama_dir, prompt_file(tmp_path), **{
        "trainer.max_steps": 4,  # one epoch: 2 rollouts × 2 minibatches, then validation
        "model.init_args.rewards": [judge], "model.init_args.reward_weights": [1.0], "export.enabled": False})
    assert cli_main(["fit", "--config", str(cfg)]) == 0
    assert server.requests, "the judge was never asked"
    for _, body, _ in server.requests:  # each judgment compares two answers to one prompt of the data
        assert between(user_text(body), "[Question]", "[Answer A]") in PROMPTS
    import csv

    with next(tmp_path.glob("lightning_logs/version_*/metrics.csv")).open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    train = [float(r["train/reward/judge"]) for r in rows if r.get("train/reward/judge")]
    val = [float(r["val/reward/judge"]) for r in rows if r.get("val/reward/judge")]
    # win rates average 1/2 in every group; validation answers each prompt once: neutral 1/2
    assert train and all(v == pytest.approx(0.5) for v in train)
    assert val == [pytest.approx(0.5)]
    for path in tmp_path.rglob("*"):  # config, hparams, metrics, checkpoints: the key is nowhere
        assert not path.is_file() or b"sk-cli-41aa" not in path.read_bytes(), path


def test_grpo_validation_with_a_lone_answer_per_prompt_names_the_way_out(tmp_path, tiny_llama_dir, judges,
                                                                         monkeypatch, capsys):
    from tests.cli.test_ppo_cli import ppo_config, prompt_file

    monkeypatch.setenv("JUDGE_KEY", "sk-cli-41aa")
    server = judges(chat_behaviour(longer_wins))
    judge = {"class_path": "judge", "init_args": {"model": "judge-7b", "base_url": server.url("/v1"),
                                                  "api_key_env": "JUDGE_KEY", "mode": "pairwise", "timeout": 5}}
    cfg = ppo_config(tmp_path, tiny_llama_dir, prompt_file(tmp_path), **{
        "trainer.max_steps": 4, "model.init_args.rewards": [judge], "model.init_args.reward_weights": [1.0],
        "export.enabled": False})
    assert cli_main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "is the only answer to its prompt" in err and "unpaired: neutral" in err and "Traceback" not in err
