"""Parity with TRL's ``DPOTrainer`` (a dev/bench dependency, never a runtime one).

Same tiny Llama folder, same pairs (both sides tokenise to identical ids, checked first), same batch
order (TRL's sampler made sequential, ours unshuffled), plain SGD with a constant LR, no gradient
clipping, no dropout, fp32. The per-step loss trajectory over 12 steps must agree within
``rtol=1e-4, atol=1e-5``: only float summation order differs (TRL projects target positions through
the LM head in tiles, we in one chunk; TRL puts chosen rows before rejected ones, we interleave).

Loss pairs compared (ours ↔ TRL ``loss_type``): ``sigmoid`` ↔ ``sigmoid``; ``robust`` ↔ ``robust``
(ε = 0.1); ``ipo`` ↔ ``ipo``; ``hinge`` ↔ ``hinge``; ``rpo`` with ``nll_reduction="tokens"`` ↔
``["sigmoid", "sft"]`` with weights ``[1, 0.5]``; sigmoid with a LoRA policy and the adapter-disabled
reference; sigmoid with precomputed reference log-probs. cDPO, SimPO and ORPO have no DPOTrainer
counterpart in TRL 1.16 (its ``sigmoid`` ignores ``label_smoothing``) and are tested by hand-derived values.
"""

from __future__ import annotations

import pytest
import torch

from tests.parity.trl_import import import_trl

trl = import_trl()  # a skip where TRL is not installed, a failure when CI is set

from torch.utils.data import DataLoader, SequentialSampler  # noqa: E402

STEPS, BATCH, LR, BETA = 12, 2, 0.05, 0.5
RTOL, ATOL = 1e-4, 1e-5

PAIRS = [
    ("Explain gravity.", "Gravity pulls objects toward each other.", "Bonjour."),
    ("Say hello.", "Hello! How can I help you today?", "The moon."),
    ("Write a poem about spring.", "Spring wind brings flowers.", "Gravity pulls."),
    ("写一首关于春天的诗", "春风拂面，百花齐放。", "人工智能。"),
    ("Translate to French: good morning", "Bonjour.", "Hello world thank you answer question"),
    ("Explain the moon.", "The earth pulls the moon.", "Spring wind."),
]
ROWS = [PAIRS[i % len(PAIRS)] for i in range(STEPS * BATCH)]

CASES = {
    "sigmoid": ({"class_path": "SigmoidLoss", "beta": BETA}, {"loss_type": ["sigmoid"]}),
    "robust": ({"class_path": "RobustLoss", "beta": BETA, "label_smoothing": 0.1},
               {"loss_type": ["robust"], "label_smoothing": 0.1}),
    "ipo": ({"class_path": "IPOLoss", "beta": BETA}, {"loss_type": ["ipo"]}),
    "hinge": ({"class_path": "HingeLoss", "beta": BETA}, {"loss_type": ["hinge"]}),
    "rpo": ({"class_path": "RPOLoss", "beta": BETA, "alpha": 0.5, "nll_reduction": "tokens"},
            {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 0.5]}),
}


def _our_losses(model_dir, loss_cfg, *, lora=None, precompute=False):
    import lightning.pytorch as pl
    from transformers import AutoTokenizer

    from rlhf_lightning.data.comparison_batches import ComparisonCollator, encode_comparisons
    from rlhf_lightning.losses import preference
    from rlhf_lightning.models.spec import LoraSpec, ModelSpec
    from rlhf_lightning.modules.dpo import DPOModule

    tok = AutoTokenizer.from_pretrained(model_dir)
    rows, _ = encode_comparisons([{"prompt": p, "responses": [c, r]} for p, c, r in ROWS], tok, max_length=128)
    loader = DataLoader(rows, batch_size=BATCH, shuffle=False, collate_fn=ComparisonCollator(tok.pad_token_id))
    cfg = dict(loss_cfg)
    loss = getattr(preference, cfg.pop("class_path"))(**cfg)
    spec = ModelSpec(name_or_path=str(model_dir), lora=LoraSpec(**lora) if lora else None)

    class Recording(DPOModule):
        losses: list = []

        def training_step(self, batch, batch_idx):
            out = super().training_step(batch, batch_idx)
            self.losses.append(out.item())
            return out

    module = Recording(spec, loss=loss, precompute_reference=precompute,
                       optimizer=lambda p: torch.optim.SGD(p, lr=LR))
    module.losses = []
    module.configure_model()

    class DM(pl.LightningDataModule):
        def train_dataloader(self):
            return loader

    trainer = pl.Trainer(accelerator="cpu", max_steps=STEPS, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, datamodule=DM())
    return module, rows


def _trl_losses(model_dir, trl_cfg, tmp_path, *, lora=None, precompute=False, adapter_from=None):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    tok = AutoTokenizer.from_pretrained(model_dir)
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": p}],
                               "chosen": [{"role": "assistant", "content": c}],
                               "rejected": [{"role": "assistant", "content": r}]} for p, c, r in ROWS])
    args = DPOConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=BATCH, max_steps=STEPS,
                     learning_rate=LR, optim="sgd", lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
                     max_grad_norm=0.0, beta=BETA, bf16=False, fp16=False, gradient_checkpointing=False,
                     use_cpu=True, report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True,
                     max_length=128, precompute_ref_log_probs=precompute, dataloader_num_workers=0, seed=0,
                     **trl_cfg)
    peft_config = None
    if lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=0.0,
                                 target_modules="all-linear", task_type="CAUSAL_LM")
    recorded: list[float] = []

    class Recording(DPOTrainer):
        def _get_train_sampler(self, train_dataset=None):
            return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if self.model.training:
                recorded.append(loss.item())
            return loss

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    trainer = Recording(model=model, args=args, train_dataset=data, processing_class=tok, peft_config=peft_config)
    if adapter_from is not None:  # start from the same random LoRA init as ours
        ours = {k: v for k, v in adapter_from.named_parameters() if "lora_" in k}
        theirs = dict(trainer.model.named_parameters())
        assert set(ours) == {k for k in theirs if "lora_" in k}
        with torch.no_grad():
            for k, v in ours.items():
                theirs[k].copy_(v)
    trainer.train()
    return recorded, trainer.train_dataset


def _check_same_tokens(our_rows, trl_dataset):
    for row, ex in zip(our_rows, trl_dataset, strict=True):
        for k, key in enumerate(("chosen_ids", "rejected_ids")):
            ids, labels = row["responses"][k]["input_ids"], row["responses"][k]["labels"]
            start = next(i for i, lab in enumerate(labels) if lab != -100)
            assert ids[:start] == ex["prompt_ids"] and ids[start:] == ex[key]


@pytest.mark.parametrize("case", list(CASES))
def test_loss_trajectory_matches_trl(case, tiny_llama_dir, tmp_path):
    ours_cfg, trl_cfg = CASES[case]
    module, rows = _our_losses(tiny_llama_dir, ours_cfg)
    theirs, trl_data = _trl_losses(tiny_llama_dir, trl_cfg, tmp_path)
    _check_same_tokens(rows, trl_data)
    assert len(module.losses) == len(theirs) == STEPS
    assert max(module.losses) - min(module.losses) > 1e-2, "the trajectory must move to be a test"
    torch.testing.assert_close(torch.tensor(module.losses), torch.tensor(theirs), rtol=RTOL, atol=ATOL)


def test_lora_with_adapter_disabled_reference_matches_trl(tiny_llama_dir, tmp_path):
    lora = {"r": 4, "alpha": 8, "dropout": 0.0}
    torch.manual_seed(0)
    # our module's LoRA init is the starting point of both runs: copy it before training moves it
    from rlhf_lightning.models.loading import load_causal_lm
    from rlhf_lightning.models.spec import LoraSpec, ModelSpec

    init = load_causal_lm(ModelSpec(name_or_path=str(tiny_llama_dir), lora=LoraSpec(**lora)))
    torch.manual_seed(0)
    module, _ = _our_losses(tiny_llama_dir, CASES["sigmoid"][0], lora=lora)
    assert module.reference_model is None
    theirs, _ = _trl_losses(tiny_llama_dir, CASES["sigmoid"][1], tmp_path, lora=lora, adapter_from=init)
    assert max(module.losses) - min(module.losses) > 1e-2
    torch.testing.assert_close(torch.tensor(module.losses), torch.tensor(theirs), rtol=RTOL, atol=ATOL)


def test_precomputed_reference_matches_trl(tiny_llama_dir, tmp_path):
    module, _ = _our_losses(tiny_llama_dir, CASES["sigmoid"][0], precompute=True)
    assert module.reference_model is None and len(module.ref_cache) == len(PAIRS)
    theirs, _ = _trl_losses(tiny_llama_dir, CASES["sigmoid"][1], tmp_path, precompute=True)
    torch.testing.assert_close(torch.tensor(module.losses), torch.tensor(theirs), rtol=RTOL, atol=ATOL)
