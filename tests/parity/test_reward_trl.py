"""Parity with TRL's ``RewardTrainer`` (a numerical oracle only; TRL is not a dependency).

Same tiny ``LlamaForSequenceClassification`` folder (random weights, no dropout), the same token ids
(our encoding, handed to TRL as pre-tokenised ``chosen_ids`` / ``rejected_ids``), the same batches in
the same order (sequential on both sides), plain SGD at a constant learning rate, no gradient
clipping, fp32, 12 steps. TRL concatenates [all chosen; all rejected], we interleave
[c0, r0, c1, r1, ...]; each row's score is independent of its neighbours, so the losses agree up to
float32 summation order.

Tolerance: per-step loss within 1e-4 absolute (observed: at most 2.4e-7 over the 12 steps),
per-step accuracy identical.
"""

from __future__ import annotations

import torch

from tests.parity.trl_import import import_trl

import_trl()  # a skip where TRL is not installed, a failure when CI is set

from rlhf_lightning.losses.reward import PairwiseLoss  # noqa: E402
from tests.rewards.classifiers import build_tiny_classifier  # noqa: E402

STEPS, BATCH, LR = 12, 4, 0.5
LOSS_ATOL = 1e-4

SUBJECTS = ["spring", "gravity", "the moon", "rain", "music", "trains", "the sea", "bread", "chess", "snow",
            "owls", "rivers"]


def _comparisons() -> list[dict]:
    comps = []
    for i, s in enumerate(SUBJECTS * 4):
        good = f"Here is a short answer about {s}: it is interesting and I like it."
        bad = "no" if i % 3 else f"I don't know anything about {s}."
        # a few pairs the initial model gets wrong and a few it gets right, so accuracy moves
        chosen, rejected = (good, bad) if i % 5 else (bad + " ok", good)
        comps.append({"prompt": f"Tell me about {s}.", "responses": [chosen, rejected]})
    return comps


class Recording(PairwiseLoss):
    def __init__(self) -> None:
        super().__init__()
        self.trace: list[tuple[float, float]] = []

    def __call__(self, rewards, mask=None, labels=None, margins=None):
        losses, metrics = super().__call__(rewards, mask, labels, margins)
        self.trace.append((losses.mean().item(), metrics["accuracy"].mean().item()))
        return losses, metrics


def _ours(model_dir, rows) -> list[tuple[float, float]]:
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader

    from rlhf_lightning.data.comparison_batches import ComparisonCollator
    from rlhf_lightning.models.spec import ModelSpec
    from rlhf_lightning.modules.reward import RewardModelModule

    loss = Recording()
    module = RewardModelModule(ModelSpec(name_or_path=str(model_dir)), loss=loss,
                               optimizer=lambda params: torch.optim.SGD(params, lr=LR))
    module.configure_model()
    loader = DataLoader(rows, batch_size=BATCH, shuffle=False, collate_fn=ComparisonCollator(module.tokenizer.pad_token_id))
    trainer = pl.Trainer(accelerator="cpu", max_steps=STEPS, precision="32-true", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0)
    trainer.fit(module, train_dataloaders=loader)
    return loss.trace


def _trl(model_dir, rows, tmp_path) -> list[tuple[float, float]]:
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    trace = []

    class Recorder(RewardTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, outputs = super().compute_loss(model, inputs, return_outputs=True)
            chosen, rejected = torch.chunk(outputs.logits.squeeze(-1), 2)
            trace.append((loss.item(), (chosen > rejected).float().mean().item()))
            return (loss, outputs) if return_outputs else loss

    data = Dataset.from_list([{"chosen_ids": r["responses"][0]["input_ids"],
                               "rejected_ids": r["responses"][1]["input_ids"]} for r in rows])
    args = RewardConfig(
        output_dir=str(tmp_path / "trl"), max_steps=STEPS, per_device_train_batch_size=BATCH, learning_rate=LR,
        optim="sgd", lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=0.0,
        train_sampling_strategy="sequential", use_cpu=True, bf16=False, fp16=False,
        gradient_checkpointing=False, report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True,
        seed=0, dataloader_num_workers=0)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1, dtype=torch.float32)
    trainer = Recorder(model=model, args=args, train_dataset=data, processing_class=AutoTokenizer.from_pretrained(model_dir))
    trainer.train()
    return trace


def test_pairwise_loss_and_accuracy_trajectory_match_trl(tmp_path):
    from transformers import AutoTokenizer

    from rlhf_lightning.data.comparison_batches import encode_comparisons

    model_dir = build_tiny_classifier(tmp_path / "clf", seed=3)
    rows, _ = encode_comparisons(_comparisons(), AutoTokenizer.from_pretrained(model_dir), max_length=96)
    assert len(rows) >= STEPS * BATCH

    ours, theirs = _ours(model_dir, rows), _trl(model_dir, rows, tmp_path)
    assert len(ours) == len(theirs) == STEPS
    ours_t, theirs_t = torch.tensor(ours), torch.tensor(theirs)
    torch.testing.assert_close(ours_t[:, 0], theirs_t[:, 0], atol=LOSS_ATOL, rtol=0)
    assert ours_t[:, 1].tolist() == theirs_t[:, 1].tolist()
    assert ours_t[-1, 0] < ours_t[0, 0]  # it learned something: the trajectory is not flat
    assert len(set(ours_t[:, 1].tolist())) > 1
