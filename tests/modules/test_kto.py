"""KTOModule on a tiny Llama: the DPO stage's reference handling, the forwards each step runs, the KL
reference point from mismatched pairs, and batches the stage refuses."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from rlhf_lightning.data.unpaired_batches import UnpairedCollator, encode_unpaired
from rlhf_lightning.errors import ConfigError, DataError
from rlhf_lightning.losses.kto import APOZeroUnpairedLoss, KTOLoss, kl_estimate, kto_loss
from rlhf_lightning.losses.preference import SigmoidLoss
from rlhf_lightning.models.spec import LoraSpec, ModelSpec
from rlhf_lightning.modules.kto import KTOModule

ROWS = [
    ("Explain gravity.", "Gravity pulls objects toward each other.", True),
    ("Say hello.", "The moon.", False),
    ("Write a poem about spring.", "Spring wind brings flowers.", True),
    ("Translate to French: good morning", "Hello world thank you answer question", False),
]


@pytest.fixture(scope="module")
def rows(tiny_llama_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    encoded, _ = encode_unpaired([{"prompt": p, "completion": c, "label": g} for p, c, g in ROWS], tok,
                                 max_length=64)
    return encoded, tok.pad_token_id


def _loader(rows, batch_size=4):
    encoded, pad = rows
    return DataLoader(encoded, batch_size=batch_size, shuffle=False, collate_fn=UnpairedCollator(pad))


def _module(model_dir, **kwargs):
    module = KTOModule(ModelSpec(name_or_path=str(model_dir)), optimizer=lambda p: torch.optim.SGD(p, lr=0.5),
                       **kwargs)
    module.configure_model()
    return module


def _fit(module, loader, steps=3):
    trainer = pl.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(module, train_dataloaders=loader)
    return trainer


def _count_backbone_rows(model) -> list:
    """Rows of every forward through ``model``'s decoder (the stage projects targets through the head itself)."""
    seen = []
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner.model.register_forward_hook(
        lambda mod, args, kwargs, out: seen.append((kwargs["input_ids"].shape[0], torch.is_grad_enabled())),
        with_kwargs=True)
    return seen


def test_a_step_is_the_kto_loss_of_the_policy_and_reference_log_probs(tiny_llama_dir, rows):
    """Recompute one batch's loss by hand from the two models' log-probs: matched rows give r, the
    mismatched rows (prompt i, completion i-1) give the KL estimate."""
    module = _module(tiny_llama_dir, loss=KTOLoss(beta=0.5))
    with torch.no_grad():  # move the policy away from the reference so r and the KL estimate are not 0
        for p in module.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    batch = next(iter(_loader(rows)))
    loss = module._shared_step(batch, "train")
    kl_batch = {k: batch[f"KL_{k}"] for k in ("input_ids", "attention_mask", "labels")}
    pol, _ = module.sequence_logps(module.model, batch)
    ref, _ = module.sequence_logps(module.reference_model, batch)
    pol_kl, _ = module.sequence_logps(module.model, kl_batch)
    ref_kl, _ = module.sequence_logps(module.reference_model, kl_batch)
    kl = kl_estimate(pol_kl, ref_kl)
    expected = kto_loss(pol - ref, batch["label"], kl, beta=0.5).mean()
    torch.testing.assert_close(loss, expected)
    assert kl.item() != 0.0


def test_reference_frozen_forwards_per_step_and_policy_moves(tiny_llama_dir, rows):
    module = _module(tiny_llama_dir)
    ref_before = {k: v.clone() for k, v in module.reference_model.state_dict().items()}
    pol_before = {k: v.clone() for k, v in module.model.state_dict().items()}
    policy_rows, ref_rows = _count_backbone_rows(module.model), _count_backbone_rows(module.reference_model)
    _fit(module, _loader(rows), steps=2)
    for k, v in module.reference_model.state_dict().items():
        assert torch.equal(v, ref_before[k]), k
    assert any(not torch.equal(v, pol_before[k]) for k, v in module.model.state_dict().items())
    # per step: the policy on the 4 rows with gradients, then on the 4 mismatched pairs without;
    # the reference once on all 8 rows, without gradients
    assert policy_rows == [(4, True), (4, False)] * 2
    assert ref_rows == [(8, False)] * 2 and module.reference_calls == 2


def test_apo_zero_runs_no_mismatched_pairs_and_accepts_one_row(tiny_llama_dir, rows):
    module = _module(tiny_llama_dir, loss=APOZeroUnpairedLoss())
    assert not module.needs_kl_pairs
    policy_rows, ref_rows = _count_backbone_rows(module.model), _count_backbone_rows(module.reference_model)
    _fit(module, _loader(rows, batch_size=1), steps=2)
    assert policy_rows == [(1, True)] * 2 and ref_rows == [(1, False)] * 2


def test_lora_reference_is_the_adapter_disabled_policy(tiny_llama_dir, rows):
    module = KTOModule(ModelSpec(name_or_path=str(tiny_llama_dir), lora=LoraSpec(r=4, alpha=8, dropout=0.0)),
                       optimizer=lambda p: torch.optim.SGD(p, lr=0.5))
    module.configure_model()
    assert module.reference_model is None
    _fit(module, _loader(rows), steps=2)
    assert module.reference_calls == 2


def test_one_row_batch_and_comparison_batches_are_refused(tiny_llama_dir, rows):
    module = _module(tiny_llama_dir)
    with pytest.raises(DataError, match="a KTO batch of one row has no mismatched prompt/completion pair"):
        module._shared_step(next(iter(_loader(rows, batch_size=1))), "train")
    batch = next(iter(_loader(rows)))
    with pytest.raises(DataError, match="KTO needs unpaired batches"):
        module._shared_step({k: v for k, v in batch.items() if k != "label"}, "train")


def test_a_paired_loss_is_refused(tiny_llama_dir):
    with pytest.raises(ConfigError, match="loss must be an UnpairedPreferenceLoss"):
        KTOModule(ModelSpec(name_or_path=str(tiny_llama_dir)), loss=SigmoidLoss())


def test_default_loss_and_hyperparameters(tiny_llama_dir):
    module = KTOModule(ModelSpec(name_or_path=str(tiny_llama_dir)))
    assert isinstance(module.loss_fn, KTOLoss) and module.loss_fn.beta == 0.1
    assert module.hparams["policy"].name_or_path == str(tiny_llama_dir)
    assert module.precompute_reference is False and module.needs_reference
