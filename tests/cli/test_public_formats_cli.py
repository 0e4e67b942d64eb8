"""Public dataset shapes through the real CLI (``rlhf_lightning.cli.main``): SFT on Dolly and ShareGPT files,
and an ambiguous file refused with exit status 2 and the candidate formats (a declared ``format:`` chooses)."""

from __future__ import annotations

import json

from rlhf_lightning.cli import main
from tests.cli.conftest import sft_config
from tests.datamodules.test_public_formats import DOLLY, SHAREGPT, write_jsonl


def test_sft_fits_on_dolly_and_sharegpt_files(tmp_path, tiny_llama_dir, sft_files):
    train = [write_jsonl(tmp_path / "dolly.jsonl", DOLLY * 2), write_jsonl(tmp_path / "sharegpt.jsonl", SHAREGPT * 2)]
    cfg = sft_config(tmp_path, tiny_llama_dir, sft_files, **{"data.init_args.train": train,
                                                              "data.init_args.val": None,
                                                              "trainer.max_steps": 2})
    assert main(["fit", "--config", str(cfg)]) == 0
    assert (tmp_path / "export" / "config.json").is_file()


def test_ambiguous_file_is_a_user_error_until_the_format_is_declared(tmp_path, tiny_llama_dir, sft_files, capsys):
    rows = [{"prompt": "Explain gravity.", "completion": "It pulls.", "response": "Gravity pulls objects."}] * 4
    path = write_jsonl(tmp_path / "both.jsonl", rows)
    cfg = sft_config(tmp_path, tiny_llama_dir, sft_files, **{"data.init_args.train": path,
                                                              "data.init_args.val": None,
                                                              "trainer.max_steps": 1})
    assert main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "both.jsonl" in err and "match several formats: prompt_completion" in err and "prompt_response" in err
    assert "Traceback" not in err
    declared = json.dumps({"path": path, "format": "prompt_response"})
    assert main(["fit", "--config", str(cfg), f"--data.init_args.train=[{declared}]"]) == 0


def test_dpo_fits_on_ultrafeedback_binarized(tmp_path, tiny_llama_dir):
    """Before: the run stopped with "the tokenizer's chat template is not prefix-stable" (a wrong cause)."""
    from tests.cli.test_dpo_cli import dpo_config
    from tests.datamodules.test_public_formats import ARGILLA_ULTRAFEEDBACK, H4_ULTRAFEEDBACK

    path = write_jsonl(tmp_path / "uf.jsonl", [H4_ULTRAFEEDBACK, ARGILLA_ULTRAFEEDBACK] * 2)
    cfg = dpo_config(tmp_path, tiny_llama_dir, {"train": path, "val": path}, **{"trainer.max_steps": 2,
                                                                              "trainer.val_check_interval": 2})
    assert main(["fit", "--config", str(cfg)]) == 0
