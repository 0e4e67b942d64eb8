"""PromptDataModule: formats, over-long prompts, columns for plugins, and the resumable prompt order."""

from __future__ import annotations

import json

import pytest

from rlhf_lightning.datamodules.prompts import PromptDataModule
from rlhf_lightning.datamodules.resumable import ResumableSampler
from rlhf_lightning.errors import ConfigError, DataError


def write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def data(tok, train, **kw):
    kw.setdefault("max_prompt_length", 64)
    return PromptDataModule(train=train, tokenizer=str(tok), **kw)


def test_prompt_and_messages_rows_with_columns(tiny_tokenizer_dir, tmp_path):
    src = write(tmp_path / "p.jsonl", [
        {"prompt": "Explain gravity.", "topic": "physics", "reference": "It pulls."},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."},
                      {"role": "assistant", "content": "Hello!"}], "topic": "greeting", "reference": "Hi"},
    ])
    dm = data(tiny_tokenizer_dir, src, batch_size=2, shuffle=False)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["prompt"] == ["Explain gravity.", "Say hello."]  # raw prompts for the reward plugins
    assert batch["topic"] == ["physics", "greeting"] and batch["reference"] == ["It pulls.", "Hi"]
    assert batch["text"][1].endswith("<|im_start|>assistant\n") and "Hello!" not in batch["text"][1]
    assert batch["input_ids"].shape[0] == 2
    assert batch["attention_mask"][0, -1] == 1 and batch["attention_mask"][:, 0].tolist() != [1, 1]  # left-padded


def test_wrong_format_is_a_data_error(tiny_tokenizer_dir, tmp_path):
    src = write(tmp_path / "p.jsonl", [{"question": "What?", "answer": "That."}])
    with pytest.raises(DataError, match=r"'prompt'.*'messages'.*question"):
        data(tiny_tokenizer_dir, src).setup("fit")
    bad = write(tmp_path / "q.jsonl", [{"prompt": "ok"}, {"prompt": ""}])
    with pytest.raises(DataError, match="row index 1"):
        data(tiny_tokenizer_dir, bad).setup("fit")


def test_no_train_prompts_is_a_config_error(tiny_tokenizer_dir):
    with pytest.raises(ConfigError, match="data.train"):
        data(tiny_tokenizer_dir, None).setup("fit")


def test_over_long_prompts_dropped_and_counted(tiny_tokenizer_dir, tmp_path):
    src = write(tmp_path / "p.jsonl", [{"prompt": "Hi."}, {"prompt": "gravity " * 200}, {"prompt": "Hello."}])
    dm = data(tiny_tokenizer_dir, src, max_prompt_length=32)
    with pytest.warns(UserWarning, match="1 of 3 dropped"):
        dm.setup("fit")
    assert [r["prompt"] for r in dm.train_data] == ["Hi.", "Hello."]
    assert dm.stats[f"train:{src}"]["dropped_too_long"] == 1


def test_over_long_prompts_error_or_keep_end(tiny_tokenizer_dir, tmp_path):
    src = write(tmp_path / "p.jsonl", [{"prompt": "Hi."}, {"prompt": "gravity " * 200}])
    with pytest.raises(DataError, match=r"row index 1.*max_prompt_length=32"):
        data(tiny_tokenizer_dir, src, max_prompt_length=32, truncation="error").setup("fit")
    dm = data(tiny_tokenizer_dir, src, max_prompt_length=32, truncation="keep_end", batch_size=2, shuffle=False)
    with pytest.warns(UserWarning, match="1 cut"):
        dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape[1] == 32  # the budget, generation prompt kept at the end


def test_every_prompt_too_long_is_an_error(tiny_tokenizer_dir, tmp_path):
    src = write(tmp_path / "p.jsonl", [{"prompt": "gravity " * 200}])
    with pytest.raises(DataError, match="no train prompts left"):
        data(tiny_tokenizer_dir, src, max_prompt_length=8).setup("fit")


def test_sampler_order_depends_only_on_seed_and_epoch_and_resumes_mid_epoch():
    a, b = ResumableSampler(10, seed=3), ResumableSampler(10, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    full = list(a)
    assert sorted(full) == list(range(10)) and full == list(b)
    a.set_epoch(1)
    assert list(a) != full
    b.resume(epoch=2, skip=4)
    assert list(b) == full[4:]
    assert list(b) == full  # the skip applies once
    c = ResumableSampler(5, shuffle=False)
    c.resume(epoch=1, skip=2)
    assert list(c) == [0, 1, 2, 3, 4]  # epoch 0: the resume point belongs to epoch 1
    c.set_epoch(1)
    assert list(c) == [2, 3, 4]


def test_state_dict_round_trip_restores_the_position(tiny_tokenizer_dir, tmp_path):
    src = write(tmp_path / "p.jsonl", [{"prompt": f"Say {i}."} for i in range(6)])
    dm = data(tiny_tokenizer_dir, src, batch_size=2, seed=5)
    dm.load_state_dict({"epoch": 0, "samples_done": 4, "seed": 5})
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    order = ResumableSampler(6, seed=5).order(0)
    assert len(batches) == 1 and batches[0]["prompt"] == [f"Say {i}." for i in order[4:]]
