"""Training curves read from a stage's TensorBoard event files."""

from __future__ import annotations

import pytest

from rlhf_lightning.errors import ConfigError
from rlhf_lightning.evaluation.curves import check_log_folders, latest_log_dir, plotted, stage_curves


def _log(folder, scalars):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(folder))
    for tag, step, value in scalars:
        writer.add_scalar(tag, value, step)
    writer.close()


def test_latest_version_is_read_with_every_point(tmp_path):
    stage = tmp_path / "sft"
    _log(stage / "lightning_logs" / "version_9", [("train/loss", 0, 9.0)])
    (stage / "lightning_logs" / "version_11").mkdir(parents=True)  # a run that logged nothing yet
    _log(stage / "lightning_logs" / "version_10", [
        ("train/loss_step", 0, 3.0), ("train/loss_step", 5, 2.0), ("train/loss_step", 5, 1.5),
        ("val/accuracy", 5, 0.75), ("constraint/len/lambda", 5, 0.2), ("train/lr", 5, 1e-3), ("epoch", 5, 0.0),
    ])
    assert latest_log_dir(stage) == stage / "lightning_logs" / "version_10"  # 10 > 9 as numbers; 11 is empty
    curves = stage_curves("sft", stage)
    assert curves.series["train/loss_step"] == ([0, 5, 5], [3.0, 2.0, 1.5])
    assert "epoch" not in curves.series
    # the final value is the last one written at the highest step
    assert curves.final()["train/loss_step"] == 1.5 and curves.final()["val/accuracy"] == 0.75
    assert sorted(curves.plotted()) == ["constraint/len/lambda", "train/loss_step", "val/accuracy"]


def test_plotted_tags():
    assert plotted("train/loss") and plotted("val/kl_epoch") and plotted("val/reward")
    assert plotted("train/λ") and plotted("constraint/x/lambda")
    assert not plotted("train/lr") and not plotted("val/perplexity") and not plotted("train/loss_total")


def test_stage_without_logs_and_missing_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    curves = stage_curves("reward", tmp_path / "empty")
    assert curves.log_dir is None and curves.series == {} and curves.final() == {}
    check_log_folders({"reward": str(tmp_path / "empty")})
    with pytest.raises(ConfigError, match=r"logs\.dpo: folder .*nowhere does not exist"):
        check_log_folders({"reward": str(tmp_path / "empty"), "dpo": str(tmp_path / "nowhere")})
