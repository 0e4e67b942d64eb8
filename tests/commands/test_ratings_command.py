"""``rlhf-lightning ratings`` through ``rlhf_lightning.cli.main``: ratings by hand, annotators, models,
Elo and Plackett-Luce, the scored rows feeding the reward stage's ``mse`` loss, bad input, and the
output folder's safety."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from rlhf_lightning.cli import main
from rlhf_lightning.ratings.elo import elo_ratings, elo_to_log_odds
from rlhf_lightning.ratings.plackett_luce import fit_plackett_luce

LN2 = math.log(2)


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["ratings", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _pair(prompt: str, chosen: str, rejected: str, **extra) -> dict:
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, **extra}


def _scores(folder: Path) -> dict[tuple, float]:
    rows = [json.loads(line) for line in (folder / "scored.jsonl").read_text(encoding="utf-8").splitlines()]
    return {(r["prompt"], r["response"], r.get("model")): r["score"] for r in rows}


def test_chain_of_answers_rated_by_hand(tmp_path, capsys):
    """Prompt p: A beats B 2-1, B beats C 2-1 (a tree): with prior 0 the ratings are (ln2, 0, −ln2) and
    the SEs sqrt(5/6), sqrt(1/3), sqrt(5/6) (tests/ratings/test_bradley_terry.py derives them)."""
    rows = [_pair("p", "A", "B"), _pair("p", "A", "B"), _pair("p", "B", "A"),
            _pair("p", "B", "C"), _pair("p", "C", "B"), _pair("p", "B", "C")]
    src = _write(tmp_path / "j.jsonl", rows)
    out_dir = tmp_path / "out"
    code, out, err = _run(capsys, "--input", str(src), "--output", str(out_dir), "--prior", "0")
    assert code == 0, err
    assert out.strip().splitlines()[-1] == str(out_dir)
    assert _scores(out_dir) == pytest.approx({("p", "A", None): LN2, ("p", "B", None): 0.0, ("p", "C", None): -LN2})
    report = json.loads((out_dir / "ratings.json").read_text(encoding="utf-8"))
    (group,) = report["groups"]
    by_item = {item["response"]: item for item in group["items"]}
    assert by_item["A"]["se"] == pytest.approx(math.sqrt(5 / 6)) and by_item["B"]["se"] == pytest.approx(math.sqrt(1 / 3))
    assert by_item["A"]["elo"] == pytest.approx(1500 + 400 * LN2 / math.log(10))
    assert (by_item["B"]["wins"], by_item["B"]["losses"]) == (3, 3)
    assert report["comparisons"] == 6 and report["method"] == "bradley_terry" and group["fits"][0]["converged"]
    assert (out_dir / ".rlhf-lightning-ratings").is_file()


def test_davidson_ties_from_tie_rows_and_tied_sampled_scores(tmp_path, capsys):
    """A beats B 4 times, B beats A once, 2 ties — one from ``tie: true``, one from equal scores in a
    ranking row: Davidson gives θ_A = ln2 and ν = 1 (tests/ratings/test_bradley_terry.py)."""
    rows = [_pair("p", "A", "B")] * 4 + [_pair("p", "B", "A"), _pair("p", "A", "B", tie=True),
                                         {"prompt": "p", "responses": ["B", "A"], "scores": [0.5, 0.5]}]
    src = _write(tmp_path / "j.jsonl", rows)
    code, _, err = _run(capsys, "--input", str(src), "--output", str(tmp_path / "out"), "--ties", "davidson",
                        "--prior", "0")
    assert code == 0, err
    assert _scores(tmp_path / "out") == pytest.approx({("p", "A", None): LN2, ("p", "B", None): -LN2})
    report = json.loads((tmp_path / "out" / "ratings.json").read_text(encoding="utf-8"))
    assert report["groups"][0]["fits"][0]["nu"] == pytest.approx(1.0)
    assert report["groups"][0]["items"][0]["ties"] == 2


def _panel_rows() -> list[dict]:
    """tests/ratings/test_annotators.py's panel as rows: prompts u1-u4 judged by A, B, C, F (good > bad)
    and D, E (bad > good); prompt u5 by A (good) against D and E (bad)."""
    rows = []
    for unit in ("u1", "u2", "u3", "u4"):
        rows += [_pair(unit, "good", "bad", annotator=a) for a in "ABCF"]
        rows += [_pair(unit, "bad", "good", annotator=a) for a in "DE"]
    return rows + [_pair("u5", "good", "bad", annotator="A")] + [_pair("u5", "bad", "good", annotator=a) for a in "DE"]


@pytest.mark.parametrize("aggregate,u5_good_wins", [("majority", False), ("weighted", True)])
def test_annotator_votes(tmp_path, capsys, aggregate, u5_good_wins):
    src = _write(tmp_path / "j.jsonl", _panel_rows())
    code, out, err = _run(capsys, "--input", str(src), "--output", str(tmp_path / "out"), "--aggregate", aggregate)
    assert code == 0, err
    report = json.loads((tmp_path / "out" / "ratings.json").read_text(encoding="utf-8"))
    assert report["judgements"] == 27 and report["comparisons"] == 5  # one aggregated comparison per prompt
    assert report["annotators"]["A"]["agreement"] == pytest.approx(0.8)
    assert report["annotators"]["D"]["agreement"] == 0.0 and report["annotators"]["D"]["compared"] == 4
    weights = {name: a["weight"] for name, a in report["annotators"].items()}
    assert weights == ({k: 1.0 for k in "ABCDEF"} if aggregate == "majority" else
                       {"A": 1.0, "B": 1.0, "C": 1.0, "F": 1.0, "D": 0.0, "E": 0.0})
    scores = _scores(tmp_path / "out")
    assert (scores[("u5", "good", None)] > scores[("u5", "bad", None)]) == u5_good_wins
    assert "annotator A: 5 votes, agreement with the others' majority 0.800" in out


def test_every_vote_counts_without_aggregation(tmp_path, capsys):
    """aggregate: none keeps the 6 votes of u1 (4 for good, 2 for bad): d = ln 2 with prior 0."""
    rows = [r for r in _panel_rows() if r["prompt"] == "u1"]
    src = _write(tmp_path / "j.jsonl", rows)
    assert _run(capsys, "--input", str(src), "--output", str(tmp_path / "out"), "--prior", "0")[0] == 0
    scores = _scores(tmp_path / "out")
    assert scores[("u1", "good", None)] - scores[("u1", "bad", None)] == pytest.approx(LN2)


def test_models_rated_across_prompts(tmp_path, capsys):
    """m1 beats m2 in both prompts' rankings, m2 beats m3 once and loses once, m3 beats m1 once: the
    fit is over the models; every answer's score is its model's rating."""
    rows = [
        {"prompt": "p", "responses": ["a", "b", "c"], "ranking": [0, 1, 2], "policy": ["m1", "m2", "m3"]},
        {"prompt": "q", "responses": ["x", "y", "z"], "ranking": [2, 0, 1], "policy": ["m1", "m2", "m3"]},
        _pair("r", "s", "t", chosen_policy="m3", rejected_policy="m1"),
    ]
    src = _write(tmp_path / "j.jsonl", rows)
    code, _, err = _run(capsys, "--input", str(src), "--output", str(tmp_path / "out"), "--item", "model",
                        "--model_field", "policy")
    assert code == 0, err
    report = json.loads((tmp_path / "out" / "ratings.json").read_text(encoding="utf-8"))
    (group,) = report["groups"]
    assert group["prompt"] is None
    ratings = {item["model"]: item["rating"] for item in group["items"]}
    assert ratings["m1"] > ratings["m2"] and abs(sum(ratings.values())) < 1e-9
    scores = _scores(tmp_path / "out")
    assert len(scores) == 8
    assert scores[("p", "a", "m1")] == scores[("q", "x", "m1")] == scores[("r", "t", "m1")] == ratings["m1"]


def test_elo_and_plackett_luce(tmp_path, capsys):
    rows = [_pair("p", "A", "B"), _pair("p", "B", "C"), _pair("p", "C", "A"), _pair("p", "A", "C"),
            {"prompt": "p", "responses": ["A", "B", "C"], "ranking": [1, 0, 2]}]
    src = _write(tmp_path / "j.jsonl", rows)
    assert _run(capsys, "--input", str(src), "--output", str(tmp_path / "elo"), "--method", "elo", "--elo_k", "16")[0] == 0
    # the pairs in file order: A>B, B>C, C>A, A>C, then the ranking's B>A, B>C, A>C
    expected = elo_to_log_odds(elo_ratings(3, [0, 1, 2, 0, 1, 1, 0], [1, 2, 0, 2, 0, 2, 2], [1.0] * 7, k=16.0))
    scores = _scores(tmp_path / "elo")
    assert [scores[("p", x, None)] for x in "ABC"] == pytest.approx(expected.tolist())
    report = json.loads((tmp_path / "elo" / "ratings.json").read_text(encoding="utf-8"))
    assert "spread" in report["groups"][0]["items"][0] and report["groups"][0]["items"][0]["spread"] is None

    assert _run(capsys, "--input", str(src), "--output", str(tmp_path / "pl"), "--method", "plackett_luce")[0] == 0
    fit = fit_plackett_luce(3, [[0, 1], [1, 2], [2, 0], [0, 2], [1, 0, 2]], prior=0.1)
    scores = _scores(tmp_path / "pl")
    assert [scores[("p", x, None)] for x in "ABC"] == pytest.approx(fit.ratings.tolist())
    assert json.loads((tmp_path / "pl" / "ratings.json").read_text())["comparisons"] == 5  # rankings, not pairs


def test_disconnected_answers_rated_per_component_on_request(tmp_path, capsys):
    rows = [_pair("p", "A", "B"), _pair("p", "B", "A"), _pair("p", "C", "D"), _pair("p", "C", "D")]
    src = _write(tmp_path / "j.jsonl", rows)
    code, _, err = _run(capsys, "--input", str(src), "--output", str(tmp_path / "out"))
    assert code == 2 and "'C', 'D'" in err and "--components separate" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    code, _, err = _run(capsys, "--input", str(src), "--output", str(tmp_path / "out"), "--components", "separate")
    assert code == 0, err
    report = json.loads((tmp_path / "out" / "ratings.json").read_text(encoding="utf-8"))
    items = {i["response"]: i for i in report["groups"][0]["items"]}
    assert (items["A"]["component"], items["C"]["component"]) == (0, 1) and items["A"]["rating"] == pytest.approx(0)
    assert items["C"]["rating"] == pytest.approx(-items["D"]["rating"]) and items["C"]["rating"] > 0


def test_scored_rows_train_a_reward_model_with_the_mse_loss(tmp_path, capsys):
    """Rankings as `rlhf-lightning sample` writes them -> ratings -> `fit` of the reward stage with
    loss `mse` on scored.jsonl, unchanged, through the real CLI on a tiny model."""
    from tests.cli.conftest import write_config
    from tests.rewards.classifiers import build_tiny_classifier

    prompts = ["Write a poem about spring.", "Explain gravity.", "Say hello.", "What is rain?"]
    good, mid, bad = "Thank you, here is the answer.", "The answer is rain.", "no"
    ranking = _write(tmp_path / "ranking.jsonl", [{"prompt": p, "responses": [good, mid, bad], "scores": [2.0, 1.0, -1.0]}
                                                  for p in prompts])
    out = tmp_path / "ratings"
    assert _run(capsys, "--input", str(ranking), "--output", str(out))[0] == 0
    scored = out / "scored.jsonl"
    model = build_tiny_classifier(tmp_path / "clf")
    run = tmp_path / "run"
    cfg = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "max_epochs": 2, "default_root_dir": str(run),
                    "enable_progress_bar": False, "enable_model_summary": False, "log_every_n_steps": 1,
                    "num_sanity_val_steps": 0,
                    "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(run)}}},
        "model": {"class_path": "rlhf_lightning.modules.reward.RewardModelModule",
                  "init_args": {"backbone": {"name_or_path": str(model)}, "loss": "mse",
                                "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.01}}}},
        "data": {"class_path": "rlhf_lightning.datamodules.comparisons.ComparisonDataModule",
                 "init_args": {"train": str(scored), "val": str(scored), "max_length": 64, "batch_size": 4}},
    }
    config = write_config(tmp_path / "reward.yaml", cfg, {})
    assert yaml.safe_load(config.read_text())["model"]["init_args"]["loss"] == "mse"
    code = main(["fit", "--config", str(config)])
    assert code == 0, capsys.readouterr().err
    (metrics,) = run.rglob("metrics.csv")
    with open(metrics, encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val/mse")]
    assert len(rows) == 2 and all(math.isfinite(float(r["val/mse"])) for r in rows)
    assert (run / "export" / "config.json").is_file()


@pytest.mark.parametrize("rows,args,expected", [
    ([], [], ["no rows"]),
    ([_pair("p", "A", "B", annotator=["x"])], [], ["j.jsonl:1", "'annotator'", "list"]),
    ([_pair("p", "A", "A")], [], ["j.jsonl:1", "chosen is identical to rejected"]),
    ([_pair("p", "A", "B", chosen_model="m", rejected_model="m")], ["--item", "model"], ["j.jsonl:1", "self-comparison"]),
    ([_pair("p", "A", "B"), _pair("p", "C", "D"), _pair("p", "E", "C")], [],
     ["disconnected", "prompt 'p'", "'A', 'B'", "'C', 'D', 'E'"]),
    ([_pair("p", "A", "B"), _pair("p", "B", "C")], ["--prior", "0"], ["infinite", "['A']", "--prior > 0"]),
    ([_pair("p", "A", "B")], ["--method", "elo", "--ties", "davidson"], ["davidson"]),
    ([_pair("p", "A", "B")], ["--method", "plackett_luce", "--aggregate", "majority"], ["plackett_luce"]),
    ([_pair("p", "A", "B", tie=True)], ["--method", "plackett_luce"], ["j.jsonl:1", "tie"]),
    ([_pair("p", "A", "B")], ["--prior", "-1"], ["prior"]),
    ([_pair("p", "A", "B", tie=True)], ["--ties", "davidson"], ["every comparison", "prompt 'p'", "tie"]),
    ([_pair("p", "A", "B")], ["--method", "bt"], ["method"]),
], ids=["empty", "annotator_list", "self_answer", "self_model", "disconnected", "unbeaten_mle", "davidson_elo",
        "pl_aggregate", "pl_tie", "negative_prior", "davidson_all_ties", "unknown_method"])
def test_bad_input_exits_2_with_one_message(tmp_path, capsys, rows, args, expected):
    src = _write(tmp_path / "j.jsonl", rows)
    code, _, err = _run(capsys, "--input", str(src), "--output", str(tmp_path / "out"), *args)
    assert code == 2, err
    assert "Traceback" not in err and err.startswith("rlhf-lightning: error:")
    assert len([line for line in err.splitlines() if line.startswith("rlhf-lightning: error")]) == 1
    for text in expected:
        assert text in err, err
    assert not (tmp_path / "out").exists()


def test_output_folder_safety(tmp_path, capsys):
    src = _write(tmp_path / "j.jsonl", [_pair("p", "A", "B"), _pair("p", "B", "A")])
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep", encoding="utf-8")
    code, _, err = _run(capsys, "--input", str(src), "--output", str(foreign))
    assert code == 2 and "notes.txt" in err and (foreign / "notes.txt").read_text() == "keep"
    assert not (foreign / "scored.jsonl").exists()
    # the folder holding the input would be replaced with it
    code, _, err = _run(capsys, "--input", str(src), "--output", str(tmp_path))
    assert code == 2 and src.is_file()
    # an earlier ratings folder is replaced whole
    out = tmp_path / "out"
    assert _run(capsys, "--input", str(src), "--output", str(out))[0] == 0
    (out / "stale.txt").write_text("old", encoding="utf-8")
    assert _run(capsys, "--input", str(src), "--output", str(out))[0] == 0
    assert not (out / "stale.txt").exists() and (out / "scored.jsonl").is_file()


def test_reads_what_rlhf_lightning_sample_writes(tmp_path, tiny_llama_dir, capsys):
    """A tiny Llama's sampled answers, ranked by the length reward (`rlhf-lightning sample`): the
    ratings of each prompt's answers follow the ranking (equal scores, equal ratings), chat prompts
    included, from ranking.jsonl and from pairs.jsonl alike."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in [
        {"prompt": "Write a poem about spring."}, {"messages": [{"role": "user", "content": "Explain gravity."}]}]),
        encoding="utf-8")
    sample_cfg = tmp_path / "sample.yaml"
    sample_cfg.write_text(json.dumps({
        "policy": str(tiny_llama_dir), "prompts": str(prompts), "samples_per_prompt": 5, "seed": 1,
        "generation": {"max_new_tokens": 8, "do_sample": True}, "max_prompt_length": 64, "batch_size": 2,
        "rewards": [{"class_path": "length", "init_args": {"target": 12, "unit": "chars"}}], "pairs": "all",
        "output": str(tmp_path / "samples")}), encoding="utf-8")
    assert main(["sample", "--config", str(sample_cfg)]) == 0
    rankings = [json.loads(line) for line in (tmp_path / "samples" / "ranking.jsonl").read_text().splitlines()]
    assert len(rankings) == 2 and any(isinstance(r["prompt"], list) for r in rankings)
    capsys.readouterr()
    for source in ("ranking", "pairs"):
        out = tmp_path / f"rated_{source}"
        code, _, err = _run(capsys, "--input", str(tmp_path / "samples" / f"{source}.jsonl"), "--output", str(out))
        assert code == 0, err
        rows = [json.loads(line) for line in (out / "scored.jsonl").read_text(encoding="utf-8").splitlines()]
        for ranking in rankings:
            rated = {json.dumps(r["response"]): r["score"] for r in rows if r["prompt"] == ranking["prompt"]}
            ratings = [rated[json.dumps(resp)] for resp in ranking["responses"] if json.dumps(resp) in rated]
            scores = [s for resp, s in zip(ranking["responses"], ranking["scores"], strict=True)
                      if json.dumps(resp) in rated]
            assert len(ratings) >= 2
            for k in range(len(ratings) - 1):  # best first: ratings fall where scores fall, equal where tied
                assert ratings[k] > ratings[k + 1] + 1e-9 if scores[k] > scores[k + 1] else \
                    ratings[k] == pytest.approx(ratings[k + 1])
