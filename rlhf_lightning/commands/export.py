"""``rlhf-lightning export``: write a Hugging Face folder from a training checkpoint.

    rlhf-lightning export --config runs/x/lightning_logs/version_0/config.yaml \\
        --ckpt_path runs/x/checkpoints/last.ckpt --output runs/x/export [--merge_lora]

The config (the one saved with the run, or the one it was started with) rebuilds the stage module;
the checkpoint's weights are loaded into it and exported atomically. The checkpoint is a ``.ckpt``
file or an FSDP2 checkpoint folder, read without running code from it
(:mod:`rlhf_lightning.checkpoint_weights`); the model is rebuilt whole in this one process, so
``--merge_lora`` also works for runs sharded with FSDP2. The output must be new, empty or an earlier
export, and must not be the current folder or contain the run's folder or the checkpoint.
"""

from __future__ import annotations

import argparse
import os
from typing import Optional, Union

from rlhf_lightning.errors import ConfigError

RUN_ONLY_OPTIONS = ("ckpt_path", "weights_only")  # saved by ``fit`` beside the run's config, not used here


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rlhf-lightning export", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", action="append", required=True, help="run config YAML (repeatable, stacked in order)")
    p.add_argument("--ckpt_path", required=True,
                   help="Lightning checkpoint to export: a .ckpt file or an FSDP2 checkpoint folder")
    p.add_argument("--output", help="export folder (default: the config's export.dirpath or <default_root_dir>/export)")
    p.add_argument("--merge_lora", action="store_true", help="merge a LoRA adapter into a full model")
    return p


def load_weights(module, ckpt_path: str, configs: list[str]) -> None:
    """Load the model weights of ``ckpt_path`` into ``module``; ConfigError naming the file when it
    cannot be read safely or does not match the model built from ``configs``."""
    from rlhf_lightning.checkpoint_weights import UnsafeCheckpoint, read_state_dict

    try:
        state = read_state_dict(ckpt_path)
    except UnsafeCheckpoint as err:
        raise ConfigError(f"refusing to load checkpoint {ckpt_path}: it holds objects that only arbitrary code "
                          f"can rebuild ({err}); stage checkpoints hold tensors and plain data only") from err
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's input
        raise ConfigError(f"cannot read checkpoint {ckpt_path}: {err}") from err
    missing, unexpected = module.load_state_dict(state, strict=False)
    model_missing = [k for k in missing if k.startswith("model.")]
    if model_missing or unexpected:
        raise ConfigError(
            f"checkpoint {ckpt_path} does not match the model built from {configs}: "
            f"{len(model_missing)} missing keys (e.g. {model_missing[:3]}), "
            f"{len(unexpected)} unexpected keys (e.g. {list(unexpected)[:3]})"
        )


def main(argv: Optional[list[str]] = None) -> int:
    args = _parser().parse_args(argv)
    for cfg in args.config:
        if not os.path.isfile(cfg):
            raise ConfigError(f"config file not found: {cfg}")
    if not os.path.exists(args.ckpt_path):
        raise ConfigError(f"checkpoint not found: {args.ckpt_path}")

    from rlhf_lightning.cli import build_cli_class
    from rlhf_lightning.output_folders import check_replaceable
    from rlhf_lightning.registry import prepare_for_parsing

    class ExportCLI(build_cli_class()):
        """The run's CLI, accepting (and ignoring) the ``fit`` options a saved config.yaml holds."""

        def add_arguments_to_parser(self, parser) -> None:
            super().add_arguments_to_parser(parser)
            for name in RUN_ONLY_OPTIONS:
                parser.add_argument(f"--{name}", type=Optional[Union[str, bool]], default=None, help="ignored")

    prepare_for_parsing()
    cli_args = [a for cfg in args.config for a in ("--config", cfg)]
    cli = ExportCLI(args=cli_args, run=False)
    export_cfg = cli.config.get("export") or {}
    out = args.output or export_cfg.get("dirpath") or os.path.join(cli.trainer.default_root_dir, "export")
    check_replaceable(out, "export", [cli.trainer.default_root_dir, args.ckpt_path])  # before the slow part
    module = cli.model
    module.configure_model()
    load_weights(module, args.ckpt_path, args.config)
    written = module.export_hf(out, merge_lora=args.merge_lora or bool(export_cfg.get("merge_lora")))
    print(f"exported {args.ckpt_path} to {written}")
    return 0
