"""TokenThroughput: which batches count, how many tokens, and that a real Trainer run logs the figure."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from rlhf_lightning.callbacks.throughput import TokenThroughput, batch_tokens


def test_tokens_are_the_attention_mask_ones_of_token_batches():
    ids = torch.zeros(2, 5, dtype=torch.long)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    assert batch_tokens({"input_ids": ids, "labels": ids, "attention_mask": mask}).item() == 8
    assert batch_tokens({"input_ids": ids, "labels": ids}).item() == 10  # packed rows: every position
    assert batch_tokens({"input_ids": ids, "attention_mask": mask}) is None  # prompts (online RL): not counted
    assert batch_tokens((ids, ids)) is None


class _Toy(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Embedding(4, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch["input_ids"]).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _Recorder(pl.Callback):
    def __init__(self) -> None:
        self.logged: list = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.logged.append(trainer.callback_metrics.get("train/tokens_per_sec"))


@pytest.mark.parametrize("with_labels", [True, False])
def test_a_trainer_run_logs_tokens_per_second_for_token_batches_only(with_labels):
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    batch = {"input_ids": torch.ones(2, 3, dtype=torch.long), "attention_mask": mask}
    if with_labels:
        batch["labels"] = batch["input_ids"]
    recorder = _Recorder()
    trainer = pl.Trainer(accelerator="cpu", max_steps=3, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[TokenThroughput(), recorder])  # the recorder runs after it
    loader = torch.utils.data.DataLoader([batch] * 3, batch_size=None)  # each item is a whole batch
    trainer.fit(_Toy(), train_dataloaders=loader)
    if with_labels:
        assert len(recorder.logged) == 3 and all(v is not None and v.item() > 0 for v in recorder.logged)
    else:
        assert recorder.logged == [None] * 3
