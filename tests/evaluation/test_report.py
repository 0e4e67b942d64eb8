"""Per-policy figures from hand-made samples, and the report folder written atomically."""

from __future__ import annotations

import json
import math

import pytest

from rlhf_lightning.errors import DiskFullError, ExportError
from rlhf_lightning.evaluation import report as report_mod
from rlhf_lightning.evaluation.curves import StageCurves
from rlhf_lightning.evaluation.report import markdown, plot_names, write_report
from rlhf_lightning.evaluation.sampling import PolicySamples
from rlhf_lightning.evaluation.summary import answer_rows, examples, policy_figures
from rlhf_lightning.output_folders import write_marker
from tests.disk_full import fill_disk

# P = 2 prompts x N = 2 draws, prompt-major rows
BASE = PolicySamples(completions=["x", "x y", "z", "w"], lengths=[1, 2, 1, 1], finished=[True] * 4,
                     log_ratios=[0.0] * 4, rewards={"r": [1.0, 2.0, 3.0, 4.0]}, costs={"c": [0.0] * 4},
                     violations={"c": [False] * 4})
POLICY = PolicySamples(completions=["a b", "a", "春天", "b c | d\nnew"], lengths=[2, 4, 6, 8],
                       finished=[True, True, False, False], log_ratios=[0.5, -0.5, 1.0, 1.0],
                       rewards={"r": [2.0, 2.0, 1.0, 5.0]}, costs={"c": [3.0, 0.0, 0.0, 1.0]},
                       violations={"c": [True, False, False, False]})


def test_policy_figures_by_hand():
    """Wins per prompt: (win, tie) = 0.75 and (lose, win) = 0.5 -> 0.625. KL: mean of
    [0.5, -0.5, 1, 1] = 0.5, sd = sqrt((0 + 1 + 0.25 + 0.25) / 3) = sqrt(0.5). Words:
    [a b] [a] [春 天] [b c | d new] -> 10 / 4; unigrams a b a 春 天 b c | d new: 8 unique of 10;
    bigrams (a b) (春 天) (b c) (c |) (| d) (d new) -> 6 of 6."""
    f = policy_figures(POLICY, BASE, draws=2, primary="r", bootstrap_samples=100, seed=0)
    assert f["win_rate"] == pytest.approx(0.625) and f["win_rates"]["r"]["win_rate"] == f["win_rate"]
    assert 0.5 <= f["win_rate_ci"][0] <= 0.625 <= f["win_rate_ci"][1] <= 0.75
    assert f["kl"] == pytest.approx(0.5) and f["kl_std"] == pytest.approx(math.sqrt(0.5))
    assert f["kl_stderr"] == pytest.approx(math.sqrt(0.5) / 2)
    assert f["rewards"] == {"r": pytest.approx(2.5)}
    assert f["mean_length"] == 5.0 and f["mean_length_words"] == pytest.approx(10 / 4)
    assert f["finished_rate"] == 0.5
    assert f["distinct_1"] == pytest.approx(8 / 10) and f["distinct_2"] == 1.0
    assert f["violation_rates"] == {"c": 0.25} and f["mean_costs"] == {"c": 1.0}
    own = policy_figures(BASE, BASE, draws=2, primary="r", bootstrap_samples=100, seed=0)
    assert (own["win_rate"], own["win_rate_ci"], own["kl"]) == (0.5, [0.5, 0.5], 0.0)


def _report(tmp_path):
    samples = {"base": BASE, "pol": POLICY}
    figures = {n: policy_figures(s, BASE, draws=2, primary="r", bootstrap_samples=50, seed=0)
               for n, s in samples.items()}
    curves = [StageCurves("sft", "runs/sft", "runs/sft/lightning_logs/version_0", {"train/loss": ([0, 1], [2.0, 1.0])}),
              StageCurves("reward", "runs/reward")]
    report = {"baseline": "base", "primary_reward": "r", "reward_names": ["r"], "constraint_names": ["c"],
              "policies": figures, "examples": examples(["p1", "p2"], samples, draws=2, count=2, primary="r"),
              "stages": {c.stage: {"folder": c.folder, "log_dir": c.log_dir, "final": c.final(),
                                   "plotted": list(c.plotted())} for c in curves},
              "plots": plot_names(curves),
              "settings": {"prompts": "p.jsonl", "prompts_count": 2, "samples_per_prompt": 2, "seed": 0,
                           "bootstrap_samples": 50, "confidence": 0.95, "kl_note": None}}
    return report, curves, answer_rows(["p1", "p2"], samples, draws=2)


def _earlier_report(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    write_marker(out, "report")
    (out / "report.json").write_text('{"old": true}')
    return out


def test_write_report_replaces_an_earlier_report(tmp_path):
    report, curves, answers = _report(tmp_path)
    out = _earlier_report(tmp_path)
    (out / "stale.txt").write_text("from an older report")
    assert write_report(report, out, curves, answers) == out.absolute()
    assert sorted(p.name for p in out.iterdir()) == [".rlhf-lightning-report", "answers.jsonl", "curves_sft.png",
                                                     "report.json", "report.md", "reward_vs_kl.png", "win_rates.png"]
    assert json.loads((out / "report.json").read_text())["policies"]["pol"]["win_rate"] == pytest.approx(0.625)
    rows = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert [(r["policy"], r["prompt_index"], r["draw"]) for r in rows[4:]] == [("pol", 0, 0), ("pol", 0, 1),
                                                                               ("pol", 1, 0), ("pol", 1, 1)]
    assert rows[7]["rewards"] == {"r": 5.0} and rows[4]["violations"] == {"c": True} and rows[6]["prompt"] == "p2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # staging folder swapped in, old one deleted


def test_failed_write_keeps_the_previous_report(tmp_path, monkeypatch):
    report, curves, answers = _report(tmp_path)
    out = _earlier_report(tmp_path)

    def broken(*args, **kwargs):
        raise ValueError("cannot draw")

    monkeypatch.setattr(report_mod, "plot_reward_vs_kl", broken)
    with pytest.raises(ExportError, match="previous report kept.*cannot draw"):
        write_report(report, out, curves, answers)
    assert sorted(p.name for p in out.iterdir()) == [".rlhf-lightning-report", "report.json"]
    assert (out / "report.json").read_text() == '{"old": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_disk_full_while_writing_keeps_the_previous_report(tmp_path, monkeypatch):
    report, curves, answers = _report(tmp_path)
    out = _earlier_report(tmp_path)
    fill_disk(monkeypatch, tmp_path, budget=500)  # answers.jsonl is cut
    with pytest.raises(DiskFullError, match=f"while writing the report {out}: the partial folder was removed"):
        write_report(report, out, curves, answers)
    monkeypatch.undo()
    assert sorted(p.name for p in out.iterdir()) == [".rlhf-lightning-report", "report.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_a_folder_that_is_not_a_report_is_refused_and_kept(tmp_path):
    report, curves, answers = _report(tmp_path)
    out = tmp_path / "results"
    out.mkdir()
    (out / "notes.md").write_text("mine")
    with pytest.raises(ExportError, match=f"cannot write the report to {out}: .*not an earlier report.*notes.md"):
        write_report(report, out, curves, answers)
    assert [p.name for p in out.iterdir()] == ["notes.md"] and sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_markdown_tables_escape_cells_and_show_answers_side_by_side(tmp_path):
    report, _, _ = _report(tmp_path)
    md = markdown(report)
    assert "| base (baseline) | 0.500 | [0.500, 0.500] | 0.000 ± 0.000 | 2.500 |" in md
    assert "| prompt | base (baseline) | pol |" in md
    assert "| p1 | x<br>*r 1.000* | a b<br>*r 2.000* |" in md
    assert "b c \\| d<br>new" not in md  # draw 1 of prompt 2 is not an example (draw 0 only)
    assert "| p2 | z<br>*r 3.000* | 春天<br>*r 1.000* |" in md
    assert "No TensorBoard event files under runs/reward." in md and "![sft curves](curves_sft.png)" in md
    assert "| train/loss | 1 |" in md


def test_markdown_cell_escaping():
    assert report_mod._cell("a | b\nc") == "a \\| b<br>c"
    assert report_mod._cell("  ") == "*(empty)*"
