"""The ``rlhf-lightning`` command: LightningCLI for the stages, plus a few plain commands.

``rlhf-lightning fit|validate|test|predict --config run.yaml`` runs a stage (model and data chosen by
``class_path``). ``plugins``, ``score``, ``export``, ``evaluate``, ``sample`` and ``pipeline`` are commands of
their own. User errors print one message and exit with status 2; ``--traceback`` or
``RLHF_LIGHTNING_TRACEBACK=1`` shows the Python traceback as well. SIGTERM or Ctrl-C during ``fit``
saves a checkpoint at the end of the optimizer step and exits with 143 or 130 (128 + the signal;
:mod:`rlhf_lightning.callbacks.interrupt`).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Optional

TRACEBACK_ENV = "RLHF_LIGHTNING_TRACEBACK"
COMMANDS = {
    "plugins": "rlhf_lightning.commands.plugins",
    "score": "rlhf_lightning.commands.score",
    "export": "rlhf_lightning.commands.export",
    "evaluate": "rlhf_lightning.commands.evaluate",
    "sample": "rlhf_lightning.commands.sample",
    "pipeline": "rlhf_lightning.commands.pipeline",
    "ratings": "rlhf_lightning.commands.ratings",
    "constitution": "rlhf_lightning.commands.constitution",
}


def _tokenizer_of(model: Any) -> Optional[str]:
    """The tokenizer a stage's model uses: ``policy.tokenizer`` or the policy's own folder/hub id."""
    init_args = getattr(model, "init_args", None)
    spec = getattr(init_args, "policy", None) or getattr(init_args, "backbone", None)
    if spec is None:
        return None
    tokenizer = getattr(spec, "tokenizer", None)
    if tokenizer:
        return tokenizer
    name = getattr(spec, "name_or_path", None)
    if name:
        return name
    init_config = getattr(spec, "init_config", None)
    return init_config if isinstance(init_config, str) else None


def _chat_template_of(model: Any) -> Optional[str]:
    """The ``chat_template`` option of a stage's ``policy`` (or ``backbone``), for the data module."""
    init_args = getattr(model, "init_args", None)
    spec = getattr(init_args, "policy", None) or getattr(init_args, "backbone", None)
    return getattr(spec, "chat_template", None)


def build_cli_class():
    """Import Lightning lazily so ``rlhf-lightning plugins`` stays fast."""
    from lightning.pytorch.cli import LightningCLI

    from rlhf_lightning.callbacks.export import HFExport
    from rlhf_lightning.callbacks.interrupt import GracefulInterrupt
    from rlhf_lightning.callbacks.nonfinite import NonFiniteGuard
    from rlhf_lightning.callbacks.predictions import JSONLPredictionWriter
    from rlhf_lightning.callbacks.random_state import RandomStateCheckpoint
    from rlhf_lightning.callbacks.save_config import RedactedSaveConfig
    from rlhf_lightning.callbacks.throughput import TokenThroughput
    from rlhf_lightning.checkpoint_io import NoResaveOnResume, use_atomic_checkpoints
    from rlhf_lightning.config_errors import as_config_error
    from rlhf_lightning.trainer import RLHFTrainer

    class RLHFCLI(LightningCLI):
        """LightningCLI with the project's links, export, prediction and non-finite-step options,
        ``trainer.precision: auto`` (:class:`RLHFTrainer`), random states in checkpoints, atomic
        checkpoint files unless the run configures its own ``CheckpointIO``, and a checkpoint on
        SIGTERM / Ctrl-C (:class:`GracefulInterrupt`)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("trainer_class", RLHFTrainer)
            kwargs.setdefault("subclass_mode_model", True)
            kwargs.setdefault("subclass_mode_data", True)
            kwargs.setdefault("save_config_callback", RedactedSaveConfig)  # no secrets in config.yaml
            kwargs.setdefault("save_config_kwargs", {"overwrite": True})
            kwargs.setdefault("auto_configure_optimizers", False)
            super().__init__(*args, **kwargs)

        def add_arguments_to_parser(self, parser) -> None:
            parser.add_lightning_class_args(HFExport, "export")
            parser.add_lightning_class_args(JSONLPredictionWriter, "predictions")
            parser.add_lightning_class_args(NonFiniteGuard, "nonfinite")
            # One source of truth: the data module tokenises with the model's tokenizer.
            parser.link_arguments("model", "data.init_args.tokenizer", compute_fn=_tokenizer_of, apply_on="parse")
            parser.link_arguments("model", "data.init_args.chat_template", compute_fn=_chat_template_of,
                                  apply_on="parse")

        def instantiate_classes(self) -> None:
            # jsonargparse wraps a plugin's or option dataclass's ConfigError in union-type errors (a
            # traceback, exit 1): report the user error alone, named by its config path (exit 2).
            try:
                super().instantiate_classes()
            except Exception as exc:
                config = getattr(self, "config", None)
                if config is not None and getattr(self, "subcommand", None):
                    config = config.get(self.subcommand)  # paths as the user writes them: model.…, not fit.model.…
                err = as_config_error(exc, config)
                if err is None:
                    raise
                raise err from err.__cause__

        def instantiate_trainer(self, **kwargs: Any):
            trainer = super().instantiate_trainer(**kwargs)
            use_atomic_checkpoints(trainer)
            trainer.callbacks.append(NoResaveOnResume())
            trainer.callbacks.append(RandomStateCheckpoint())
            trainer.callbacks.append(TokenThroughput())  # train/tokens_per_sec of token batches
            trainer.callbacks.append(GracefulInterrupt())  # SIGTERM/Ctrl-C: checkpoint, exit 143/130
            return trainer

    return RLHFCLI


def _user_error_types() -> tuple[type, ...]:
    from rlhf_lightning.errors import RLHFError

    return (RLHFError,)


def _check_config_files(argv: list[str]) -> None:
    """Config files (``--config X``, ``--config=X``, ``-c X``) must be UTF-8: the parsers raise a bare
    ``UnicodeDecodeError`` (a traceback) or name no position. ConfigError naming file, byte and line."""
    from rlhf_lightning.data.text_files import check_utf8
    from rlhf_lightning.errors import ConfigError

    for i, arg in enumerate(argv):
        path = arg.split("=", 1)[1] if arg.startswith("--config=") else None
        if arg in ("--config", "-c") and i + 1 < len(argv):
            path = argv[i + 1]
        if path and os.path.isfile(path):
            check_utf8(path, error=ConfigError)


def main(argv: Optional[list[str]] = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    from_sys_argv = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    show_traceback = os.environ.get(TRACEBACK_ENV, "") not in ("", "0")
    if "--traceback" in argv:
        argv.remove("--traceback")
        show_traceback = True
    try:
        _check_config_files(argv)
        if argv and argv[0] in COMMANDS:
            import importlib

            return int(importlib.import_module(COMMANDS[argv[0]]).main(argv[1:]) or 0)
        from rlhf_lightning.registry import prepare_for_parsing

        prepare_for_parsing()
        if from_sys_argv:  # LightningCLI warns when given args while sys.argv has some too
            sys.argv[1:] = argv
        build_cli_class()(args=None if from_sys_argv else argv)
        return 0
    except SystemExit as exit_:  # argument errors: jsonargparse already printed the message
        if isinstance(exit_.code, str):
            print(f"rlhf-lightning: error: {exit_.code}", file=sys.stderr)
            return 2
        return 0 if exit_.code is None else int(exit_.code)
    except _user_error_types() as err:
        if show_traceback:  # the traceback as well; the status stays 2
            import traceback

            traceback.print_exc()
            print(f"rlhf-lightning: error: {err}", file=sys.stderr)
            return 2
        print(f"rlhf-lightning: error: {err}", file=sys.stderr)
        print(f"(set {TRACEBACK_ENV}=1 or pass --traceback for the Python traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def run() -> None:  # console-script entry point
    sys.exit(main())


if __name__ == "__main__":
    run()
