"""The Trainer the CLI builds: Lightning's, plus ``precision: auto`` (see :mod:`rlhf_lightning.precision`)."""

from __future__ import annotations

import os
import typing
from typing import Any, Literal, Optional, Union

from lightning.pytorch import Trainer
from lightning.pytorch.utilities import rank_zero_info

from rlhf_lightning.precision import AUTO, resolve_auto_precision

_LIGHTNING_PRECISION = typing.get_type_hints(Trainer.__init__)["precision"]
#: Lightning's own precision values (a Literal union, validated when the config is parsed), plus "auto"
PrecisionArg = Optional[Union[_LIGHTNING_PRECISION, Literal["auto"]]]


class RLHFTrainer(Trainer):
    """A :class:`~lightning.pytorch.Trainer` that also takes ``precision="auto"``: ``bf16-mixed`` on
    GPUs with bfloat16 and on CPUs with native bf16 matmul, ``16-mixed`` on older GPUs, else
    ``32-true``. The choice, and the CPU or GPU feature it was made by, is logged once.

    The run's saved ``config.yaml`` keeps ``auto``, so the same config picks again on whatever
    machine runs it next, a resumed run (``--ckpt_path``) included.

    ``ckpt_path="last"`` with no last checkpoint to find is a :class:`~rlhf_lightning.errors.ConfigError`
    (Lightning only warns and trains from scratch, overwriting the run's checkpoints).
    """

    def __init__(self, *, precision: PrecisionArg = None, **kwargs: Any) -> None:
        if precision == AUTO:
            choice = resolve_auto_precision(kwargs.get("accelerator", "auto"))
            rank_zero_info(f"precision auto -> {choice.precision}: {choice.reason}")
            precision = choice.precision
        super().__init__(precision=precision, **kwargs)

    def fit(self, *args: Any, **kwargs: Any) -> None:
        self._require_last_checkpoint(kwargs.get("ckpt_path"), "fit")
        return super().fit(*args, **kwargs)

    def validate(self, *args: Any, **kwargs: Any):
        self._require_last_checkpoint(kwargs.get("ckpt_path"), "validate")
        return super().validate(*args, **kwargs)

    def test(self, *args: Any, **kwargs: Any):
        self._require_last_checkpoint(kwargs.get("ckpt_path"), "test")
        return super().test(*args, **kwargs)

    def predict(self, *args: Any, **kwargs: Any):
        self._require_last_checkpoint(kwargs.get("ckpt_path"), "predict")
        return super().predict(*args, **kwargs)

    def _require_last_checkpoint(self, ckpt_path: Any, command: str) -> None:
        """Where Lightning looks for ``ckpt_path="last"`` (each ModelCheckpoint's folder, an
        OnExceptionCheckpoint's file), checked before the run starts."""
        if ckpt_path != "last":
            return
        from lightning.pytorch.callbacks import ModelCheckpoint, OnExceptionCheckpoint

        from rlhf_lightning.errors import ConfigError

        found, places = [], []
        for callback in self.callbacks:
            if isinstance(callback, OnExceptionCheckpoint):
                found += [callback.ckpt_path] if os.path.exists(callback.ckpt_path) else []
                places.append(callback.ckpt_path)
            elif isinstance(callback, ModelCheckpoint):
                found += list(callback._find_last_checkpoints(self))
                places.append(callback.dirpath or "the logger's new version folder (a ModelCheckpoint without "
                                                   "dirpath saves into a new folder every run)")
        if not found:
            where = "; ".join(places) or "nowhere: the run has no ModelCheckpoint"
            raise ConfigError(f"{command} --ckpt_path last: there is no last checkpoint to continue from (looked in "
                              f"{where}). Leave --ckpt_path out to start from scratch, or give a checkpoint file")
