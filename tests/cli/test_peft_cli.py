"""LoRA variants through the real CLI on the tiny model: DoRA DPO (the reference is the policy with its
adapter disabled) fits, its merged export gives the adapter model's logits, and a run killed after a
checkpoint resumes bit for bit; PiSSA SFT exports merged; bad LoRA/quantization options exit 2 at parse time.
"""

from __future__ import annotations

import pytest
import torch

from rlhf_lightning.cli import main
from tests.cli.conftest import sft_config
from tests.cli.test_dpo_cli import dpo_config, pref_files  # noqa: F401 - fixture
from tests.cli.test_resume_cli import ADAMW, kill_and_resume

POLICY = "model.init_args.policy"
DORA = {"r": 4, "alpha": 8, "dropout": 0.0, "use_dora": True}


def _adapter_and_merged_logits(export, base_dir):
    """Logits of the merged export and of the exported adapter re-applied to the base, on the same ids."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[1, 40, 41, 42, 43, 44, 45, 46], [1, 50, 60, 70, 80, 90, 100, 110]])
    merged = AutoModelForCausalLM.from_pretrained(export).eval()
    adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), export / "adapter").eval()
    with torch.no_grad():
        return merged(ids).logits, adapter(ids).logits, adapter


def test_dora_dpo_fit_exports_merged_equal_to_adapter(tmp_path, tiny_llama_dir, pref_files):  # noqa: F811
    cfg = dpo_config(tmp_path, tiny_llama_dir, pref_files, **{
        "trainer.max_steps": 4, "export.merge_lora": True, f"{POLICY}.lora": DORA,
        "model.init_args.optimizer": ADAMW})
    assert main(["fit", "--config", str(cfg)]) == 0

    import json

    export = tmp_path / "export"
    config = json.loads((export / "adapter" / "adapter_config.json").read_text(encoding="utf-8"))
    assert config["use_dora"] is True
    merged, adapter, model = _adapter_and_merged_logits(export, tiny_llama_dir)
    # The DoRA magnitudes were trained (they start at the base weights' column norms).
    magnitudes = {n: p for n, p in model.named_parameters() if "lora_magnitude_vector" in n}
    assert magnitudes
    base = model.get_base_model()
    q = base.model.layers[0].self_attn.q_proj
    assert not torch.allclose(q.lora_magnitude_vector["default"].weight,
                              torch.linalg.norm(q.base_layer.weight, dim=1))
    assert torch.allclose(merged, adapter, atol=1e-5), (merged - adapter).abs().max()
    with model.disable_adapter(), torch.no_grad():  # and the adapter does change the model
        plain = model(torch.tensor([[1, 40, 41, 42, 43, 44, 45, 46], [1, 50, 60, 70, 80, 90, 100, 110]])).logits
    assert not torch.allclose(plain, adapter, atol=1e-4)


def test_dora_dpo_resumes_exactly(tmp_path, tiny_llama_dir, pref_files):  # noqa: F811
    def config(root, callbacks):
        return dpo_config(root, tiny_llama_dir, pref_files, **{
            "trainer.max_steps": 4, "trainer.val_check_interval": None, "trainer.callbacks": callbacks,
            "export.enabled": False, "data.init_args.batch_size": 4, "model.init_args.optimizer": ADAMW,
            f"{POLICY}.lora": DORA})

    killed, full = kill_and_resume(tmp_path, config, every=2, kill_at=2)
    assert any("lora_magnitude_vector" in k for k in full["state_dict"])


def test_pissa_sft_exports_merged_only(tmp_path, tiny_llama_dir, sft_files):
    lora = {"r": 4, "alpha": 4, "dropout": 0.0, "init_weights": "pissa"}
    cfg = sft_config(tmp_path, tiny_llama_dir, sft_files, **{
        "trainer.max_steps": 3, f"{POLICY}.lora": lora, "export.merge_lora": True})
    assert main(["fit", "--config", str(cfg)]) == 0
    export = tmp_path / "export"
    assert (export / "config.json").is_file() and not (export / "adapter").exists()

    # Unmerged, the adapter would only fit this run's residual base: refused before training.
    root = tmp_path / "unmerged"
    root.mkdir()
    cfg = sft_config(root, tiny_llama_dir, sft_files, **{"trainer.max_steps": 3, f"{POLICY}.lora": lora})
    assert main(["fit", "--config", str(cfg)]) == 2
    assert not (root / "checkpoints").exists()


def test_pissa_dpo_without_reference_is_refused(tmp_path, tiny_llama_dir, pref_files, capsys):  # noqa: F811
    cfg = dpo_config(tmp_path, tiny_llama_dir, pref_files, **{
        "trainer.max_steps": 2, "export.merge_lora": True,
        f"{POLICY}.lora": {"r": 4, "dropout": 0.0, "init_weights": "olora"}})
    assert main(["fit", "--config", str(cfg)]) == 2
    assert "cannot be the reference; give the stage a separate `reference:` model" in capsys.readouterr().err


@pytest.mark.parametrize("overrides, path, words", [
    ({f"{POLICY}.lora": {"init_weights": "loftq"}}, f"{POLICY}.lora.init_weights", "must be true, gaussian"),
    ({f"{POLICY}.lora": {"init_weights": "pissa_niter_0"}}, f"{POLICY}.lora.init_weights", "pissa_niter_<N>"),
    ({f"{POLICY}.lora": {"use_dora": True, "init_weights": "pissa"}}, f"{POLICY}.lora.init_weights",
     "not combined with use_dora"),
    ({f"{POLICY}.lora": {"r": 0}}, f"{POLICY}.lora.r", "> 0"),
    ({f"{POLICY}.lora": {"dropout": 1.0}}, f"{POLICY}.lora.dropout", "[0.0, 1.0)"),
    ({f"{POLICY}.lora": {"r": 4}, f"{POLICY}.quantization": {"load_in_8bit": True, "load_in_4bit": True}},
     f"{POLICY}.quantization.load_in_8bit", "cannot be combined with load_in_4bit"),
    ({f"{POLICY}.lora": {"init_weights": "olora"}, f"{POLICY}.quantization": {"load_in_4bit": True}},
     f"{POLICY}.lora.init_weights", "a quantized base cannot hold"),
])
def test_bad_peft_options_exit_2_at_parse_time(tmp_path, sft_files, capsys, overrides, path, words):
    cfg = sft_config(tmp_path, tmp_path / "no-model", sft_files, **overrides)  # nothing is loaded
    assert main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: " in err and words in err, err


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU error; the GPU path is tested in tests/models")
def test_8bit_on_cpu_names_the_option(tmp_path, tiny_llama_dir, sft_files, capsys):
    cfg = sft_config(tmp_path, tiny_llama_dir, sft_files, **{
        f"{POLICY}.lora": {"r": 4}, f"{POLICY}.quantization": {"load_in_8bit": True}})
    assert main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "quantization.load_in_8bit: 8-bit bitsandbytes loading needs a CUDA GPU" in err, err
