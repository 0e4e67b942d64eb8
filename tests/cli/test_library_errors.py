"""What torch, transformers, peft or datasets refuse while building what the user configured (the
optimizer, the scheduler, the model, its LoRA adapter, the data) is a user error: exit status 2, the
library's message and the option that caused it, no traceback. Before, each of these ended in a
Python traceback and exit status 1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rlhf_lightning.cli import main
from tests.cli.conftest import sft_config
from tests.cli.test_ppo_cli import ppo_config, prompt_file


def _fails_with(cfg: Path, capsys, message: str) -> None:
    code = main(["fit", "--config", str(cfg)])
    err = capsys.readouterr().err
    assert code == 2, err[-3000:]
    assert "Traceback" not in err
    assert f"rlhf-lightning: error: {message}" in err, err[-3000:]


ONE_STEP = {"trainer.max_steps": 1, "export.enabled": False, "trainer.num_sanity_val_steps": 0}


@pytest.mark.parametrize(("overrides", "message"), [
    ({"model.init_args.optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": -1.0}}},
     "model.init_args.optimizer: Invalid learning rate: -1.0 (ValueError)"),
    ({"model.init_args.scheduler": {"class_path": "torch.optim.lr_scheduler.LinearLR",
                                    "init_args": {"start_factor": 2.0}}},
     "model.init_args.scheduler: Starting multiplicative factor expected to be greater than 0 and less or equal "
     "to 1. (ValueError)"),
    ({"model.init_args.policy.extra_kwargs": {"no_such_argument": 1}},
     "model.init_args.policy: LlamaForCausalLM.__init__() got an unexpected keyword argument 'no_such_argument' "
     "(TypeError)"),
    ({"model.init_args.policy.lora": {"target_modules": ["no_such_module"]}},
     "model.init_args.policy.lora: Target modules {'no_such_module'} not found in the base model"),
    ({"model.init_args.policy": {"init_config": {"model_type": "llama", "hidden_size": 30, "num_attention_heads": 4}}},
     "model.init_args.policy.init_config: "),
], ids=["negative_lr", "scheduler", "model_kwargs", "lora_target_modules", "init_config"])
def test_sft_build_errors_name_the_option(tmp_path, tiny_llama_dir, sft_files, capsys, overrides, message):
    if "model.init_args.policy" in overrides:
        overrides["model.init_args.policy"]["tokenizer"] = str(tiny_llama_dir)
    _fails_with(sft_config(tmp_path, tiny_llama_dir, sft_files, **ONE_STEP, **overrides), capsys, message)


def test_ppo_negative_learning_rate(tmp_path, tiny_llama_dir, capsys):
    """PPO builds its own parameter groups (policy, critic) through the same checked function."""
    cfg = ppo_config(tmp_path, tiny_llama_dir, prompt_file(tmp_path), **{
        "trainer.max_steps": 1, "export.enabled": False,
        "model.init_args.optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": -0.5}}})
    _fails_with(cfg, capsys, "model.init_args.optimizer: Invalid learning rate: -0.5 (ValueError)")


def test_chat_template_that_refuses_the_prompts(tmp_path, tiny_llama_dir, capsys):
    """A model whose chat template raises on a system turn (as Gemma's and Mistral's do) and PPO
    prompts with one: the tokenizer's TemplateError, with the data option it came from (SFT and
    comparison data already named the row)."""
    model = tmp_path / "no_system_model"
    shutil.copytree(tiny_llama_dir, model)
    (model / "chat_template.jinja").write_text(
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}", encoding="utf-8")
    prompts = tmp_path / "chats.jsonl"
    turns = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    prompts.write_text("".join(json.dumps({"messages": turns}) + "\n" for _ in range(4)), encoding="utf-8")
    cfg = ppo_config(tmp_path, model, prompts, **{"trainer.max_steps": 1, "export.enabled": False})
    _fails_with(cfg, capsys, "data.init_args.train: System role not supported (TemplateError)")
