"""Resolve a training step's config exactly as ``rlhf-lightning fit`` would, without running it.

The step's command line (its configs stacked, then its overrides) goes through the project's
LightningCLI parser in this process; parsing stops before any class is instantiated, so no model
is loaded. From the resolved config come the step's folders (run folder, export folder, the
``last.ckpt`` its ModelCheckpoint writes) and its *key*: a hash of the resolved config (without the
config-file paths, which say where options came from, not what they are) and of the keys of the
steps it depends on — so a changed option reruns the step and every step after it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rlhf_lightning.errors import ConfigError

_VOLATILE = ("config", "ckpt_path")  # where options were read from, and where to resume: not the run itself


@dataclass
class Resolved:
    """What the pipeline needs of one resolved training step."""

    key: str
    run_dir: str
    export_dir: Optional[str]  # None when the step's export is disabled
    last_checkpoint: Optional[str]  # the ``last.ckpt`` a ModelCheckpoint with ``save_last`` writes


def override_args(overrides: dict[str, Any]) -> list[str]:
    """``{"a.b": v}`` -> ``["--a.b=v"]``; non-string values as JSON (valid YAML for the parser)."""
    args = []
    for key, value in overrides.items():
        text = value if isinstance(value, str) else json.dumps(value)
        args.append(f"--{key}={text}")
    return args


class _Parsed(Exception):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__("parsed")
        self.config = config


def resolve_fit(argv: list[str]) -> dict[str, Any]:
    """The resolved ``fit`` config (a plain dict) of the command line ``argv`` (after ``fit``)."""
    from jsonargparse import ArgumentError

    from rlhf_lightning.cli import build_cli_class
    from rlhf_lightning.registry import prepare_for_parsing

    prepare_for_parsing()

    class ParseOnly(build_cli_class()):
        def before_instantiate_classes(self) -> None:
            raise _Parsed(self.config.clone().as_dict())

    seed_logger = logging.getLogger("lightning.fabric.utilities.seed")
    level, saved_argv = seed_logger.level, sys.argv
    seed_logger.setLevel(logging.WARNING)  # parsing seeds the process ("Seed set to 0"): noise here
    sys.argv = ["rlhf-lightning", "fit", *argv]  # parsed from sys.argv, as the console script does
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            ParseOnly(args=None, parser_kwargs={"exit_on_error": False})
    except _Parsed as parsed:
        return parsed.config["fit"]
    except ArgumentError as exc:
        raise ConfigError(condense_parser_error(str(exc))) from exc
    except SystemExit as exc:
        raise ConfigError(stderr.getvalue().strip().splitlines()[-1] if stderr.getvalue().strip()
                          else f"the config parser stopped (status {exc.code})") from exc
    finally:
        sys.argv = saved_argv
        seed_logger.setLevel(level)
    raise AssertionError("unreachable: the parser returned without reaching instantiation")


_NOISE = ("Does not validate against any of the Union subtypes", "Subtypes:", "Errors:", "Given value type:",
          "- Expected a <class 'NoneType'>")


def condense_parser_error(message: str) -> str:
    """jsonargparse's multi-line error (union subtypes, value types) as one line with the causes."""
    lines = [ln.strip() for ln in message.strip().splitlines()]
    kept = [ln.removeprefix("- ") for ln in lines if ln and not ln.startswith(_NOISE)]
    return " ".join(kept) or "invalid config"


def resolve_sample(argv: list[str], command: str = "sample") -> dict[str, Any]:
    """The resolved config (a plain dict) of a data command's line ``argv`` (after ``sample`` or
    ``constitution``), parsed by the command's own parser without instantiating its plugins."""
    import importlib

    from jsonargparse import ArgumentError

    build_parser = importlib.import_module(f"rlhf_lightning.commands.{command}").build_parser
    try:
        return build_parser().parse_args(argv).as_dict()
    except ArgumentError as exc:
        raise ConfigError(condense_parser_error(str(exc))) from exc


def config_key(config: dict[str, Any], upstream_keys: list[str]) -> str:
    """A hash of a resolved config (without the volatile options) and its dependencies' keys."""
    content = {k: v for k, v in config.items() if k not in _VOLATILE}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode())
    for key in upstream_keys:
        digest.update(key.encode())
    return digest.hexdigest()[:16]


def describe_sample(config: dict[str, Any], upstream_keys: list[str], log_dir: str) -> Resolved:
    """Folders and key of a resolved ``sample`` (or ``constitution``) config: its output is the step's export, and its
    log and running state go to ``log_dir`` (never into the output, which is replaced whole)."""
    return Resolved(key=config_key(config, upstream_keys), run_dir=log_dir, export_dir=str(config["output"]),
                    last_checkpoint=None)


def describe_resolved(config: dict[str, Any], upstream_keys: list[str]) -> Resolved:
    """Folders and key of a resolved ``fit`` config; ``upstream_keys`` are its dependencies' keys."""
    trainer = config.get("trainer") or {}
    run_dir = str(trainer.get("default_root_dir") or os.getcwd())
    export = config.get("export") or {}
    export_dir = None
    if export.get("enabled", True):
        export_dir = str(export.get("dirpath") or Path(run_dir) / "export")
    return Resolved(key=config_key(config, upstream_keys), run_dir=run_dir, export_dir=export_dir,
                    last_checkpoint=_last_checkpoint(trainer.get("callbacks") or []))


def _last_checkpoint(callbacks: list[Any]) -> Optional[str]:
    for callback in callbacks:
        if not isinstance(callback, dict) or not str(callback.get("class_path", "")).endswith("ModelCheckpoint"):
            continue
        init = callback.get("init_args") or {}
        if init.get("save_last") and init.get("dirpath"):
            return str(Path(init["dirpath"]) / "last.ckpt")
    return None
