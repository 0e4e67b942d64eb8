"""User-facing errors.

Anything that is the user's fault (a missing file, a bad column, a bad option) raises a subclass of
:class:`RLHFError`. The CLI prints such errors as one clear message, without a Python traceback, and
exits non-zero; ``RLHF_LIGHTNING_TRACEBACK=1`` (or ``--traceback``) shows the traceback too.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator


class RLHFError(Exception):
    """Base class of errors caused by user input; the message names the cause."""


class ConfigError(RLHFError):
    """A bad option or option combination."""


class InvalidOption(ConfigError, ValueError):
    """An option value outside its allowed range, or contradicting another option: ``"beta: must be > 0,
    got -1"``. ``owner`` is the class whose ``__init__``/``__post_init__`` refused it; the CLI uses it,
    ``option`` and ``value`` to name the full config path (``model.init_args.loss.init_args.beta``). Also a
    ``ValueError``, which these checks raised before."""

    def __init__(self, owner: object, option: str, rule: str, value: object, message: str | None = None) -> None:
        self.owner = owner if owner is None or isinstance(owner, type) else type(owner)
        self.option, self.rule, self.value = option, rule, value
        super().__init__(message or f"{option}: {rule}, got {value!r}")


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


class OptionError(ConfigError):
    """A library (torch, transformers, peft, datasets, ...) refused what an option asked for, e.g. a
    negative learning rate; ``option`` is the dotted option name, ``cause`` the library's exception."""

    def __init__(self, option: str, cause: BaseException) -> None:
        self.option, self.cause = option, cause
        detail = cause.args[0] if isinstance(cause, KeyError) and cause.args else cause
        super().__init__(f"{option}: {detail} ({type(cause).__name__})")


#: what libraries raise for arguments they refuse; also any exception class a library defines
#: (``huggingface_hub``'s config validation error, ``jinja2``'s template errors, ...)
LIBRARY_ERRORS = (ValueError, TypeError, RuntimeError, KeyError, ImportError)
LIBRARIES = ("torch", "transformers", "peft", "datasets", "huggingface_hub", "tokenizers", "jinja2", "pyarrow",
             "bitsandbytes", "accelerate", "safetensors")
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


@contextlib.contextmanager
def option_errors(option: str) -> Iterator[None]:
    """Report an exception that a library (torch, transformers, peft, datasets, ...) raises inside the
    block as the fault of ``option``: :class:`OptionError` (exit status 2) with the library's message.

    Wrap only the building of what the user configured (an optimizer, a scheduler, a model, a LoRA
    adapter). An exception raised by this package's own code (its innermost frame is here) is a bug
    and passes through with its traceback, as does any :class:`RLHFError`. Nested blocks join names:
    ``model.init_args.policy`` around ``lora`` reports ``model.init_args.policy.lora``.
    """
    try:
        yield
    except OptionError as exc:
        raise OptionError(f"{option}.{exc.option}", exc.cause) from exc.cause
    except Exception as exc:
        if isinstance(exc, RLHFError) or not _from_a_library(exc):
            raise
        raise OptionError(option, exc) from exc


def _from_a_library(exc: BaseException) -> bool:
    """A refusal raised outside this package: a :data:`LIBRARY_ERRORS` type or a class a library
    defines, whose innermost traceback frame is not in this package's code."""
    library_class = type(exc).__module__.split(".")[0] in LIBRARIES
    if not (isinstance(exc, LIBRARY_ERRORS) or library_class):
        return False
    tb = exc.__traceback__
    if tb is None:
        return True
    while tb.tb_next is not None:
        tb = tb.tb_next
    return not os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(_PACKAGE_DIR)
