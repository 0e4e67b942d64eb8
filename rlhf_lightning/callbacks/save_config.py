"""The run's saved ``config.yaml`` without secrets (see :mod:`rlhf_lightning.redaction`).

Lightning's :class:`~lightning.pytorch.cli.SaveConfigCallback` writes the parsed config into the
run's log folder. This subclass hands it a redacted copy instead: a literal ``Authorization``
header, a password or a token in a URL is written as ``<redacted>``; the run itself still uses the
real values. Secrets that must survive a rerun belong in environment variables named in the config.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.cli import SaveConfigCallback

from rlhf_lightning.redaction import redact_config


class RedactedSaveConfig(SaveConfigCallback):
    """:class:`SaveConfigCallback` that saves the config with secrets replaced by ``<redacted>``."""

    def __init__(self, parser: Any, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(parser, redact_config(config), *args, **kwargs)
