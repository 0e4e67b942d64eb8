"""The benchmark runner's arithmetic and tables on canned worker results (no training runs)."""

from __future__ import annotations

import pytest

from tests.benchmarks import run_all
from tests.benchmarks.summary import TokenMismatch, assert_identical_tokens, markdown, summarize_stage

TRAINED = dict(trained=dict(sequences=40, tokens=2000, sha256="abc"), prompts=dict(sequences=0, tokens=0, sha256="e3"),
               generated_tokens=0)


def _run(side, repeat, tokens_per_sec, rss, fingerprint=TRAINED, **extra):
    return dict(side=side, repeat=repeat, tokens_per_sec=tokens_per_sec, units_per_sec=tokens_per_sec / 100,
                peak_rss_mb=rss, matmul_parameters=1_000_000, fingerprint=fingerprint, **extra)


def _sft_runs():
    return {"trl": [_run("trl", 0, 1000, 700), _run("trl", 1, 900, 720), _run("trl", 2, 1300, 710)],
            "ours-stock": [_run("ours-stock", 0, 1500, 690), _run("ours-stock", 1, 1200, 650),
                           _run("ours-stock", 2, 1100, 640)]}


STAGE = dict(name="sft-padded", kind="trained", rate="tokens_per_sec", flops_per_token_per_param=6,
             same_as_stock="no kernel option in this stage")


def test_medians_ratios_and_share_of_the_peak():
    s = summarize_stage(STAGE, _sft_runs(), peak_flops=200e9)
    trl, ours = s["sides"]["trl"], s["sides"]["ours-stock"]
    assert trl["tokens_per_sec"] == 1000 and trl["peak_rss_mb"] == 710  # medians of (1000, 900, 1300), (700, 720, 710)
    assert ours["tokens_per_sec"] == 1200 and ours["peak_rss_mb"] == 650
    assert ours["speed_vs_trl"] == pytest.approx(1.2) and ours["rss_vs_trl"] == pytest.approx(650 / 710)
    assert ours["share_of_fp32_peak"] == pytest.approx(6 * 1e6 * 1200 / 200e9)  # 3.6 %
    assert s["sides"]["ours-shipped"] == ours  # no kernel option: shipped reuses the stock runs
    assert s["tokens"] == ["trained", 40, 2000, "abc"]


def test_markdown_has_the_machine_every_side_and_the_failures():
    s = dict(summarize_stage(STAGE, _sft_runs(), peak_flops=200e9), missing={})
    report = dict(environment=dict(date="2026-12-01", cpu="AMD EPYC", cpu_count=2, torch_threads=2,
                                   cpu_flags={"avx512_bf16": True, "amx_tile": False}),
                  peak_gemm={2: dict(fp32_stock=200.0, fp32_onednn=220.0, bf16=430.0)},
                  onednn_auto=dict(used=True, speedup=1.26),
                  stages=[s, dict(name="ppo", error="FAILED: TokenMismatch: ppo: ...")], notes=["a note"])
    text = markdown(report)
    assert "AMD EPYC" in text and "avx512_bf16 yes" in text and "amx_tile no" in text
    assert "fp32 stock 200" in text and "would choose oneDNN" in text
    assert "| sft-padded | ours-stock | stock | 1200.00 tok/s | 1200 | 650 | 1.20 | 0.92 | 4% | 3 |" in text
    assert "| sft-padded | ours-shipped | = stock (no kernel option in this stage) |" in text
    assert "**FAILED: TokenMismatch: ppo: ...**" in text and text.endswith("a note\n")


def test_the_identical_tokens_assertion_fires_on_a_mismatch():
    runs = _sft_runs()
    other = dict(TRAINED, trained=dict(sequences=40, tokens=2001, sha256="abd"))
    runs["ours-stock"][1] = _run("ours-stock", 1, 1200, 650, fingerprint=other)
    with pytest.raises(TokenMismatch, match=r"sft-padded: ours-stock run 1 processed \(40, 2001, 'abd'\)"):
        summarize_stage(STAGE, runs, peak_flops=200e9)


def test_generation_stages_compare_prompts_and_generated_tokens():
    fp = dict(TRAINED, prompts=dict(sequences=96, tokens=1800, sha256="p1"), generated_tokens=1536)
    runs = [_run("trl", 0, 1, 1, fingerprint=fp), _run("ours-stock", 0, 1, 1, fingerprint=dict(fp))]
    assert assert_identical_tokens("grpo", runs, "generation") == ("generation", 96, 1800, "p1", 1536)
    runs[1]["fingerprint"] = dict(fp, generated_tokens=1535)
    with pytest.raises(TokenMismatch, match="grpo"):
        assert_identical_tokens("grpo", runs, "generation")
    with pytest.raises(TokenMismatch, match="no token fingerprint"):
        assert_identical_tokens("grpo", [dict(side="trl", repeat=0)], "generation")
    empty = dict(TRAINED, trained=dict(sequences=0, tokens=0, sha256="e3"))
    with pytest.raises(TokenMismatch, match="fed no trained sequences"):
        assert_identical_tokens("sft", [_run("trl", 0, 1, 1, fingerprint=empty)], "trained")


def test_the_runner_refuses_fewer_than_three_runs_and_unknown_stages():
    with pytest.raises(SystemExit):
        run_all.main(["--repeat", "2"])
    with pytest.raises(SystemExit):
        run_all.main(["--stages", "sft-padded,kto"])
    assert set(run_all.STAGES) == {"sft-padded", "sft-packed", "reward", "dpo-live", "dpo-precomputed", "grpo",
                                   "rloo", "ppo"}
