"""SFT under other hardware settings, through the console script (DDP spawns processes itself)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from tests import tiny
from tests.cli.conftest import sft_config

EXE = str(Path(sys.executable).parent / "rlhf-lightning")


def _run(*args: str) -> subprocess.CompletedProcess:
    res = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    return res


def test_ddp_two_cpu_processes_trains_and_exports(tmp_path, tiny_llama_dir, sft_files):
    cfg = sft_config(tmp_path, tiny_llama_dir, sft_files, **{"trainer.max_steps": 3})
    _run("fit", "--config", str(cfg), "--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu")
    from transformers import AutoModelForCausalLM

    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "export")
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert state["global_step"] == 3
    assert torch.equal(exported.lm_head.weight, state["state_dict"]["model.lm_head.weight"])


def test_qlora_fit_then_predict_on_cpu(tmp_path, tiny_tokenizer_dir, sft_files):
    """QLoRA end to end: 4-bit base + LoRA trains, the adapter changes, and predict generates.

    A 64-wide model: bitsandbytes' CPU 4-bit kernels need layers at least one 64-element block wide.
    """
    from transformers import AutoTokenizer

    vocab = len(AutoTokenizer.from_pretrained(tiny_tokenizer_dir))
    model_dir = tiny.build_llama(tmp_path / "m64", vocab_size=vocab, hidden_size=64, tokenizer_dir=tiny_tokenizer_dir)
    cfg = sft_config(tmp_path, model_dir, sft_files, **{
        "trainer.max_steps": 3,
        "model.init_args.policy.lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "model.init_args.policy.quantization": {"load_in_4bit": True},
    })
    _run("fit", "--config", str(cfg))
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    lora_b = [v for k, v in state.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # B starts at zero: non-zero means it trained
    assert (tmp_path / "export" / "adapter_config.json").is_file()
    out = tmp_path / "pred.jsonl"
    _run("predict", "--config", str(cfg), "--predictions.output", str(out))
    assert len(out.read_text(encoding="utf-8").splitlines()) == 3
