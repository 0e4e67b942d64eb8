"""``chat_template:`` in YAML through the real CLI: SFT with each built-in on the tiny model, tool rows included;
the export carries the template; bad values exit 2 at parse time naming the option.

The tiny tokenizer's own template is the demo's ChatML; the built-ins replace it (``qwen2`` adds its default
system prompt, ``llama3`` its headers), so an export that still held the folder's template would fail here.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from rlhf_lightning.cli import main
from rlhf_lightning.data.chat_templates import BUILTIN_TEMPLATES
from tests.cli.conftest import sft_config
from tests.data.test_chat_templates import ROW

PLAIN = {"messages": [{"role": "user", "content": "Say hello."}, {"role": "assistant", "content": "Hello!"}]}
POLICY = "model.init_args.policy"


@pytest.fixture()
def tool_files(tmp_path: Path) -> dict[str, Path]:
    train = tmp_path / "tools.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in [ROW, PLAIN] * 3), encoding="utf-8")
    return {"train": train, "val": train, "prompts": train}


def _config(tmp_path, model_dir, files, **overrides):
    return sft_config(tmp_path, model_dir, files, **{
        "trainer.max_steps": 2, "data.init_args.max_length": 1024, "data.init_args.batch_size": 2,
        "data.init_args.predict": None, **overrides})


@pytest.mark.parametrize("name", sorted(BUILTIN_TEMPLATES))
def test_sft_fit_with_builtin_template_exports_it(tmp_path, tiny_llama_dir, tool_files, name):
    cfg = _config(tmp_path, tiny_llama_dir, tool_files, **{f"{POLICY}.chat_template": name})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # llama3: the tiny tokenizer lacks its header tokens (a warning)
        assert main(["fit", "--config", str(cfg)]) == 0

    # The data module gets the policy's template through the CLI link, and tokenises with it.
    from rlhf_lightning.cli import build_cli_class
    from rlhf_lightning.registry import prepare_for_parsing

    prepare_for_parsing()
    cli = build_cli_class()(args=["--config", str(cfg)], run=False)
    assert cli.datamodule.chat_template == name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cli.datamodule._load_tokenizer().chat_template == BUILTIN_TEMPLATES[name]

    from transformers import AutoTokenizer

    export = tmp_path / "export"
    assert (export / "chat_template.jinja").read_text(encoding="utf-8") == BUILTIN_TEMPLATES[name]
    tok = AutoTokenizer.from_pretrained(export)
    text = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    expected = {"chatml": "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
                "qwen2": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                         "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
                "llama3": "<s><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                          "<|start_header_id|>assistant<|end_header_id|>\n\n"}[name]
    assert text == expected


def test_template_file_reaches_the_export(tmp_path, tiny_llama_dir, tool_files):
    template = BUILTIN_TEMPLATES["chatml"].replace("<|im_start|>", "<|im_start|>").replace(
        "'<|im_start|>' + message.role + '\\n'", "'<|im_start|>' + message.role + ' said\\n'")
    path = tmp_path / "mine.jinja"
    path.write_text(template, encoding="utf-8")
    cfg = _config(tmp_path, tiny_llama_dir, tool_files, **{f"{POLICY}.chat_template": str(path)})
    assert main(["fit", "--config", str(cfg)]) == 0
    assert (tmp_path / "export" / "chat_template.jinja").read_text(encoding="utf-8") == template


@pytest.mark.parametrize("value, words", [
    ("chatmll", "unknown built-in template; built-ins: chatml, llama3, qwen2"),
    ("no/such/template.jinja", "template file not found"),
    ("{% if messages %}", "does not parse as Jinja"),
])
def test_bad_chat_template_exits_2_at_parse_time(tmp_path, tool_files, capsys, value, words):
    # The policy folder does not exist: the error must come from parsing, before any loading.
    cfg = _config(tmp_path, tmp_path / "no-model", tool_files, **{f"{POLICY}.chat_template": value})
    assert main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"{POLICY}.chat_template: " in err and words in err, err
    assert "Traceback" not in err


def test_template_that_is_not_prefix_stable_exits_2(tmp_path, tiny_llama_dir, tool_files, capsys):
    unstable = "{% for m in messages %}{{ m.role }}: {{ m.content }}{% if loop.last %} [END]{% endif %}\n{% endfor %}"
    cfg = _config(tmp_path, tiny_llama_dir, tool_files, **{f"{POLICY}.chat_template": unstable})
    assert main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "the inline chat_template is not prefix-stable" in err, err


@pytest.mark.parametrize("config", ["configs/demo/sft.yaml", "configs/demo/reward.yaml", "configs/demo/dpo.yaml",
                                    "configs/demo/kto.yaml", "configs/demo/grpo.yaml"])
def test_every_data_module_gets_the_policys_template(tiny_llama_dir, config):
    """The CLI links the model's chat_template into whichever data module the stage uses (KTO's included)."""
    from rlhf_lightning.cli import build_cli_class
    from rlhf_lightning.registry import prepare_for_parsing

    root = Path(__file__).resolve().parents[2]
    spec = "backbone" if "reward" in config else "policy"
    prepare_for_parsing()
    cli = build_cli_class()(args=["--config", str(root / config), f"--model.init_args.{spec}.name_or_path",
                                  str(tiny_llama_dir), f"--model.init_args.{spec}.chat_template", "chatml"], run=False)
    assert cli.datamodule.chat_template == "chatml"
