"""Parsing for the plain (non-Lightning) commands: a jsonargparse parser's errors as ConfigError."""

from __future__ import annotations

from typing import Any, Optional

from rlhf_lightning.errors import ConfigError


def parse_and_instantiate(parser: Any, argv: Optional[list[str]], what: str) -> Any:
    """Parse ``argv`` and instantiate its plugins; a bad option, or a plugin constructor refusing its
    ``init_args`` (TypeError/ValueError), becomes ``ConfigError("invalid <what> config: ...")``."""
    from jsonargparse import ArgumentError

    try:
        return parser.instantiate(parser.parse_args(argv))
    except (ArgumentError, TypeError, ValueError) as exc:
        raise ConfigError(f"invalid {what} config: {exc}") from exc
