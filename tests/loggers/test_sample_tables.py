"""Sample tables through real loggers, read back from what each one wrote to disk."""

from __future__ import annotations

import glob
import json
import os

import lightning.pytorch as pl
import pytest
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger, WandbLogger

from rlhf_lightning.loggers.sample_tables import log_sample_table, markdown_table

COLUMNS = ["prompt", "completion", "reward"]
ROWS = [["Say hi | please", "Hi!\nHello.", 0.5], ["春天", "春风拂面", -1.25]]


def _trainer(logger) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", logger=logger, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False)


def test_markdown_cells_escape_pipes_and_fold_newlines():
    assert markdown_table(COLUMNS, ROWS).splitlines() == [
        "| prompt | completion | reward |", "|---|---|---|",
        "| Say hi \\| please | Hi! Hello. | 0.5 |", "| 春天 | 春风拂面 | -1.25 |"]


def test_csv_logger_gets_a_jsonl_file_with_the_step(tmp_path):
    logger = CSVLogger(tmp_path)
    assert log_sample_table(_trainer(logger), COLUMNS, ROWS, step=7) == ["CSVLogger"]
    log_sample_table(_trainer(logger), COLUMNS, ROWS[:1], step=9)
    rows = [json.loads(line) for line in open(os.path.join(logger.log_dir, "samples.jsonl"), encoding="utf-8")]
    assert rows == [{"step": 7, "prompt": "Say hi | please", "completion": "Hi!\nHello.", "reward": 0.5},
                    {"step": 7, "prompt": "春天", "completion": "春风拂面", "reward": -1.25},
                    {"step": 9, "prompt": "Say hi | please", "completion": "Hi!\nHello.", "reward": 0.5}]


def test_tensorboard_gets_the_markdown_table_as_text(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path)
    assert log_sample_table(_trainer(logger), COLUMNS, ROWS, key="rollout", step=3) == ["TensorBoardLogger"]
    logger.experiment.flush()
    events = EventAccumulator(logger.log_dir, size_guidance={"tensors": 0}).Reload()
    (event,) = events.Tensors("rollout/text_summary")
    assert event.step == 3
    assert event.tensor_proto.string_val[0].decode("utf-8") == markdown_table(COLUMNS, ROWS)


def test_mlflow_gets_a_json_table_artifact(tmp_path, monkeypatch):
    import mlflow  # noqa: F401 - a dev dependency (pyproject), so CI runs this test
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a file store keeps the test self-contained
    logger = MLFlowLogger(experiment_name="t", tracking_uri=f"file:{tmp_path / 'mlruns'}")
    assert log_sample_table(_trainer(logger), COLUMNS, ROWS, step=5) == ["MLFlowLogger"]
    (path,) = glob.glob(str(tmp_path / "mlruns" / "*" / logger.run_id / "artifacts" / "samples" / "step_00000005.json"))
    table = json.loads(open(path, encoding="utf-8").read())
    assert table["columns"] == COLUMNS and table["data"] == ROWS


def test_wandb_offline_run_gets_a_table(tmp_path, monkeypatch):

    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = WandbLogger(save_dir=str(tmp_path), offline=True, project="t")
    try:
        assert log_sample_table(_trainer(logger), COLUMNS, ROWS, step=2) == ["WandbLogger"]
    finally:
        wandb.finish()
    (path,) = glob.glob(str(tmp_path / "wandb" / "offline-run-*" / "files" / "media" / "table" / "samples_*.table.json"))
    table = json.loads(open(path, encoding="utf-8").read())
    assert table["columns"] == COLUMNS and table["data"] == ROWS


class _MetricsOnly(Logger):
    name, version = "metrics_only", 0

    def log_metrics(self, metrics, step=None):
        pass

    def log_hyperparams(self, params, *args, **kwargs):
        pass


def test_loggers_without_tables_get_one_warning_and_bad_rows_an_error():
    trainer = _trainer(_MetricsOnly())
    with pytest.warns(UserWarning, match=r"not logged: none of the run's loggers \(_MetricsOnly\)"):
        assert log_sample_table(trainer, COLUMNS, ROWS) == []
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log_sample_table(trainer, COLUMNS, ROWS)  # warned once per trainer
    with pytest.raises(ValueError, match="every row needs 3 values"):
        log_sample_table(trainer, COLUMNS, [["only one"]])
