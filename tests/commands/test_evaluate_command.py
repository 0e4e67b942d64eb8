"""``rlhf-lightning evaluate``: two tiny Llama policies end to end through the CLI, and bad input."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from rlhf_lightning.cli import main as cli_main
from rlhf_lightning.rewards.base import RewardFunction
from tests import tiny

PROMPTS = [{"prompt": "Write a poem about spring.", "topic": "spring"},
           {"prompt": "请解释什么是人工智能。", "topic": "ai"},
           {"prompt": "Explain gravity.", "topic": "physics"}]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_llama_dir, tiny_tokenizer_dir):
    """Two policies (the session's tiny Llama and one with other weights), prompts and a logged stage."""
    from torch.utils.tensorboard import SummaryWriter
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("evaluate")
    vocab = len(AutoTokenizer.from_pretrained(tiny_tokenizer_dir))
    other = tiny.build_llama(root / "other", vocab_size=vocab, seed=1, tokenizer_dir=tiny_tokenizer_dir)
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in PROMPTS), encoding="utf-8")
    writer = SummaryWriter(str(root / "sft_run" / "lightning_logs" / "version_0"))
    for step, loss in enumerate([3.0, 2.5, 2.0]):
        writer.add_scalar("train/loss", loss, step)
    writer.add_scalar("val/loss", 2.2, 2)
    writer.close()
    return {"root": root, "sft": Path(tiny_llama_dir), "dpo": other, "prompts": prompts}


def _config(setup, tmp_path, **overrides):
    values = {
        "policies": {"sft": str(setup["sft"]), "dpo": str(setup["dpo"])},
        "baseline": "sft",
        "prompts": str(setup["prompts"]),
        "samples_per_prompt": 2,
        "seed": 0,
        "generation": {"max_new_tokens": 6, "do_sample": True},
        "max_prompt_length": 64,
        "batch_size": 2,
        "rewards": [{"class_path": "length", "init_args": {"target": 12, "unit": "chars"}},
                    {"class_path": "keyword", "init_args": {"keywords": ["a", "e"]}}],
        "reward_names": ["len", "kw"],
        "constraints": [{"class_path": "max_length", "init_args": {"max_length": 2}}],
        "logs": {"sft": str(setup["root"] / "sft_run")},
        "examples": 2,
        "bootstrap_samples": 200,
        "output": str(tmp_path / "report"),
    }
    values.update(overrides)
    path = tmp_path / "eval.yaml"
    path.write_text(json.dumps(values, ensure_ascii=False), encoding="utf-8")  # JSON is YAML
    return str(path)


def test_evaluate_writes_the_report_folder(setup, tmp_path, capsys):
    assert cli_main(["evaluate", "--config", _config(setup, tmp_path)]) == 0
    out = tmp_path / "report"
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out.absolute())
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["baseline"] == "sft" and report["primary_reward"] == "len"
    base, dpo = report["policies"]["sft"], report["policies"]["dpo"]
    assert (base["win_rate"], base["win_rate_ci"], base["kl"], base["kl_std"]) == (0.5, [0.5, 0.5], 0.0, 0.0)
    assert base["win_rates"]["kw"] == {"win_rate": 0.5, "ci": [0.5, 0.5]}
    for p in (base, dpo):
        assert set(p["rewards"]) == {"len", "kw"} and set(p["violation_rates"]) == {"max_length"}
        assert p["win_rate_ci"][0] <= p["win_rate"] <= p["win_rate_ci"][1]
        assert 0 < p["mean_length"] <= 6 and 0 <= p["distinct_1"] <= 1 and 0 <= p["distinct_2"] <= 1

    # every figure recomputed by hand from answers.jsonl
    answers = [json.loads(line) for line in (out / "answers.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(answers) == 2 * len(PROMPTS) * 2
    by = {(a["policy"], a["prompt_index"], a["draw"]): a for a in answers}
    per_prompt = []
    for i in range(len(PROMPTS)):
        wins = [1.0 if d > b else 0.5 if d == b else 0.0 for d, b in
                ((by["dpo", i, j]["rewards"]["len"], by["sft", i, j]["rewards"]["len"]) for j in range(2))]
        per_prompt.append(sum(wins) / 2)
    assert dpo["win_rate"] == pytest.approx(sum(per_prompt) / len(per_prompt))
    mine = [a for a in answers if a["policy"] == "dpo"]
    assert dpo["kl"] == pytest.approx(sum(a["log_ratio"] for a in mine) / len(mine))
    assert dpo["kl"] != 0.0
    assert dpo["rewards"]["kw"] == pytest.approx(sum(a["rewards"]["kw"] for a in mine) / len(mine))
    assert dpo["mean_length"] == pytest.approx(sum(a["tokens"] for a in mine) / len(mine))
    assert dpo["violation_rates"]["max_length"] == pytest.approx(
        sum(a["violations"]["max_length"] for a in mine) / len(mine))
    assert {a["prompt"] for a in answers} == {r["prompt"] for r in PROMPTS}

    assert report["settings"]["kl_samples_from_policy"] is True and report["settings"]["kl_note"] is None
    assert report["settings"]["prompts_count"] == 3 and report["settings"]["cpu"]
    assert report["stages"]["sft"]["final"] == {"train/loss": 2.0, "val/loss": pytest.approx(2.2)}
    for png in ("win_rates.png", "reward_vs_kl.png", "curves_sft.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "| sft (baseline) | 0.500 | [0.500, 0.500] |" in md
    assert "| prompt | sft (baseline) | dpo |" in md  # the answers side by side
    assert "请解释什么是人工智能。" in md and PROMPTS[2]["prompt"] not in md  # examples: 2
    assert len(report["examples"]) == 2
    assert report["examples"][0]["answers"]["dpo"] == by["dpo", 0, 0]["completion"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["eval.yaml", "report"]  # no staging folder left


def test_settings_that_are_not_plain_sampling_are_stated(setup, tmp_path, capsys):
    config = _config(setup, tmp_path, generation={"max_new_tokens": 4, "do_sample": True, "temperature": 0.7},
                     policies={"sft": str(setup["sft"])}, logs={}, constraints=[])
    assert cli_main(["evaluate", "--config", config]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))
    assert report["settings"]["kl_samples_from_policy"] is False
    assert "temperature 0.7" in report["settings"]["kl_note"]
    assert "temperature 0.7" in capsys.readouterr().out


class CallCounter(RewardFunction):
    """A stateful reward: the k-th answer it ever scores gets k (state in ``state_dict``)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __call__(self, prompts, completions, **columns):
        scores = [float(self.calls + i) for i in range(len(completions))]
        self.calls += len(completions)
        return scores

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = state["calls"]


def test_identical_copy_of_the_baseline_ties_even_with_a_stateful_reward(setup, tmp_path, capsys):
    """Same weights in another folder: the same answers (common random numbers), KL exactly 0, and,
    because every policy starts the plugins from the same state, the same scores: win rate 0.5."""
    import shutil

    copy = shutil.copytree(setup["sft"], tmp_path / "copy")
    config = _config(setup, tmp_path, policies={"sft": str(setup["sft"]), "copy": str(copy)}, logs={},
                     rewards=[{"class_path": f"{__name__}.CallCounter"}], reward_names=None, constraints=[])
    assert cli_main(["evaluate", "--config", config]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))
    twin = report["policies"]["copy"]
    assert (twin["win_rate"], twin["win_rate_ci"], twin["kl"]) == (0.5, [0.5, 0.5], 0.0)
    assert twin["rewards"] == report["policies"]["sft"]["rewards"] == {"CallCounter": 2.5}  # mean of 0..5
    assert report["examples"][0]["answers"]["copy"] == report["examples"][0]["answers"]["sft"]


@pytest.fixture()
def previous_report(tmp_path):
    from rlhf_lightning.output_folders import write_marker

    out = tmp_path / "report"
    out.mkdir()
    write_marker(out, "report")
    (out / "report.json").write_text('{"old": true}')
    return out


@pytest.mark.parametrize("case, match", [
    ("empty_prompts", "no prompts"),
    ("missing_prompts", "prompts file not found"),
    ("missing_policy", "policy 'dpo': folder .*nowhere does not exist"),
    ("hub_id", "'no-such-org/no-such-model' is neither a local folder nor a reachable Hugging Face hub id"),
    ("baseline", "baseline 'rlhf' is not among the policies \\(sft, dpo\\)"),
    ("unknown_reward", "Unknown plugin 'no_such_reward'"),
    ("samples", "samples_per_prompt must be >= 1, got 0"),
    ("primary", "primary_reward 'quality' is not a reward name"),
    ("missing_logs", "logs.ppo: folder .* does not exist"),
])
def test_bad_input_exits_2_with_one_message_and_keeps_the_previous_report(setup, tmp_path, capsys, previous_report,
                                                                          case, match):
    overrides = {
        "empty_prompts": lambda: {"prompts": str(_empty(tmp_path))},
        "missing_prompts": lambda: {"prompts": str(tmp_path / "absent.jsonl")},
        "missing_policy": lambda: {"policies": {"sft": str(setup["sft"]), "dpo": str(tmp_path / "nowhere")}},
        "hub_id": lambda: {"policies": {"sft": str(setup["sft"]), "dpo": "no-such-org/no-such-model"}},
        "baseline": lambda: {"baseline": "rlhf"},
        "unknown_reward": lambda: {"rewards": [{"class_path": "no_such_reward"}], "reward_names": None},
        "samples": lambda: {"samples_per_prompt": 0},
        "primary": lambda: {"primary_reward": "quality"},
        "missing_logs": lambda: {"logs": {"ppo": str(tmp_path / "no_run")}},
    }[case]()
    assert cli_main(["evaluate", "--config", _config(setup, tmp_path, **overrides)]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("rlhf-lightning: error:") == 1 and "Traceback" not in captured.err, captured.err
    assert re.search(match, captured.err), captured.err
    assert sorted(p.name for p in previous_report.iterdir()) == [".rlhf-lightning-report", "report.json"]
    assert (previous_report / "report.json").read_text() == '{"old": true}'
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report")]


@pytest.mark.parametrize("output, match", [
    ("mine", "cannot write the report to .*mine: the folder is not empty and is not an earlier report "
             "\\(no .rlhf-lightning-report file\\); it holds notes.md"),
    ("policies", "cannot write the report to .*policies: it is or contains .*sft, which the report would delete"),
    (".", "cannot write the report to \\.: it is the current folder"),
], ids=["user-files", "holds-a-policy", "current-folder"])
def test_an_output_folder_it_did_not_write_is_refused_before_anything_loads(setup, tmp_path, capsys, monkeypatch,
                                                                            output, match):
    import shutil

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.md").write_text("my notes")
    sft = shutil.copytree(setup["sft"], tmp_path / "policies" / "sft")
    monkeypatch.chdir(tmp_path)
    config = _config(setup, tmp_path, output=output, policies={"sft": str(sft), "dpo": str(setup["dpo"])})
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    assert cli_main(["evaluate", "--config", config]) == 2
    err = capsys.readouterr().err
    assert err.count("rlhf-lightning: error:") == 1 and re.search(match, err), err
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def _empty(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    return path


def test_policy_with_another_vocabulary_is_refused(setup, tmp_path, capsys, previous_report):
    from transformers import AutoTokenizer

    tok = tiny.build_tokenizer(tmp_path / "tok300", vocab_size=300)
    model = tiny.build_llama(tmp_path / "small", vocab_size=len(AutoTokenizer.from_pretrained(tok)), tokenizer_dir=tok)
    config = _config(setup, tmp_path, policies={"sft": str(setup["sft"]), "odd": str(model)})
    assert cli_main(["evaluate", "--config", config]) == 2
    err = capsys.readouterr().err
    assert "policy 'odd'" in err and "baseline 'sft'" in err and "different tokenizer vocabularies" in err
    assert (previous_report / "report.json").read_text() == '{"old": true}'


def test_config_block_of_a_documented_example_parses():
    """The module docstring's YAML is a valid config (parsed, not run: its folders do not exist here)."""
    import yaml

    from rlhf_lightning.commands import evaluate

    doc = evaluate.__doc__.split("::", 1)[1].split("\n\n")[1]
    values = yaml.safe_load(textwrap.dedent(doc))
    parser = evaluate.build_parser()
    cfg = parser.parse_object(values)
    assert cfg.baseline == "sft" and cfg.generation.max_new_tokens == 48 and cfg.samples_per_prompt == 4
