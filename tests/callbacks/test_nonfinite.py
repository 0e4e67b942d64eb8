"""The non-finite guard: a skipped step leaves weights and optimizer state exactly as they were; stop
names the step; automatic and manual optimisation alike."""

from __future__ import annotations

import copy

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer, seed_everything
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from rlhf_lightning.callbacks.nonfinite import NonFiniteError, NonFiniteGuard, first_nonfinite

BAD_BATCH = 2  # the rows of this batch hold a NaN (or an inf), so its loss and gradients are non-finite


def loader(bad=float("nan"), n=6):
    """``n`` batches of shape (2, 3); batch ``BAD_BATCH`` holds ``bad``."""
    x = torch.randn(n, 2, 3, generator=torch.Generator().manual_seed(0))
    x[BAD_BATCH, 0, 0] = bad
    return DataLoader(list(x), batch_size=None)


class Regression(LightningModule):
    """Linear model, AdamW with weight decay (a skipped step must not decay either)."""

    def __init__(self, manual: bool = False) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)
        self.automatic_optimization = not manual

    def loss(self, batch):
        return (self.layer(batch) ** 2).mean()

    def training_step(self, batch, batch_idx):
        if self.automatic_optimization:
            return self.loss(batch)
        opt = self.optimizers()
        for _ in range(2):  # like PPO: several optimizer steps per training step, clipped
            opt.zero_grad()
            self.manual_backward(self.loss(batch))
            self.clip_gradients(opt, gradient_clip_val=1.0, gradient_clip_algorithm="norm")
            opt.step()

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=0.1, weight_decay=0.5)


class Snapshots(Callback):
    """Weights and optimizer state before and after every training batch."""

    def __init__(self):
        self.before, self.after = {}, {}

    def _state(self, trainer, pl_module):
        opt = trainer.optimizers[0]
        return copy.deepcopy({"weights": pl_module.state_dict(), "optimizer": opt.state_dict()})

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.before[batch_idx] = self._state(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.after[batch_idx] = self._state(trainer, pl_module)


def fit(module, guard, bad=float("nan")):
    seed_everything(0)
    snaps = Snapshots()
    trainer = Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, callbacks=[guard, snaps])
    trainer.fit(module, loader(bad))
    return trainer, snaps


def assert_same(a, b):
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("manual", [False, True])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_skip_leaves_weights_and_optimizer_state_untouched(manual, bad):
    guard = NonFiniteGuard("skip")
    with pytest.warns(UserWarning, match=r"skipped the optimizer step at global step \d+ \(epoch 0, batch index 2\)"):
        trainer, snaps = fit(Regression(manual), guard, bad)
    skipped_per_batch = 2 if manual else 1
    assert guard.skipped == skipped_per_batch
    assert_same(snaps.before[BAD_BATCH], snaps.after[BAD_BATCH])  # weights, AdamW moments and step counts
    for i in (1, 3):  # the neighbours did train (so the comparison above can fail)
        assert not torch.equal(snaps.before[i]["weights"]["layer.weight"], snaps.after[i]["weights"]["layer.weight"])
    assert all(torch.isfinite(p).all() for p in trainer.lightning_module.parameters())
    assert trainer.callback_metrics["train/skipped_nonfinite_steps"] == skipped_per_batch


@pytest.mark.parametrize("manual", [False, True])
def test_stop_names_the_step_batch_and_parameter(manual):
    steps_before = 2 * (2 if manual else 1)
    with pytest.raises(NonFiniteError, match=rf"global step {steps_before} \(epoch 0, batch index 2\): "
                                             r"loss = nan; non-finite gradient, first in parameter 'layer.weight'"):
        fit(Regression(manual), NonFiniteGuard("stop"))


def test_off_lets_the_optimizer_spread_nan():
    trainer, _ = fit(Regression(), NonFiniteGuard("off"))
    assert not torch.isfinite(trainer.lightning_module.layer.weight).all()


def test_first_nonfinite_names_the_first_bad_gradient():
    ok, bad = torch.ones(3), torch.tensor([1.0, float("inf")])
    assert first_nonfinite([("a", ok), ("b", ok)]) is None
    assert first_nonfinite([("a", ok), ("b", bad), ("c", bad * float("nan"))]) == "b"
    assert first_nonfinite([]) is None
