"""The Trainer the CLI builds: Lightning's, plus ``precision: auto`` (see :mod:`rlhf_lightning.precision`)."""

from __future__ import annotations

import typing
from typing import Any, Literal, Optional, Union

from lightning.pytorch import Trainer
from lightning.pytorch.utilities import rank_zero_info

from rlhf_lightning.precision import AUTO, resolve_auto_precision

#: Lightning's own precision values (a Literal union, validated when the config is parsed), plus "auto"
PrecisionArg = Optional[Union[typing.get_type_hints(Trainer.__init__)["precision"], Literal["auto"]]]


class RLHFTrainer(Trainer):
    """A :class:`~lightning.pytorch.Trainer` that also takes ``precision="auto"``: ``bf16-mixed`` on
    GPUs with bfloat16 and on CPUs with native bf16 matmul, ``16-mixed`` on older GPUs, else
    ``32-true``. The choice, and the CPU or GPU feature it was made by, is logged once.

    The run's saved ``config.yaml`` keeps ``auto``, so the same config picks again on whatever
    machine runs it next, a resumed run (``--ckpt_path``) included.
    """

    def __init__(self, *, precision: PrecisionArg = None, **kwargs: Any) -> None:
        if precision == AUTO:
            choice = resolve_auto_precision(kwargs.get("accelerator", "auto"))
            rank_zero_info(f"precision auto -> {choice.precision}: {choice.reason}")
            precision = choice.precision
        super().__init__(precision=precision, **kwargs)
