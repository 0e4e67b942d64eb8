"""Exports load with plain transformers / peft, reproduce the logits, and are atomic."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlhf_lightning.errors import DiskFullError, ExportError
from rlhf_lightning.models.export import atomic_directory, export_pretrained
from rlhf_lightning.models.loading import load_causal_lm, load_tokenizer
from rlhf_lightning.models.spec import LoraSpec, ModelSpec, QuantizationSpec
from tests import tiny
from tests.disk_full import make_disk_full

IDS = torch.tensor([[5, 17, 42, 99, 7, 3], [8, 8, 120, 64, 1, 2]])


def _logits(model) -> torch.Tensor:
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(input_ids=IDS).logits
    model.train(was_training)
    return out


def _perturb_lora(model) -> None:
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.5)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_plain_export_loads_without_this_package(tiny_llama_dir, tmp_path):
    tok = load_tokenizer(str(tiny_llama_dir))
    model = load_causal_lm(ModelSpec(name_or_path=str(tiny_llama_dir)), tokenizer=tok)
    out = export_pretrained(model, tok, tmp_path / "sft")
    files = set(os.listdir(out))
    assert {"model.safetensors", "config.json", "generation_config.json", "chat_template.jinja",
            "tokenizer.json", "tokenizer_config.json"} <= files
    assert not _leftovers(tmp_path)

    reloaded = AutoModelForCausalLM.from_pretrained(out)
    torch.testing.assert_close(_logits(reloaded), _logits(model), rtol=0, atol=0)
    reloaded_tok = AutoTokenizer.from_pretrained(out)
    assert reloaded_tok.chat_template == tok.chat_template
    prompt = reloaded_tok.apply_chat_template([{"role": "user", "content": "hello"}],
                                              add_generation_prompt=True, return_tensors="pt", return_dict=True)
    generated = reloaded.generate(**prompt, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] > prompt["input_ids"].shape[1]


def test_lora_adapter_export_loads_with_peft(tiny_llama_dir, tmp_path):
    from peft import PeftModel

    tok = load_tokenizer(str(tiny_llama_dir))
    policy = load_causal_lm(ModelSpec(name_or_path=str(tiny_llama_dir), lora=LoraSpec(r=2, dropout=0.0)))
    _perturb_lora(policy)
    out = export_pretrained(policy, tok, tmp_path / "adapter_only")
    files = set(os.listdir(out))
    assert {"adapter_config.json", "adapter_model.safetensors", "chat_template.jinja"} <= files
    assert "model.safetensors" not in files

    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    reloaded = PeftModel.from_pretrained(base, out)
    torch.testing.assert_close(_logits(reloaded), _logits(policy))


def test_merged_export_is_a_plain_model_with_the_same_logits(tiny_llama_dir, tmp_path):
    tok = load_tokenizer(str(tiny_llama_dir))
    policy = load_causal_lm(ModelSpec(name_or_path=str(tiny_llama_dir), lora=LoraSpec(r=2, dropout=0.0)))
    _perturb_lora(policy)
    state = {k: v.clone() for k, v in policy.state_dict().items()}
    out = export_pretrained(policy, tok, tmp_path / "merged", merge_lora=True)

    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(os.listdir(out / "adapter"))
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(_logits(merged), _logits(policy), rtol=1e-5, atol=1e-5)
    assert all(torch.equal(v, policy.state_dict()[k]) for k, v in state.items())  # training model untouched
    assert policy.training


def test_qlora_merge_uses_full_precision_base(tiny_tokenizer_dir, tmp_path):
    from peft import PeftModel

    vocab = len(AutoTokenizer.from_pretrained(tiny_tokenizer_dir))
    base_dir = tiny.build_llama(tmp_path / "base64", vocab_size=vocab, hidden_size=64, tokenizer_dir=tiny_tokenizer_dir)
    spec = ModelSpec(name_or_path=str(base_dir), lora=LoraSpec(r=2, dropout=0.0), quantization=QuantizationSpec())
    tok = load_tokenizer(spec)
    policy = load_causal_lm(spec, tokenizer=tok)
    _perturb_lora(policy)

    with pytest.raises(ExportError, match="base_spec"):
        export_pretrained(policy, tok, tmp_path / "qmerged", merge_lora=True)
    assert not (tmp_path / "qmerged").exists() and not _leftovers(tmp_path)

    out = export_pretrained(policy, tok, tmp_path / "qmerged", merge_lora=True, base_spec=spec)
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert getattr(merged.config, "quantization_config", None) is None
    assert merged.model.layers[0].self_attn.q_proj.weight.dtype == torch.float32
    # Expected: the fp32 base with the same adapter applied, as peft itself would run it.
    expected = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), out / "adapter")
    torch.testing.assert_close(_logits(merged), _logits(expected), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(_logits(merged), _logits(AutoModelForCausalLM.from_pretrained(base_dir)))


def test_failed_export_keeps_previous_export_byte_identical(tiny_llama_dir, tmp_path, monkeypatch):
    tok = load_tokenizer(str(tiny_llama_dir))
    model = load_causal_lm(ModelSpec(name_or_path=str(tiny_llama_dir)))
    out = export_pretrained(model, tok, tmp_path / "export")
    before = _snapshot(out)

    def broken_save(save_directory, *args, **kwargs):
        Path(save_directory, "model.safetensors").write_bytes(b"half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(model, "save_pretrained", broken_save)
    with pytest.raises(ExportError, match="disk full") as info:
        export_pretrained(model, tok, out)
    assert str(out) in str(info.value)
    assert _snapshot(out) == before
    assert not _leftovers(tmp_path)


def test_atomic_directory_replaces_old_contents_only_on_success(tmp_path):
    target = tmp_path / "artifact"
    with atomic_directory(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".artifact.tmp-")
        (tmp / "a.txt").write_text("one")
    with pytest.raises(ExportError, match="artifact"):
        with atomic_directory(target) as tmp:
            (tmp / "b.txt").write_text("two")
            raise ValueError("boom")
    assert sorted(os.listdir(target)) == [".rlhf-lightning-export", "a.txt"]
    with atomic_directory(target) as tmp:
        (tmp / "b.txt").write_text("two")
    assert sorted(os.listdir(target)) == [".rlhf-lightning-export", "b.txt"] and not _leftovers(tmp_path)


def test_atomic_directory_refuses_to_replace_a_file(tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"keep me")
    with pytest.raises(ExportError, match="not a folder"):
        with atomic_directory(target) as tmp:
            (tmp / "x").write_text("x")
    assert target.read_bytes() == b"keep me" and not _leftovers(tmp_path)


def test_atomic_directory_deletes_leftovers_of_killed_exports(tmp_path):
    from tests.test_atomic_paths import _dead_pid

    killed = tmp_path / f".artifact.tmp-{_dead_pid()}-x"
    killed.mkdir()
    (killed / "model.safetensors").write_bytes(b"half")
    with atomic_directory(tmp_path / "artifact") as tmp:
        (tmp / "a.txt").write_text("one")
    assert sorted(os.listdir(tmp_path)) == ["artifact"]


def test_export_into_a_folder_of_user_files_is_refused_and_deletes_nothing(tiny_llama_dir, tmp_path):
    tok = load_tokenizer(str(tiny_llama_dir))
    model = load_causal_lm(ModelSpec(name_or_path=str(tiny_llama_dir)))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    with pytest.raises(ExportError, match=f"cannot write the export to {mine}: .*it holds notes.txt"):
        export_pretrained(model, tok, mine)
    assert _snapshot(tmp_path) == {"mine/notes.txt": b"my notes"}


def test_an_earlier_export_with_the_pipeline_s_state_is_replaced(tiny_llama_dir, tmp_path):
    tok = load_tokenizer(str(tiny_llama_dir))
    model = load_causal_lm(ModelSpec(name_or_path=str(tiny_llama_dir)))
    out = export_pretrained(model, tok, tmp_path / "export")
    assert (out / ".rlhf-lightning-export").is_file()
    (out / "pipeline_step.json").write_text('{"status": "done"}')  # what the pipeline adds when a step is done
    export_pretrained(model, tok, out)
    assert "pipeline_step.json" not in os.listdir(out) and (out / "model.safetensors").is_file()


@pytest.mark.parametrize("how", ["write", "fsync"])
def test_disk_full_during_export_keeps_the_previous_export(tiny_llama_dir, tmp_path, monkeypatch, how):
    """The Python-side writes hit ENOSPC after 1000 bytes (config.json and generation_config.json fit, the
    weights were written, chat_template.jinja is cut), or fsync reports it."""
    tok = load_tokenizer(str(tiny_llama_dir))
    model = load_causal_lm(ModelSpec(name_or_path=str(tiny_llama_dir)))
    out = export_pretrained(model, tok, tmp_path / "export")
    before = _snapshot(out)
    make_disk_full(how, monkeypatch, tmp_path, budget=1000)
    with pytest.raises(DiskFullError, match=f"the disk is full .* while writing the export {out}: the partial "
                                            "folder was removed and any earlier export at that path is unchanged"):
        export_pretrained(model, tok, out)
    monkeypatch.undo()
    assert _snapshot(out) == before and not _leftovers(tmp_path)
