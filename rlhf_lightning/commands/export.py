"""``rlhf-lightning export``: write a Hugging Face folder from a training checkpoint.

    rlhf-lightning export --config runs/x/lightning_logs/version_0/config.yaml \\
        --ckpt_path runs/x/checkpoints/last.ckpt --output runs/x/export [--merge_lora]

The config (the one saved with the run, or the one it was started with) rebuilds the stage module;
the checkpoint's weights are loaded into it and exported atomically.
"""

from __future__ import annotations

import argparse
import os
from typing import Optional

from rlhf_lightning.errors import ConfigError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rlhf-lightning export", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", action="append", required=True, help="run config YAML (repeatable, stacked in order)")
    p.add_argument("--ckpt_path", required=True, help="Lightning checkpoint (.ckpt) to export")
    p.add_argument("--output", help="export folder (default: the config's export.dirpath or <default_root_dir>/export)")
    p.add_argument("--merge_lora", action="store_true", help="merge a LoRA adapter into a full model")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = _parser().parse_args(argv)
    for cfg in args.config:
        if not os.path.isfile(cfg):
            raise ConfigError(f"config file not found: {cfg}")
    if not os.path.isfile(args.ckpt_path):
        raise ConfigError(f"checkpoint not found: {args.ckpt_path}")

    import torch

    from rlhf_lightning.cli import build_cli_class
    from rlhf_lightning.registry import prepare_for_parsing

    prepare_for_parsing()
    cli_args = [a for cfg in args.config for a in ("--config", cfg)]
    cli = build_cli_class()(args=cli_args, run=False)
    module = cli.model
    module.configure_model()
    try:
        checkpoint = torch.load(args.ckpt_path, map_location="cpu", weights_only=False)
        state = checkpoint["state_dict"]
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's input
        raise ConfigError(f"cannot read checkpoint {args.ckpt_path}: {err}") from err
    missing, unexpected = module.load_state_dict(state, strict=False)
    model_missing = [k for k in missing if k.startswith("model.")]
    if model_missing or unexpected:
        raise ConfigError(
            f"checkpoint {args.ckpt_path} does not match the model built from {args.config}: "
            f"{len(model_missing)} missing keys (e.g. {model_missing[:3]}), "
            f"{len(unexpected)} unexpected keys (e.g. {list(unexpected)[:3]})"
        )
    export_cfg = cli.config.get("export") or {}
    out = args.output or export_cfg.get("dirpath") or os.path.join(cli.trainer.default_root_dir, "export")
    written = module.export_hf(out, merge_lora=args.merge_lora or bool(export_cfg.get("merge_lora")))
    print(f"exported {args.ckpt_path} to {written}")
    return 0
