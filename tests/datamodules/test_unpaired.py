"""UnpairedDataModule: sources to encoded rows, pairs split before unpairing, one-row batches."""

from __future__ import annotations

import json

import pytest

from rlhf_lightning.datamodules.unpaired import UnpairedDataModule
from rlhf_lightning.errors import ConfigError, DataError


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _unpaired(n):
    return [{"prompt": f"Say {i}.", "completion": f"Number {i}.", "label": i % 2 == 0} for i in range(n)]


def test_a_last_batch_of_one_row_is_dropped_and_others_are_kept(tmp_path, tiny_llama_dir):
    dm = UnpairedDataModule(train=_write(tmp_path / "t.jsonl", _unpaired(5)), tokenizer=str(tiny_llama_dir),
                            batch_size=2)
    dm.setup("fit")
    loader = dm.train_dataloader()
    batches = list(loader)
    assert len(loader) == 2 and [b["input_ids"].shape[0] for b in batches] == [2, 2]
    assert {"KL_input_ids", "KL_attention_mask", "KL_labels", "label"} <= set(batches[0])
    dm = UnpairedDataModule(train=_write(tmp_path / "t6.jsonl", _unpaired(6)), tokenizer=str(tiny_llama_dir),
                            batch_size=4)
    dm.setup("fit")
    assert [b["input_ids"].shape[0] for b in dm.train_dataloader()] == [4, 2]


def test_one_row_batches_are_refused_and_one_row_is_an_error(tmp_path, tiny_llama_dir):
    dm = UnpairedDataModule(train=_write(tmp_path / "t.jsonl", _unpaired(4)), tokenizer=str(tiny_llama_dir),
                            batch_size=1)
    dm.setup("fit")
    with pytest.raises(ConfigError, match="data.init_args.batch_size must be at least 2"):
        dm.train_dataloader()
    dm = UnpairedDataModule(train=_write(tmp_path / "t1.jsonl", _unpaired(1)), tokenizer=str(tiny_llama_dir))
    dm.setup("fit")
    with pytest.raises(DataError, match="train: one row, so no batch has a mismatched prompt/completion pair"):
        dm.train_dataloader()


def test_val_fraction_splits_pairs_before_they_are_unpaired(tmp_path, tiny_llama_dir):
    pairs = [{"prompt": f"Say {i}.", "chosen": f"Number {i}.", "rejected": "No."} for i in range(10)]
    dm = UnpairedDataModule(train=_write(tmp_path / "p.jsonl", pairs), tokenizer=str(tiny_llama_dir),
                            val_fraction=0.2, batch_size=2)
    dm.setup("fit")
    assert len(dm.train_data) == 16 and len(dm.val_data) == 4
    assert [r["label"] for r in dm.val_data] == [True, False, True, False]
    train_prompts = {tuple(r["prompt_ids"]) for r in dm.train_data}
    assert not train_prompts & {tuple(r["prompt_ids"]) for r in dm.val_data}  # no pair straddles the split


def test_no_training_data_is_a_config_error(tiny_llama_dir):
    with pytest.raises(ConfigError, match="data.train is empty"):
        UnpairedDataModule(tokenizer=str(tiny_llama_dir)).setup("fit")
