"""Checks on what reward and constraint plugins return: one finite number per sample, or a clear error.

Both the scoring command and the PPO stage call plugins through :func:`checked_scores`, so a plugin
that returns the wrong number of values, NaN, inf, a string, a bool, or that raises, produces a
:class:`~rlhf_lightning.errors.PluginError` naming the plugin and the offending sample. Nothing is
silently coerced into a number.
"""

from __future__ import annotations

import http.client
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any, Optional

from rlhf_lightning.errors import PluginError, RLHFError

#: failures of the environment (network, files, memory), not of a sample: never re-run per sample
ENVIRONMENT_ERRORS = (OSError, MemoryError, http.client.HTTPException)


def _plugin_label(plugin: Any, name: str | None) -> str:
    if name:
        return name
    from rlhf_lightning import registry

    return registry.describe(plugin)


def _sample_hint(prompts: Sequence[str] | None, index: int, offset: int = 0) -> str:
    if prompts is None or index >= len(prompts):
        return f"sample {index + offset}"
    text = str(prompts[index])
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"sample {index + offset} (prompt {text!r})"


def validate_scores(values: Any, n: int, *, plugin: str, what: str = "score",
                    prompts: Sequence[str] | None = None, offset: int = 0,
                    invalid: Optional[list[int]] = None) -> list[float]:
    """Return ``values`` as ``n`` Python floats, or raise :class:`PluginError` naming ``plugin`` and the sample.

    Accepted: a list/tuple of real numbers (numpy scalars included), or a 1-D tensor/array of a
    real dtype with shape ``(n,)``. Refused: another length or shape, bools, strings, ``None``,
    complex numbers, NaN and ±inf. Samples are numbered from ``offset`` in messages (the position
    of the batch in a file). With an ``invalid`` list, NaN and ±inf are not an error: they become
    ``0.0`` and their positions (from 0) are appended to ``invalid`` (reward ``on_invalid: skip``).
    """
    if hasattr(values, "detach"):  # torch.Tensor, without importing torch here
        if values.dtype.is_complex or values.dtype == __import__("torch").bool:
            raise PluginError(f"{plugin} returned a tensor of dtype {values.dtype}; expected one real {what} per sample")
        if values.dim() != 1:
            raise PluginError(f"{plugin} returned a tensor of shape {tuple(values.shape)}; expected ({n},)")
        values = values.detach().cpu().tolist()
    elif hasattr(values, "dtype") and hasattr(values, "tolist"):  # numpy arrays
        if values.dtype.kind not in "iuf":
            raise PluginError(f"{plugin} returned an array of dtype {values.dtype}; expected real numbers")
        if values.ndim != 1:
            raise PluginError(f"{plugin} returned an array of shape {values.shape}; expected ({n},)")
        values = values.tolist()
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise PluginError(f"{plugin} returned {type(values).__name__}; expected a list of {n} {what}s "
                          "(one per sample) or a 1-D tensor")
    if len(values) != n:
        raise PluginError(f"{plugin} returned {len(values)} {what}s for {n} samples; expected exactly one per sample")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise PluginError(f"{plugin} returned a non-numeric {what} {v!r} ({type(v).__name__}) for "
                              f"{_sample_hint(prompts, i, offset)}")
        f = float(v)
        if not math.isfinite(f) and invalid is not None:
            invalid.append(i)
            f = 0.0
        elif not math.isfinite(f):
            raise PluginError(f"{plugin} returned a non-finite {what} ({f}) for {_sample_hint(prompts, i, offset)}")
        out.append(f)
    return out


def _slice_columns(columns: dict[str, Any], i: int) -> dict[str, Any]:
    return {k: [v[i]] if isinstance(v, Sequence) and not isinstance(v, (str, bytes)) else v
            for k, v in columns.items()}


def checked_scores(plugin: Callable[..., Any], prompts: Sequence[str], completions: Sequence[str],
                   columns: dict[str, Any] | None = None, *, name: str | None = None, what: str = "score",
                   offset: int = 0, invalid: Optional[list[int]] = None) -> list[float]:
    """Call ``plugin(prompts, completions, **columns)`` (a reward or constraint) and validate its output.

    ``name`` labels the plugin in errors (default: its entry-point name and class path); ``what``
    is the word for one value (``"score"``, ``"cost"``); ``offset`` numbers samples in messages;
    ``invalid`` collects non-finite values instead of raising (see :func:`validate_scores`).

    An exception raised inside the plugin is wrapped in :class:`PluginError` with the plugin's name.
    A bug that some sample may trigger is then located by re-running the batch one sample at a
    time, up to the first that fails. Not for :class:`~rlhf_lightning.errors.RLHFError` (it carries
    its own explanation) nor for :data:`ENVIRONMENT_ERRORS` (a network or disk failure is no
    sample's fault, and re-running would repeat it once per sample).
    """
    prompts, completions, columns = list(prompts), list(completions), dict(columns or {})
    n = len(prompts)
    if len(completions) != n:
        raise PluginError(f"{len(prompts)} prompts but {len(completions)} completions")
    label = _plugin_label(plugin, name)
    try:
        values = plugin(prompts, completions, **columns)
    except RLHFError as exc:
        raise PluginError(f"{label} failed: {exc}") from exc
    except ENVIRONMENT_ERRORS as exc:
        raise PluginError(f"{label} raised {type(exc).__name__}: {exc} (on the batch of {n})") from exc
    except Exception as exc:  # noqa: BLE001 - any plugin bug becomes one clear error
        where = "the batch"
        if n > 1:
            for i in range(n):
                try:
                    plugin(prompts[i:i + 1], completions[i:i + 1], **_slice_columns(columns, i))
                except Exception:  # noqa: BLE001
                    where = _sample_hint(prompts, i, offset)
                    break
        else:
            where = _sample_hint(prompts, 0, offset)
        raise PluginError(f"{label} raised {type(exc).__name__}: {exc} (on {where})") from exc
    return validate_scores(values, n, plugin=label, what=what, prompts=prompts, offset=offset, invalid=invalid)
