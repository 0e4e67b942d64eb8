"""Fully sharded data parallel (FSDP2) for any stage, with no sharding code in the stage.

Lightning's :class:`~lightning.pytorch.strategies.ModelParallelStrategy` leaves the call to
``fully_shard`` to each LightningModule's ``configure_model``; this subclass applies
:func:`rlhf_lightning.models.sharding.shard_stage` itself, right after ``configure_model``, and makes
the whole world one data-parallel group unless told otherwise. It runs on CPU (gloo) as on GPUs
(NCCL); ``strategy: fsdp`` is refused by Lightning on CPU, this is not.
"""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, Optional, Union

from lightning.fabric.strategies.fsdp import _METADATA_FILENAME
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.strategies import ModelParallelStrategy
from lightning.pytorch.utilities import rank_zero_info
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.constants import default_pg_timeout

from rlhf_lightning.atomic_paths import (
    disk_full_error,
    fsync_dir,
    fsync_file,
    is_disk_full,
    remove_leftovers,
    replace_directory,
    staging_path,
)
from rlhf_lightning.errors import ConfigError


class FSDP2Strategy(ModelParallelStrategy):
    """FSDP2 over all processes (``fully_shard`` per transformer block + per model).

    Args:
        data_parallel_size: processes per data-parallel (sharding) group; ``auto`` = the world size
            divided by ``tensor_parallel_size``.
        tensor_parallel_size: kept at 1: tensor parallel plans are model specific and not applied here.
        reshard_after_forward: free the gathered weights after each block's forward (ZeRO-3-like
            memory); ``False`` keeps them until backward (ZeRO-2-like: less communication).
        cpu_offload: keep sharded parameters, gradients and optimizer state in CPU memory (GPU only).
        save_distributed_checkpoint: each rank writes its shard (a checkpoint folder); ``False``
            gathers a single full file on rank 0.

    A sharded checkpoint folder is written aside (``.<name>.tmp-<pid>-<random>``) and swapped into
    place when every shard and the metadata are on disk (:mod:`rlhf_lightning.atomic_paths`), so a
    kill while saving ``last.ckpt`` leaves the previous ``last.ckpt`` complete and loadable. A rank that
    fails to write (a full disk) stops every rank with the same error and the staging folder removed.
    """

    def __init__(
        self,
        data_parallel_size: Union[Literal["auto"], int] = "auto",
        tensor_parallel_size: int = 1,
        reshard_after_forward: bool = True,
        cpu_offload: bool = False,
        save_distributed_checkpoint: bool = True,
        process_group_backend: Optional[str] = None,
        timeout: Optional[timedelta] = default_pg_timeout,
    ) -> None:
        if tensor_parallel_size != 1:
            raise ConfigError("trainer.strategy.tensor_parallel_size: only 1 is supported (pure FSDP)")
        super().__init__(data_parallel_size=data_parallel_size, tensor_parallel_size=1,
                         save_distributed_checkpoint=save_distributed_checkpoint,
                         process_group_backend=process_group_backend, timeout=timeout)
        self.reshard_after_forward = reshard_after_forward
        self.cpu_offload = cpu_offload

    def _setup_distributed(self) -> None:
        super()._setup_distributed()
        if self._data_parallel_size == "auto":
            self._data_parallel_size = self.world_size
        if self._data_parallel_size != self.world_size:
            raise ConfigError(f"trainer.strategy.data_parallel_size={self._data_parallel_size} but there are "
                              f"{self.world_size} processes (devices x num_nodes)")

    def setup(self, trainer) -> None:
        from torch.distributed.fsdp import CPUOffloadPolicy

        from rlhf_lightning.models.sharding import shard_stage

        mesh = self.device_mesh["data_parallel"]
        offload = CPUOffloadPolicy() if self.cpu_offload else None
        names = shard_stage(self.lightning_module, mesh, reshard_after_forward=self.reshard_after_forward,
                            offload_policy=offload)
        rank_zero_info(f"FSDP2: sharded {', '.join(names) or 'nothing'} over {self.world_size} processes")
        super().setup(trainer)

    def save_checkpoint(self, checkpoint: dict[str, Any], filepath, storage_options: Optional[Any] = None) -> None:
        if not self._save_distributed_checkpoint or storage_options is not None or not _is_local_file_protocol(filepath):
            return super().save_checkpoint(checkpoint, filepath, storage_options)
        target = Path(self.broadcast(os.path.abspath(filepath)))
        staging = None
        if self.is_global_zero:
            target.parent.mkdir(parents=True, exist_ok=True)
            remove_leftovers(target)  # shards of a save that was killed
            staging = staging_path(target)
        staging = self.broadcast(staging)
        failure = None
        try:
            super().save_checkpoint(checkpoint, staging)  # every rank writes its shard; rank 0 the metadata
            if self.is_global_zero:
                fsync_file(staging / _METADATA_FILENAME)  # DCP fsyncs its shards, Lightning not its metadata
                fsync_dir(staging)
        except (Exception, CheckpointException) as exc:  # CheckpointException is a BaseException
            failure = exc
        self._stop_if_any_failed(failure, target, staging)  # also: every shard is written
        if self.is_global_zero:
            replace_directory(staging, target)
        self.barrier("sharded checkpoint in place")

    def _stop_if_any_failed(self, failure: Optional[BaseException], target: Path, staging: Path) -> None:
        """Every rank learns whether any failed to write its part (none waits at a barrier for a rank
        that stopped), and all stop: the staging folder is removed, the previous checkpoint stays; a
        full disk on any rank is a DiskFullError."""
        if not self.reduce_boolean_decision(failure is not None, all=False):
            return
        disk_full = self.reduce_boolean_decision(failure is not None and is_disk_full(failure), all=False)
        if self.is_global_zero:
            shutil.rmtree(staging, ignore_errors=True)
        if disk_full:
            raise disk_full_error("checkpoint", target, "folder") from failure
        if failure is not None:
            raise failure
        raise RuntimeError(f"another process failed to write its part of the checkpoint {target}")
