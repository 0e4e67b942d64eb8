"""Training curves of a stage from its TensorBoard event files.

A stage run with ``trainer.default_root_dir: runs/demo/sft`` logs to
``runs/demo/sft/lightning_logs/version_<k>/events.out.tfevents.*``; the highest ``k`` is the latest
run. Lightning names a metric logged both per step and per epoch ``<tag>_step`` / ``<tag>_epoch``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from rlhf_lightning.errors import ConfigError

#: the curves worth a plot, whichever of them a stage logged (plus any Lagrange multiplier λ tag)
PLOTTED_TAGS = ("train/loss", "val/loss", "train/accuracy", "val/accuracy", "train/reward", "val/reward",
                "train/kl", "val/kl")
_SUFFIX = re.compile(r"_(step|epoch)$")
_SKIPPED = ("epoch", "hp_metric")


def plotted(tag: str) -> bool:
    """Whether ``tag`` is among :data:`PLOTTED_TAGS` (ignoring a ``_step``/``_epoch`` suffix) or
    names a Lagrange multiplier (``lambda`` or ``λ`` in it)."""
    return _SUFFIX.sub("", tag) in PLOTTED_TAGS or "lambda" in tag.lower() or "λ" in tag


@dataclass
class StageCurves:
    """Every scalar series of one stage's latest run: ``tag -> (steps, values)``."""

    stage: str
    folder: str
    log_dir: Optional[str] = None
    series: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)

    def final(self) -> dict[str, float]:
        """The value logged at the highest step of each series (the last one written among equals)."""
        out = {}
        for tag, (steps, values) in sorted(self.series.items()):
            best = max(range(len(steps)), key=lambda i: (steps[i], i))
            out[tag] = values[best]
        return out

    def plotted(self) -> dict[str, tuple[list[int], list[float]]]:
        return {tag: s for tag, s in sorted(self.series.items()) if plotted(tag)}


def _has_events(folder: Path) -> bool:
    return any(p.name.startswith("events.out.tfevents") for p in folder.iterdir() if p.is_file())


def latest_log_dir(folder: str | Path) -> Optional[Path]:
    """The event-file folder of the latest run under a stage folder: ``lightning_logs/version_<max k>``
    (or the folder itself when it holds event files); None when there is none."""
    folder = Path(folder)
    versions = []
    logs = folder / "lightning_logs"
    if logs.is_dir():
        for child in logs.iterdir():
            m = re.fullmatch(r"version_(\d+)", child.name)
            if m and child.is_dir() and _has_events(child):
                versions.append((int(m.group(1)), child))
    if versions:
        return max(versions)[1]
    return folder if folder.is_dir() and _has_events(folder) else None


def read_scalars(log_dir: str | Path) -> dict[str, tuple[list[int], list[float]]]:
    """Every scalar series of the event files in ``log_dir`` (all points kept), ``tag -> (steps, values)``."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={SCALARS: 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags().get(SCALARS, []):
        if tag in _SKIPPED:
            continue
        events = acc.Scalars(tag)
        out[tag] = ([int(e.step) for e in events], [float(e.value) for e in events])
    return out


def check_log_folders(logs: dict[str, str]) -> None:
    """ConfigError naming the stage when a ``logs`` folder does not exist (checked before any work)."""
    for stage, folder in logs.items():
        if not Path(folder).is_dir():
            raise ConfigError(f"logs.{stage}: folder {folder} does not exist (a stage's trainer.default_root_dir)")


def stage_curves(stage: str, folder: str | Path) -> StageCurves:
    """The curves of a stage's latest run; empty ``series`` (and no ``log_dir``) when it logged none."""
    log_dir = latest_log_dir(folder)
    if log_dir is None:
        return StageCurves(stage, str(folder))
    return StageCurves(stage, str(folder), str(log_dir), read_scalars(log_dir))
