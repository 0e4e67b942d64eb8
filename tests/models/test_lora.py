"""LoRA helpers: config from a LoraSpec, the adapter-disabled reference pass, merging without side effects."""

from __future__ import annotations

import pytest
import torch

from rlhf_lightning.errors import ConfigError, ModelError
from rlhf_lightning.models.loading import load_causal_lm
from rlhf_lightning.models.lora import apply_lora, build_lora_config, disable_adapter, has_adapter, merged_copy
from rlhf_lightning.models.spec import LoraSpec, ModelSpec

IDS = torch.tensor([[5, 17, 42, 99, 7, 3], [8, 8, 120, 64, 1, 2]])


def _logits(model) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        out = model(input_ids=IDS).logits
    model.train()
    return out


def _perturb_lora(model, seed: int = 0) -> None:
    """Give LoRA B non-zero values (it starts at zero, which would make every adapter an identity)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.5)


def test_build_lora_config_maps_every_field():
    spec = LoraSpec(r=4, alpha=8, dropout=0.1, target_modules=["q_proj", "v_proj"], bias="lora_only",
                    modules_to_save=["lm_head"], use_rslora=True)
    cfg = build_lora_config(spec, "CAUSAL_LM")
    assert (cfg.r, cfg.lora_alpha, cfg.lora_dropout, cfg.bias, cfg.use_rslora) == (4, 8, 0.1, "lora_only", True)
    assert set(cfg.target_modules) == {"q_proj", "v_proj"} and cfg.modules_to_save == ["lm_head"]
    assert str(cfg.task_type).endswith("CAUSAL_LM")
    with pytest.raises(ConfigError, match="task_type"):
        build_lora_config(spec, "causal")


def test_apply_lora_freezes_base_and_refuses_nesting(tiny_llama_dir):
    model = load_causal_lm(ModelSpec(name_or_path=str(tiny_llama_dir)))
    peft_model = apply_lora(model, LoraSpec(r=2, target_modules=["q_proj"]), "CAUSAL_LM")
    assert has_adapter(peft_model) and not has_adapter(peft_model.get_base_model())
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and "q_proj" in n for n in trainable)
    with pytest.raises(ConfigError, match="already"):
        apply_lora(peft_model, LoraSpec(), "CAUSAL_LM")
    with pytest.raises(ConfigError, match=r"^lora: Target modules \{'no_such_module'\} not found"):
        apply_lora(load_causal_lm(ModelSpec(name_or_path=str(tiny_llama_dir))),
                   LoraSpec(target_modules=["no_such_module"]), "CAUSAL_LM")


def test_disable_adapter_gives_the_base_model_reference(tiny_llama_dir):
    base_logits = _logits(load_causal_lm(ModelSpec(name_or_path=str(tiny_llama_dir))))
    policy = load_causal_lm(ModelSpec(name_or_path=str(tiny_llama_dir), lora=LoraSpec(r=2, dropout=0.0)))
    _perturb_lora(policy)
    policy_logits = _logits(policy)
    assert not torch.allclose(policy_logits, base_logits)
    with disable_adapter(policy) as reference:
        torch.testing.assert_close(_logits(reference), base_logits)
    torch.testing.assert_close(_logits(policy), policy_logits)  # adapter back on afterwards


def test_disable_adapter_without_adapter_is_an_error(tiny_llama_dir):
    model = load_causal_lm(ModelSpec(name_or_path=str(tiny_llama_dir)))
    with pytest.raises(ModelError, match="no adapter"):
        with disable_adapter(model):
            pass


def test_merged_copy_matches_lora_and_leaves_it_untouched(tiny_llama_dir):
    policy = load_causal_lm(ModelSpec(name_or_path=str(tiny_llama_dir), lora=LoraSpec(r=2, dropout=0.0)))
    _perturb_lora(policy)
    state = {k: v.clone() for k, v in policy.state_dict().items()}
    merged = merged_copy(policy)
    assert not has_adapter(merged) and not any("lora_" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(_logits(merged), _logits(policy), rtol=1e-5, atol=1e-5)
    after = policy.state_dict()
    assert state.keys() == after.keys() and all(torch.equal(state[k], after[k]) for k in state)
    with pytest.raises(ModelError):
        merged_copy(merged)


def test_lora_variants_reach_peft():
    cfg = build_lora_config(LoraSpec(r=4, use_dora=True, use_rslora=True, init_weights="gaussian"), "CAUSAL_LM")
    assert (cfg.use_dora, cfg.use_rslora, cfg.init_lora_weights) == (True, True, "gaussian")
    assert build_lora_config(LoraSpec(init_weights="pissa_niter_4"), "CAUSAL_LM").init_lora_weights == "pissa_niter_4"


@pytest.mark.parametrize("kwargs", [dict(use_dora=True), dict(init_weights="orthogonal"), dict(init_weights="pissa"),
                                    dict(init_weights="olora")])
def test_variants_start_at_the_base_model_and_merge_exactly(tiny_llama_dir, kwargs):
    """Every variant starts as the base model (PiSSA/OLoRA by moving components out of the base); after the
    adapter changes, merging gives the adapter model's logits."""
    ids = torch.tensor([[1, 40, 41, 42, 43, 44], [1, 50, 60, 70, 80, 90]])
    base = load_causal_lm(ModelSpec(name_or_path=str(tiny_llama_dir))).eval()
    model = load_causal_lm(ModelSpec(name_or_path=str(tiny_llama_dir), lora=LoraSpec(r=4, dropout=0.0, **kwargs)))
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, base(ids).logits, atol=1e-4)
        _perturb_lora(model)
        adapted = model(ids).logits
        assert not torch.allclose(adapted, base(ids).logits, atol=1e-3)
        assert torch.allclose(merged_copy(model).eval()(ids).logits, adapted, atol=1e-5)


def test_base_changing_init_is_not_a_reference(tiny_llama_dir):
    model = load_causal_lm(ModelSpec(name_or_path=str(tiny_llama_dir),
                                     lora=LoraSpec(r=2, dropout=0.0, init_weights="pissa")))
    with pytest.raises(ConfigError, match="cannot be the reference"):
        with disable_adapter(model):
            pass
