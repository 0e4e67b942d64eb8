"""RLHFTrainer (rlhf_lightning/trainer.py): ``precision="auto"`` becomes the resolved precision, logged once;
every other precision value reaches Lightning unchanged."""

from __future__ import annotations

import pytest

from rlhf_lightning import precision, trainer
from rlhf_lightning.trainer import RLHFTrainer


@pytest.fixture()
def logged(monkeypatch) -> list[str]:
    lines: list[str] = []
    monkeypatch.setattr(trainer, "rank_zero_info", lines.append)
    return lines


def _trainer(**kwargs) -> RLHFTrainer:
    return RLHFTrainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                       enable_progress_bar=False, enable_model_summary=False, **kwargs)


@pytest.mark.parametrize("flags, expected, feature", [
    (frozenset({"avx2", "avx512_bf16"}), "bf16-mixed", "avx512_bf16"),
    (frozenset({"avx2", "amx_bf16"}), "bf16-mixed", "amx_bf16"),
    (frozenset({"avx2", "avx512f"}), "32-true", "neither avx512_bf16 nor amx_bf16"),
])
def test_auto_is_resolved_and_logged(monkeypatch, logged, flags, expected, feature):
    monkeypatch.setattr(precision, "cpu_flags", lambda: flags)
    t = _trainer(precision="auto")
    assert t.precision == expected
    assert len(logged) == 1
    assert logged[0].startswith(f"precision auto -> {expected}: ") and feature in logged[0]


@pytest.mark.parametrize("value, expected", [("bf16-mixed", "bf16-mixed"), ("32-true", "32-true"), (None, "32-true")])
def test_other_values_pass_through_without_a_log_line(monkeypatch, logged, value, expected):
    monkeypatch.setattr(precision, "cpu_flags", lambda: pytest.fail("probed the CPU without precision=auto"))
    assert _trainer(precision=value).precision == expected
    assert logged == []
