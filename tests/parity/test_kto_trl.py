"""Parity with TRL 1.16's ``KTOTrainer`` (``trl.KTOTrainer``; ``trl.experimental.kto`` is a deprecated
alias of it in 1.16). TRL is a dev/bench dependency, never a runtime one.

Our side runs through :class:`~rlhf_lightning.datamodules.unpaired.UnpairedDataModule` with its
default options (shuffled order, seed 42, max_length 1024) and :class:`~rlhf_lightning.modules.kto.KTOModule`;
TRL's side through its own dataset handling (tokenisation, mismatched KL completions rotated within
each batch, sequential sampler: its default for KTO). Both get the same conversational rows
``{prompt: [user], completion: [assistant], label}``, TRL's in the order our sampler draws them in the
first epoch, so the batches are the same rows. Same tiny Llama folder, plain SGD with a constant LR,
no gradient clipping, no dropout, fp32; the tokens are checked identical first (prompt ids,
completion ids and each row's mismatched completion). The per-step losses over 12 optimizer steps
must agree within the DPO parity tolerances (``rtol=1e-4, atol=1e-5``).

Cases: ``kto`` (β = 0.5), ``kto`` with unequal weights (λ_D = 2, λ_U = 0.5), ``apo_zero_unpaired``,
and ``kto`` with a LoRA policy whose adapter-disabled model is the reference.

A tokenisation difference, noted rather than hidden (checked on the tiny tokenizer): for rows of
plain strings TRL does not apply the chat template; it tokenises ``prompt`` and ``prompt + completion
+ eos_token`` as text with the tokenizer's own special tokens (none for this tokenizer, so no BOS).
This project renders a string prompt as a user turn when the tokenizer has a chat template (as its
DPO and SFT stages do), and without one writes BOS + text + EOS: the same completion ids, but a BOS
in front of the prompt that TRL leaves out. Conversational rows are rendered identically by both, so
the test uses them.
"""

from __future__ import annotations

import json

import pytest
import torch

from tests.parity.trl_import import import_trl

trl = import_trl()  # a skip where TRL is not installed, a failure when CI is set

STEPS, BATCH, LR, BETA = 12, 4, 0.05, 0.5
RTOL, ATOL = 1e-4, 1e-5

PROMPTS = ["Explain gravity.", "Say hello.", "Write a poem about spring.", "写一首关于春天的诗",
           "Translate to French: good morning", "Explain the moon."]
GOOD = ["Gravity pulls objects toward each other.", "Hello! How can I help you today?", "Spring wind brings flowers.",
        "春风拂面，百花齐放。", "Bonjour.", "The earth pulls the moon."]
BAD = ["Bonjour.", "The moon.", "Gravity pulls.", "人工智能。", "Hello world thank you answer question", "Spring wind."]
# 48 rows: each prompt with its good answer (desirable) and a bad one (undesirable), four times over
ROWS = [{"prompt": [{"role": "user", "content": PROMPTS[i % 6]}],
         "completion": [{"role": "assistant", "content": (GOOD if k % 2 == 0 else BAD)[(i + k // 2) % 6]}],
         "label": k % 2 == 0}
        for k in range(4) for i in range(12)]

CASES = {
    "kto": ({"class_path": "KTOLoss", "beta": BETA}, {"loss_type": "kto"}),
    "kto_weights": ({"class_path": "KTOLoss", "beta": BETA, "desirable_weight": 2.0, "undesirable_weight": 0.5},
                    {"loss_type": "kto", "desirable_weight": 2.0, "undesirable_weight": 0.5}),
    "apo_zero_unpaired": ({"class_path": "APOZeroUnpairedLoss", "beta": BETA}, {"loss_type": "apo_zero_unpaired"}),
}


def _our_run(model_dir, data_path, loss_cfg, *, lora=None, lr=LR):
    import lightning.pytorch as pl

    from rlhf_lightning.datamodules.unpaired import UnpairedDataModule
    from rlhf_lightning.losses import kto
    from rlhf_lightning.models.spec import LoraSpec, ModelSpec
    from rlhf_lightning.modules.kto import KTOModule

    cfg = dict(loss_cfg)
    loss = getattr(kto, cfg.pop("class_path"))(**cfg)
    kls: list[float] = []
    inner = loss.losses

    def recording_losses(r, labels, kl):
        if kl is not None:
            kls.append(kl.item())
        return inner(r, labels, kl)

    loss.losses = recording_losses

    class Recording(KTOModule):
        losses: list = []

        def training_step(self, batch, batch_idx):
            out = super().training_step(batch, batch_idx)
            self.losses.append(out.item())
            return out

    spec = ModelSpec(name_or_path=str(model_dir), lora=LoraSpec(**lora) if lora else None)
    module = Recording(spec, loss=loss, optimizer=lambda p: torch.optim.SGD(p, lr=lr))
    module.losses = []
    dm = UnpairedDataModule(train=str(data_path), tokenizer=str(model_dir), batch_size=BATCH)  # defaults otherwise
    trainer = pl.Trainer(accelerator="cpu", max_steps=STEPS, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, datamodule=dm)
    order = dm.sampler.order(0)
    return module, [dm.train_data[i] for i in order], order, kls


def _trl_run(model_dir, rows, trl_cfg, tmp_path, *, lora=None, adapter_from=None, lr=LR):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import KTOConfig, KTOTrainer

    tok = AutoTokenizer.from_pretrained(model_dir)
    args = KTOConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=BATCH, max_steps=STEPS,
                     learning_rate=lr, optim="sgd", lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
                     max_grad_norm=0.0, beta=BETA, bf16=False, fp16=False, gradient_checkpointing=False,
                     use_cpu=True, report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True,
                     dataloader_num_workers=0, seed=0, **trl_cfg)
    peft_config = None
    if lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=0.0,
                                 target_modules="all-linear", task_type="CAUSAL_LM")
    recorded: list[float] = []

    class Recording(KTOTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if self.model.training:
                recorded.append(loss.item())
            return loss

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    trainer = Recording(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
                        peft_config=peft_config)
    if adapter_from is not None:  # start from the same random LoRA init as ours
        ours = {k: v for k, v in adapter_from.named_parameters() if "lora_" in k}
        theirs = dict(trainer.model.named_parameters())
        assert set(ours) == {k for k in theirs if "lora_" in k}
        with torch.no_grad():
            for k, v in ours.items():
                theirs[k].copy_(v)
    trainer.train()
    return recorded, trainer.train_dataset


def _check_same_tokens(our_rows, trl_dataset, kl: bool):
    assert len(our_rows) == len(trl_dataset)
    for n, (row, ex) in enumerate(zip(our_rows, trl_dataset, strict=True)):
        assert row["prompt_ids"] == ex["prompt_ids"] and row["completion_ids"] == ex["completion_ids"], n
        assert row["label"] == ex["label"]
        if kl:  # TRL's mismatched completion of row n is the previous row's in the same batch; ours is built so
            start = n - n % BATCH
            prev = start + (n - start - 1) % BATCH
            assert ex["KL_completion_ids"] == our_rows[prev]["completion_ids"]


def _data(tmp_path):
    path = tmp_path / "unpaired.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")
    return path


def _run_both(case, model_dir, tmp_path, *, lora=None, adapter_from=None, lr=LR):
    ours_cfg, trl_cfg = CASES[case]
    module, our_rows, order, kls = _our_run(model_dir, _data(tmp_path), ours_cfg, lora=lora, lr=lr)
    assert len(order) == STEPS * BATCH and sorted(order) == list(range(len(ROWS)))
    theirs, trl_data = _trl_run(model_dir, [ROWS[i] for i in order], trl_cfg, tmp_path, lora=lora,
                                adapter_from=adapter_from, lr=lr)
    _check_same_tokens(our_rows, trl_data, kl=trl_cfg["loss_type"] == "kto")
    assert len(module.losses) == len(theirs) == STEPS
    assert max(module.losses) - min(module.losses) > 1e-2, "the trajectory must move to be a test"
    return module, theirs, kls


@pytest.mark.parametrize("case", list(CASES))
def test_loss_trajectory_matches_trl(case, tiny_llama_dir, tmp_path):
    module, theirs, kls = _run_both(case, tiny_llama_dir, tmp_path)
    if case.startswith("kto"):  # the reference point must have been active (z0 > 0) for the test to cover it
        assert len(kls) == STEPS and max(kls) > 1e-3, kls
    else:
        assert kls == []
    torch.testing.assert_close(torch.tensor(module.losses), torch.tensor(theirs), rtol=RTOL, atol=ATOL)


def test_lora_with_adapter_disabled_reference_matches_trl(tiny_llama_dir, tmp_path):
    from rlhf_lightning.models.loading import load_causal_lm
    from rlhf_lightning.models.spec import LoraSpec, ModelSpec

    lora = {"r": 4, "alpha": 8, "dropout": 0.0}
    torch.manual_seed(0)  # our module's LoRA init is the starting point of both runs
    init = load_causal_lm(ModelSpec(name_or_path=str(tiny_llama_dir), lora=LoraSpec(**lora)))
    torch.manual_seed(0)
    # LoRA moves the loss less per step: a larger LR, so that the 12 steps make a trajectory worth comparing
    module, theirs, _ = _run_both("kto", tiny_llama_dir, tmp_path, lora=lora, adapter_from=init, lr=0.5)
    assert module.reference_model is None
    torch.testing.assert_close(torch.tensor(module.losses), torch.tensor(theirs), rtol=RTOL, atol=ATOL)
