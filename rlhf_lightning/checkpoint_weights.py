"""The model weights of a stage checkpoint, read without running code from the file.

Two layouts (both written by ``fit``):

* a Lightning ``.ckpt`` file (single process, DDP, FSDP2 with ``save_distributed_checkpoint: false``):
  read with ``torch.load(weights_only=True, mmap=True)``, torch's unpickler that only rebuilds
  tensors, containers and the classes a stage registers as safe (its option dataclasses);
* an FSDP2 checkpoint folder (``torch.distributed.checkpoint``: ``.metadata``, ``__<rank>_0.distcp``
  shards, Lightning's ``meta.pt``): the index is unpickled with an allow-list of DCP's own metadata
  classes (DCP itself uses plain ``pickle.load``), and only the tensors under ``state_dict.`` are read,
  whole, in this one process. Entries that DCP would ``torch.load(weights_only=False)`` (non-tensor
  values) and ``meta.pt`` are never loaded.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

METADATA_FILE = ".metadata"
_PREFIX = "state_dict."
_DCP_METADATA = "torch.distributed.checkpoint.metadata"
_ALLOWED = {
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
    ("torch.serialization", "_get_layout"),
    ("torch", "Size"),
    ("collections", "OrderedDict"),
    ("pathlib", "PosixPath"),
    ("pathlib", "WindowsPath"),
    ("pathlib", "PurePosixPath"),
    ("pathlib", "PureWindowsPath"),
}


class UnsafeCheckpoint(Exception):
    """The checkpoint asks to rebuild something other than tensors and plain data."""


class _IndexUnpickler(pickle.Unpickler):
    """Unpickles a DCP ``.metadata`` index: DCP's metadata classes, torch dtypes/sizes, paths."""

    def find_class(self, module: str, name: str) -> Any:
        if module == _DCP_METADATA or (module, name) in _ALLOWED or module == "torch":
            found = super().find_class(module, name)
            if (module, name) in _ALLOWED or isinstance(found, (torch.dtype, torch.layout, torch.memory_format)):
                return found
            if module == _DCP_METADATA and isinstance(found, type) and found.__module__ == _DCP_METADATA:
                return found
        raise UnsafeCheckpoint(f"its index asks for {module}.{name}, which a checkpoint index never holds")


def is_sharded_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a ``torch.distributed.checkpoint`` folder."""
    return (Path(path) / METADATA_FILE).is_file()


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The module ``state_dict`` saved in the checkpoint file or FSDP2 folder ``path``, on CPU.

    Raises :class:`UnsafeCheckpoint` for content that needs arbitrary code to rebuild, and what
    torch raises for unreadable files (the caller names the file)."""
    if Path(path).is_dir():
        return _read_sharded(Path(path))
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpoint(_unpickler_reason(exc)) from exc
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise ValueError("it holds no 'state_dict' (not a Lightning checkpoint)")
    return checkpoint["state_dict"]


def _unpickler_reason(exc: Exception) -> str:
    """What torch's weights-only unpickler refused, from its (long, version-dependent) message."""
    text = str(exc)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return f"it asks for {found.group(1)}"
    return next((line.strip() for line in text.splitlines() if "WeightsUnpickler error" in line),
                text.splitlines()[0] if text else type(exc).__name__)


def _read_metadata(folder: Path) -> Any:
    with open(folder / METADATA_FILE, "rb") as f:
        return _IndexUnpickler(f).load()


def _read_sharded(folder: Path) -> dict[str, torch.Tensor]:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import StorageMeta, TensorStorageMetadata

    if not is_sharded_checkpoint(folder):
        raise ValueError(f"it is a folder without {METADATA_FILE} (not a torch.distributed.checkpoint folder)")
    metadata = _read_metadata(folder)

    class Reader(dcp.FileSystemReader):
        def read_metadata(self, *args: Any, **kwargs: Any) -> Any:  # the index read above, not pickle.load
            if getattr(metadata, "storage_meta", None) is None:
                metadata.storage_meta = StorageMeta()
            metadata.storage_meta.load_id = self.load_id
            return metadata

    state = {key[len(_PREFIX):]: torch.empty(meta.size, dtype=meta.properties.dtype)
             for key, meta in metadata.state_dict_metadata.items()
             if key.startswith(_PREFIX) and isinstance(meta, TensorStorageMetadata)}
    if not state:
        raise ValueError("its index holds no model tensors (no 'state_dict.' entries)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no process group: loading in a single process" is what we want
        dcp.load({"state_dict": state}, storage_reader=Reader(folder), no_dist=True)
    return state
