"""The frozen reference of DPO and PPO (models/reference.py): how it is built, run and checkpointed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rlhf_lightning.errors import ConfigError
from rlhf_lightning.models.reference import (
    build_reference,
    drop_reference_weights,
    freeze_reference,
    reference_forward,
    restore_reference_weights,
)
from rlhf_lightning.models.spec import LoraSpec, ModelSpec


def policy(model_dir, lora=None, dropout=0.0):
    from rlhf_lightning.models.loading import load_causal_lm

    spec = ModelSpec(name_or_path=str(model_dir), lora=lora)
    model = load_causal_lm(spec)
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = dropout
    return model


def ids():
    return torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])


def test_copy_of_the_initial_policy_is_frozen_and_stays_put(tiny_llama_dir):
    model = policy(tiny_llama_dir)
    ref = build_reference(model, None, None)
    assert ref is not None and ref is not model and not ref.training
    assert not any(p.requires_grad for p in ref.parameters())
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # the policy moves; its copy does not
    assert not torch.equal(next(model.parameters()), next(ref.parameters()))
    with reference_forward(model, ref) as m:
        assert m is ref and not torch.is_grad_enabled()


def test_no_copy_when_the_caller_uses_the_policy_itself(tiny_llama_dir):
    model = policy(tiny_llama_dir, dropout=0.5)
    assert build_reference(model, None, None, copy_policy=False) is None
    model.train()
    with reference_forward(model, None) as m:
        assert m is model and not model.training  # eval mode: dropout 0.5 does not apply
        a, b = m(input_ids=ids()).logits, m(input_ids=ids()).logits
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert model.training  # restored


def test_lora_policy_is_its_own_reference_with_the_adapter_disabled(tiny_llama_dir):
    base = policy(tiny_llama_dir)
    model = policy(tiny_llama_dir, lora=LoraSpec(r=4, alpha=8, dropout=0.0))
    assert build_reference(model, None, None) is None  # no second copy of the weights
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.fill_(0.5)  # a trained adapter: the policy no longer equals its base
        expected = base(input_ids=ids()).logits
        assert not torch.allclose(model(input_ids=ids()).logits, expected)
    torch.set_grad_enabled(True)
    with reference_forward(model, None) as ref:
        got = ref(input_ids=ids()).logits
        assert not got.requires_grad
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert model.training


def test_separate_reference_is_loaded_frozen_and_a_bad_one_names_the_option(tiny_llama_dir):
    model = policy(tiny_llama_dir, lora=LoraSpec(r=4))
    ref = build_reference(model, ModelSpec(name_or_path=str(tiny_llama_dir)), None)
    assert ref is not None and not ref.training and not any(p.requires_grad for p in ref.parameters())
    bad = ModelSpec(name_or_path=str(tiny_llama_dir), lora=LoraSpec(r=4, target_modules=["nope"]))  # peft refuses
    with pytest.raises(ConfigError, match=r"model\.init_args\.reference\.lora: Target modules \{'nope'\}"):
        build_reference(model, bad, None)


def test_freeze_sets_every_dropout_to_zero():
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.3), nn.Sequential(nn.Dropout(0.1)))
    freeze_reference(net)
    assert [m.p for m in net.modules() if isinstance(m, nn.Dropout)] == [0.0, 0.0]
    assert not net.training and not any(p.requires_grad for p in net.parameters())


def test_checkpoint_drops_the_reference_and_refills_it_on_load():
    ref = nn.Linear(2, 1)
    state = {"model.w": torch.ones(1), "reference_model.weight": torch.zeros(1, 2), "ref_model.bias": torch.zeros(1)}
    drop_reference_weights(state, ref)
    assert list(state) == ["model.w"]  # today's prefix and PPO's old one

    checkpoint = {"state_dict": {"model.w": torch.ones(1), "ref_model.bias": torch.full((1,), 7.0)}}
    restore_reference_weights(checkpoint, ref)
    got = checkpoint["state_dict"]
    assert set(got) == {"model.w", "reference_model.weight", "reference_model.bias"}
    assert got["reference_model.bias"].item() == 7.0  # a stored (old-prefix) entry wins over the rebuilt one
    assert torch.equal(got["reference_model.weight"], ref.weight)
    restore_reference_weights({}, ref)  # a checkpoint without weights is left alone
