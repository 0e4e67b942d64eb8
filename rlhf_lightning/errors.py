"""User-facing errors.

Anything that is the user's fault (a missing file, a bad column, a bad option) raises a subclass of
:class:`RLHFError`. The CLI prints such errors as one clear message, without a Python traceback, and
exits non-zero; ``RLHF_LIGHTNING_TRACEBACK=1`` (or ``--traceback``) shows the traceback too.
"""

from __future__ import annotations


class RLHFError(Exception):
    """Base class of errors caused by user input; the message names the cause."""


class ConfigError(RLHFError):
    """A bad option or option combination."""


class DataError(RLHFError):
    """A bad, missing or empty data file, column, row or field."""


class ModelError(RLHFError):
    """A model or tokenizer that cannot be found or loaded as asked."""


class PluginError(RLHFError):
    """A plugin that cannot be found, loaded, or that returned bad output."""


class ExportError(RLHFError):
    """An export that cannot be written; the previous export is left in place."""


class DiskFullError(RLHFError):
    """No space left (or the disk quota exceeded) while writing a checkpoint or an output; the
    previous one is left in place and the partial file or folder removed."""
