"""DPOModule on a tiny Llama: reference handling, one-forward log-probs, precomputed reference, metrics."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from rlhf_lightning.data.comparison_batches import ComparisonCollator, encode_comparisons
from rlhf_lightning.losses.base import PreferenceLoss
from rlhf_lightning.losses.preference import SigmoidLoss, SimPOLoss
from rlhf_lightning.models.spec import LoraSpec, ModelSpec
from rlhf_lightning.modules.dpo import DPOModule

PAIRS = [
    ("Explain gravity.", "Gravity pulls objects toward each other.", "Bonjour."),
    ("Say hello.", "Hello! How can I help you today?", "The moon."),
    ("Write a poem about spring.", "Spring wind brings flowers.", "Gravity pulls."),
    ("Translate to French: good morning", "Bonjour.", "Hello world thank you answer question"),
]


@pytest.fixture(scope="module")
def pairs_loader(tiny_llama_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    comps = [{"prompt": p, "responses": [c, r]} for p, c, r in PAIRS]
    rows, _ = encode_comparisons(comps, tok, max_length=64)
    return DataLoader(rows, batch_size=2, shuffle=False, collate_fn=ComparisonCollator(tok.pad_token_id))


def _module(model_dir, **kwargs):
    module = DPOModule(ModelSpec(name_or_path=str(model_dir)), optimizer=lambda p: torch.optim.SGD(p, lr=0.5),
                       **kwargs)
    module.configure_model()
    return module


def _fit(module, loader, steps=3):
    trainer = pl.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(module, train_dataloaders=loader, val_dataloaders=loader)
    return trainer


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_initial_loss_is_ln2_and_one_forward_layout(tiny_llama_dir, pairs_loader):
    """Policy == reference at step 0, so every pair's sigmoid loss is ln 2 and rewards are 0."""
    module = _module(tiny_llama_dir)
    batch = next(iter(pairs_loader))
    sums, counts = module.sequence_logps(module.model, batch)
    assert sums.shape == (4,) and (counts > 0).all()
    ref_c, ref_r = module._reference_logps(batch)
    torch.testing.assert_close(ref_c, sums[0::2])
    torch.testing.assert_close(ref_r, sums[1::2])
    losses, metrics = module.loss_fn(sums[0::2], sums[1::2], ref_c, ref_r, counts[0::2], counts[1::2])
    torch.testing.assert_close(losses, torch.full((2,), math.log(2)))
    assert metrics["rewards/chosen"].abs().max() == 0


def test_targets_only_head_equals_full_logits(tiny_llama_dir, pairs_loader):
    batch = next(iter(pairs_loader))
    fused = _module(tiny_llama_dir)
    full = _module(tiny_llama_dir, targets_only_head=False)
    a, na = fused.sequence_logps(fused.model, batch)
    b, nb = full.sequence_logps(full.model, batch)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
    assert na.tolist() == nb.tolist()
    # and with the naive log_softmax of the model's own logits
    logits = full.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logp = logits[:, :-1].log_softmax(-1)
    tgt = batch["labels"][:, 1:]
    naive = (logp.gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1) * (tgt != -100)).sum(-1)
    torch.testing.assert_close(a, naive, rtol=1e-5, atol=1e-4)


def test_frozen_copy_reference_does_not_move(tiny_llama_dir, pairs_loader):
    module = _module(tiny_llama_dir)
    ref_before, pol_before = _snapshot(module.reference_model), _snapshot(module.model)
    _fit(module, pairs_loader, steps=3)
    assert module.reference_calls >= 3
    for k, v in module.reference_model.state_dict().items():
        assert torch.equal(v, ref_before[k]), k
    assert any(not torch.equal(v, pol_before[k]) for k, v in module.model.state_dict().items())
    assert not any(p.requires_grad for p in module.reference_model.parameters())
    assert not module.reference_model.training


def test_lora_reference_is_the_base_model_without_a_copy(tiny_llama_dir, pairs_loader):
    spec = ModelSpec(name_or_path=str(tiny_llama_dir), lora=LoraSpec(r=4, alpha=8, dropout=0.0))
    module = DPOModule(spec, optimizer=lambda p: torch.optim.SGD(p, lr=0.5))
    module.configure_model()
    assert module.reference_model is None
    _fit(module, pairs_loader, steps=3)
    batch = next(iter(pairs_loader))
    ref_c, ref_r = module._reference_logps(batch)
    base = _module(tiny_llama_dir, targets_only_head=False)
    sums, _ = base.sequence_logps(base.model.eval(), batch)
    torch.testing.assert_close(ref_c, sums[0::2], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(ref_r, sums[1::2], rtol=1e-5, atol=1e-4)
    pol, _ = module.sequence_logps(module.model, batch)
    assert not torch.allclose(pol[0::2], ref_c)  # the adapter did train
    assert module.model.training  # the reference pass restored train mode


class CountingReferenceFree(SimPOLoss):
    def __call__(self, chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, *args, **kwargs):
        assert ref_chosen_logps is None and ref_rejected_logps is None
        return super().__call__(chosen_logps, rejected_logps, None, None, *args, **kwargs)


def test_reference_free_loss_never_runs_a_reference(tiny_llama_dir, pairs_loader):
    module = _module(tiny_llama_dir, loss=CountingReferenceFree(), precompute_reference=True)
    assert module.reference_model is None
    _fit(module, pairs_loader, steps=2)
    assert module.reference_calls == 0 and not module.ref_cache


@pytest.mark.parametrize("lora", [False, True])
def test_precomputed_reference_equals_on_the_fly(tiny_llama_dir, pairs_loader, lora):
    spec = ModelSpec(name_or_path=str(tiny_llama_dir), lora=LoraSpec(r=4, dropout=0.0) if lora else None)
    live = DPOModule(spec)
    live.configure_model()
    cached = DPOModule(spec, precompute_reference=True)
    cached.configure_model()
    assert cached.reference_model is None  # no copy: the untouched policy (or disabled adapter) is the reference
    assert cached.fill_reference_cache([pairs_loader]) == len(PAIRS)
    calls = cached.reference_calls
    for batch in pairs_loader:
        a = live._reference_logps(batch)
        b = cached._reference_logps(batch)
        torch.testing.assert_close(a[0], b[0])
        torch.testing.assert_close(a[1], b[1])
    assert cached.reference_calls == calls  # served from the cache


def test_precompute_in_fit_and_checkpoint_round_trip(tiny_llama_dir, pairs_loader, tmp_path):
    class DM(pl.LightningDataModule):
        def train_dataloader(self):
            return pairs_loader

        def val_dataloader(self):
            return pairs_loader

    module = _module(tiny_llama_dir, precompute_reference=True)
    trainer = pl.Trainer(accelerator="cpu", max_steps=4, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=DM())
    assert len(module.ref_cache) == len(PAIRS) and module.reference_calls == 2  # one pass, 2 batches
    ckpt = tmp_path / "x.ckpt"
    trainer.save_checkpoint(ckpt)
    state = torch.load(ckpt, weights_only=False)
    assert not any(k.startswith("reference_model.") for k in state["state_dict"])
    fresh = _module(tiny_llama_dir, precompute_reference=True)
    fresh.on_load_checkpoint(state)
    assert fresh.ref_cache == module.ref_cache


def test_copy_reference_not_saved_but_restored(tiny_llama_dir, pairs_loader, tmp_path):
    module = _module(tiny_llama_dir)
    trainer = _fit(module, pairs_loader, steps=2)
    ckpt = tmp_path / "y.ckpt"
    trainer.save_checkpoint(ckpt)
    state = torch.load(ckpt, weights_only=False)["state_dict"]
    assert not any(k.startswith("reference_model.") for k in state)
    assert any(k.startswith("model.") for k in state)


def test_non_pairwise_batch_is_refused(tiny_llama_dir, pairs_loader):
    module = _module(tiny_llama_dir)
    batch = dict(next(iter(pairs_loader)))
    batch["response_mask"] = torch.ones(1, 4, dtype=torch.bool)
    from rlhf_lightning.errors import DataError

    with pytest.raises(DataError, match="pairwise"):
        module._shared_step(batch, "train")


def test_loss_must_be_a_preference_loss(tiny_llama_dir):
    from rlhf_lightning.errors import ConfigError

    with pytest.raises(ConfigError):
        DPOModule(ModelSpec(name_or_path=str(tiny_llama_dir)), loss=object())
    assert isinstance(DPOModule(ModelSpec(name_or_path="x")).loss_fn, SigmoidLoss)
    assert isinstance(SigmoidLoss(), PreferenceLoss)
