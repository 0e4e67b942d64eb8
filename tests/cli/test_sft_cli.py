"""SFT end to end through the real CLI entry point (``rlhf_lightning.cli.main``) on a tiny model."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rlhf_lightning.cli import main
from tests.cli.conftest import sft_config


def _losses(root: Path) -> list[float]:
    metrics = next(root.glob("lightning_logs/version_*/metrics.csv"))
    with open(metrics, encoding="utf-8") as f:
        return [float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]


def test_fit_trains_checkpoints_and_exports(tmp_path, tiny_llama_dir, sft_files):
    cfg = sft_config(tmp_path, tiny_llama_dir, sft_files)
    assert main(["fit", "--config", str(cfg)]) == 0

    losses = _losses(tmp_path)
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5, losses  # the loss falls clearly
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert next(tmp_path.glob("lightning_logs/version_*/config.yaml")).is_file()  # resolved config saved

    from transformers import AutoModelForCausalLM, AutoTokenizer

    export = tmp_path / "export"
    model = AutoModelForCausalLM.from_pretrained(export)
    tok = AutoTokenizer.from_pretrained(export)
    assert tok.chat_template  # the chat template travels with the export
    ids = tok.apply_chat_template([{"role": "user", "content": "Explain gravity."}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]

    # The exported weights are the trained ones: identical to the final checkpoint's.
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    w = state["model.model.embed_tokens.weight"]
    assert torch.equal(model.model.embed_tokens.weight, w)


def test_predict_writes_jsonl(tmp_path, tiny_llama_dir, sft_files):
    cfg = sft_config(tmp_path, tiny_llama_dir, sft_files)
    out = tmp_path / "pred.jsonl"
    assert main(["predict", "--config", str(cfg), "--predictions.output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == [0, 1, 2]
    assert rows[0]["prompt"] == "写一首关于春天的诗"
    assert all(isinstance(r["completion"], str) for r in rows)


def test_export_command_from_checkpoint(tmp_path, tiny_llama_dir, sft_files):
    cfg = sft_config(tmp_path, tiny_llama_dir, sft_files, **{"trainer.max_steps": 2, "export.enabled": False})
    assert main(["fit", "--config", str(cfg)]) == 0
    assert not (tmp_path / "export").exists()
    out = tmp_path / "from_ckpt"
    assert main(["export", "--config", str(cfg), "--ckpt_path", str(tmp_path / "checkpoints" / "last.ckpt"),
                 "--output", str(out)]) == 0
    from transformers import AutoModelForCausalLM

    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    model = AutoModelForCausalLM.from_pretrained(out)
    assert torch.equal(model.lm_head.weight, state["model.lm_head.weight"])


def test_lora_fit_exports_adapter_and_merged(tmp_path, tiny_llama_dir, sft_files):
    cfg = sft_config(tmp_path, tiny_llama_dir, sft_files, **{
        "trainer.max_steps": 3, "export.merge_lora": True,
        "model.init_args.policy.lora": {"r": 4, "alpha": 8, "dropout": 0.0},
    })
    assert main(["fit", "--config", str(cfg)]) == 0
    export = tmp_path / "export"
    assert (export / "adapter" / "adapter_config.json").is_file()
    assert (export / "config.json").is_file() and not (export / "adapter_config.json").exists()


def test_console_script_runs_in_a_fresh_process(tmp_path, tiny_llama_dir, sft_files):
    cfg = sft_config(tmp_path, tiny_llama_dir, sft_files, **{"trainer.max_steps": 1, "export.enabled": False})
    exe = Path(sys.executable).parent / "rlhf-lightning"
    res = subprocess.run([str(exe), "fit", "--config", str(cfg)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]


@pytest.mark.parametrize("packing", [False, True])
def test_packing_and_completion_only_both_train(tmp_path, tiny_llama_dir, sft_files, packing):
    cfg = sft_config(tmp_path, tiny_llama_dir, sft_files, **{
        "trainer.max_steps": 6, "data.init_args.packing": packing, "data.init_args.max_length": 128,
    })
    assert main(["fit", "--config", str(cfg)]) == 0
    losses = _losses(tmp_path)
    assert losses[-1] < losses[0]


def test_resume_with_ckpt_path_last(tmp_path, tiny_llama_dir, sft_files):
    """Resuming loads the checkpoint with torch's weights_only loader: the saved options must be allowed."""
    cfg = sft_config(tmp_path, tiny_llama_dir, sft_files, **{"trainer.max_steps": 2, "export.enabled": False})
    assert main(["fit", "--config", str(cfg)]) == 0
    assert main(["fit", "--config", str(cfg), "--trainer.max_steps=4", "--ckpt_path=last"]) == 0
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 4
