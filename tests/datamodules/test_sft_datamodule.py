"""SFTDataModule: mixed sources and formats, validation from a fraction, packing, predict prompts."""

import json

import pytest
import torch

from rlhf_lightning.datamodules.sft import SFTDataModule
from rlhf_lightning.errors import ConfigError


@pytest.fixture()
def files(tmp_path):
    chat = tmp_path / "chat.jsonl"
    rows = [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"q{i}"},
                          {"role": "assistant", "content": f"answer {i}"}, {"role": "user", "content": "again"},
                          {"role": "assistant", "content": "好的"}]} for i in range(10)]
    chat.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    text = tmp_path / "docs.jsonl"
    text.write_text("".join(json.dumps({"text": f"document number {i}"}) + "\n" for i in range(10)), encoding="utf-8")
    return chat, text


def test_mixed_formats_and_val_fraction(files, tiny_tokenizer_dir):
    chat, text = files
    dm = SFTDataModule(train=[str(chat), {"path": str(text), "format": "text"}], val_fraction=0.2,
                       tokenizer=str(tiny_tokenizer_dir), max_length=128, batch_size=4)
    dm.setup("fit")
    assert len(dm.train_data) == 16 and len(dm.val_data) == 4  # 20% of each source held out
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) >= {"input_ids", "attention_mask", "labels"}
    assert dm.stats["train:" + str(chat)].kept == 8


def test_packing_rows_and_predict(files, tiny_tokenizer_dir, tmp_path):
    chat, text = files
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "写诗", "topic": "spring"}\n{"prompt": "hi", "topic": "x"}\n', encoding="utf-8")
    dm = SFTDataModule(train=str(chat), predict=str(prompts), tokenizer=str(tiny_tokenizer_dir), max_length=256,
                       packing=True, batch_size=2)
    dm.setup("fit")
    assert len(dm.train_data) < 10  # several conversations share a row
    batch = next(iter(dm.train_dataloader()))
    assert "position_ids" in batch and "attention_mask" not in batch
    dm.setup("predict")
    pbatch = next(iter(dm.predict_dataloader()))
    assert pbatch["topic"] == ["spring", "x"] and pbatch["input_ids"].shape[0] == 2


def test_bad_options(tiny_tokenizer_dir):
    with pytest.raises(ConfigError, match="max_length"):
        SFTDataModule(train="x.csv", max_length=1)
    with pytest.raises(ConfigError, match=r"data.train\[0\]: unknown key\(s\) \['pth'\]"):
        SFTDataModule(train={"pth": "x.csv"})
    dm = SFTDataModule(tokenizer=str(tiny_tokenizer_dir))
    with pytest.raises(ConfigError, match="data.train is empty"):
        dm.setup("fit")
    with pytest.raises(ConfigError, match="data.predict is empty"):
        dm.setup("predict")


def test_evaluation_loaders_draw_nothing_from_the_global_random_stream(files, tiny_tokenizer_dir):
    """Validating during training must not shift dropout or rollout sampling (their own generator)."""
    chat, _ = files
    dm = SFTDataModule(train=str(chat), val_fraction=0.2, tokenizer=str(tiny_tokenizer_dir), max_length=128,
                       batch_size=4)
    dm.setup("fit")
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    assert len(list(dm.val_dataloader())) == 1
    assert torch.equal(torch.rand(3), expected)
