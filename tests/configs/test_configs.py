"""Every YAML in ``configs/`` parses and instantiates (model, data, trainer) through the real CLI parser.

Stage configs are parsed on their own; presets under ``configs/strategies`` and
``configs/precision`` are stacked on the SFT demo config, as users stack them.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest
import yaml

from rlhf_lightning.cli import build_cli_class
from rlhf_lightning.registry import prepare_for_parsing

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
PRESET_DIRS = ("strategies", "precision")
BASE = CONFIGS / "demo" / "sft.yaml"


def _yaml_files() -> list[Path]:
    return sorted(p for p in CONFIGS.rglob("*.yaml") if "data" not in p.relative_to(CONFIGS).parts[:-1]
                  and "tokenizer" not in p.relative_to(CONFIGS).parts[:-1])


def _is_preset(path: Path) -> bool:
    return path.relative_to(CONFIGS).parts[0] in PRESET_DIRS


def test_there_are_configs():
    assert BASE in _yaml_files()


def _command(text: str) -> str:
    """The subcommand of the run command on a config's first line (``fit`` when none is named)."""
    words = text.splitlines()[0].split()
    return words[2] if len(words) > 2 and words[1] == "rlhf-lightning" else "fit"


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_config_parses_and_instantiates(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # configs use paths relative to the repository root
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#"), "each config starts with a comment giving its run command"
    assert "rlhf-lightning" in text.splitlines()[0] or "rlhf-lightning" in text[:400]
    yaml.safe_load(text)
    prepare_for_parsing()
    if _command(text) == "pipeline":  # every step's config is resolved through the stage parser
        from rlhf_lightning.pipeline.runner import plan
        from rlhf_lightning.pipeline.spec import load_pipeline

        steps = load_pipeline(path).steps
        assert [p.step.name for p in plan(steps, steps)] == [s.name for s in steps]
        return
    if _command(text) in ("evaluate", "sample"):  # parsed and its plugins instantiated; no model is loaded
        parser = importlib.import_module(f"rlhf_lightning.commands.{_command(text)}").build_parser()
        init = parser.instantiate(parser.parse_args(["--config", str(path)]))
        assert init.rewards and (_command(text) == "sample" or init.baseline in init.policies)
        return
    if _command(text) == "constitution":  # parsed and its principles checked; no model is loaded
        from rlhf_lightning.commands.constitution import build_parser, check_settings

        parser = build_parser()
        principles, _ = check_settings(parser.instantiate(parser.parse_args(["--config", str(path)])))
        assert principles
        return
    gpu_only = "gpu-only" in text[:400].lower()
    args = ["--config", str(BASE), "--config", str(path)] if _is_preset(path) else ["--config", str(path)]
    if gpu_only:
        # GPU-only presets (DeepSpeed, bf16 on CUDA) are parsed, not instantiated, on this CPU machine.
        cli_cls = build_cli_class()
        parser = cli_cls(args=["--config", str(BASE)], run=False).parser
        cfg = parser.parse_args(args)
        assert cfg is not None
        return
    cli = build_cli_class()(args=args, run=False)
    assert cli.model is not None and cli.datamodule is not None and cli.trainer is not None
    assert os.path.isabs(cli.trainer.default_root_dir) or cli.trainer.default_root_dir


def test_demo_pipeline_names_the_stages_of_the_contract(monkeypatch):
    """configs/demo/pipeline.yaml: pretrain -> sft -> reward -> (samples ->) dpo, grpo, ppo -> evaluate, in
    that plan order, with DPO and GRPO branching from SFT (DPO on SFT's answers ranked by the reward model)
    and PPO following the reward model."""
    from rlhf_lightning.pipeline.spec import load_pipeline

    monkeypatch.chdir(ROOT)
    steps = {s.name: s for s in load_pipeline(CONFIGS / "demo" / "pipeline.yaml").steps}
    assert list(steps) == ["pretrain", "sft", "reward", "samples", "dpo", "grpo", "ppo", "evaluate"]
    assert set(steps["samples"].dependencies()) == {"sft", "reward"} and steps["samples"].command == "sample"
    assert steps["dpo"].dependencies() == ["sft", "samples"] and steps["grpo"].dependencies() == ["sft"]
    assert set(steps["ppo"].dependencies()) == {"sft", "reward"}
    assert steps["evaluate"].command == "evaluate"
