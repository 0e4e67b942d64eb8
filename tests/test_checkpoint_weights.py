"""Reading a stage checkpoint's model weights without running code from it (rlhf_lightning/checkpoint_weights.py)."""

from __future__ import annotations

import pickle
import warnings

import pytest
import torch
import torch.distributed.checkpoint as dcp

from rlhf_lightning.checkpoint_weights import UnsafeCheckpoint, is_sharded_checkpoint, read_state_dict

STATE = {"model.embed.weight": torch.randn(5, 3), "model.head.weight": torch.randn(2, 3).to(torch.bfloat16),
         "model.steps": torch.arange(4)}


class Pwn:
    """Unpickling it creates the file ``path``: the proof that a loader ran code from the checkpoint."""

    def __init__(self, path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _sharded(folder, tmp_path):
    """The layout Lightning's ModelParallelStrategy writes: DCP shards of ``state_dict`` and
    ``optimizer_0``, plus ``meta.pt`` (here with a payload that must never be unpickled)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save({"state_dict": STATE, "optimizer_0": {"state": {"model.embed.weight": {"exp_avg": torch.ones(5, 3)}},
                                                      "param_groups": [{"lr": 0.1, "params": ["model.embed.weight"]}]}},
                 checkpoint_id=folder, no_dist=True)
    torch.save({"global_step": 3, "x": Pwn(tmp_path / "pwned_by_meta")}, folder / "meta.pt")
    return folder


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)


def test_a_sharded_folder_gives_exactly_the_model_tensors(tmp_path):
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    folder = _sharded(tmp_path / "last.ckpt", tmp_path)
    assert is_sharded_checkpoint(folder)
    state = read_state_dict(folder)
    assert _same(state, STATE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp_to_torch_save(folder, tmp_path / "converted.pt")  # torch's own converter agrees
    assert _same(state, torch.load(tmp_path / "converted.pt", weights_only=True)["state_dict"])
    assert not (tmp_path / "pwned_by_meta").exists()  # meta.pt is never unpickled


def test_a_sharded_index_that_would_run_code_is_refused(tmp_path):
    folder = _sharded(tmp_path / "last.ckpt", tmp_path)
    (folder / ".metadata").write_bytes(pickle.dumps(Pwn(tmp_path / "pwned")))
    with pytest.raises(UnsafeCheckpoint, match="its index asks for (builtins|io).open, which a checkpoint index never holds"):
        read_state_dict(folder)
    assert not (tmp_path / "pwned").exists()


def test_a_checkpoint_file_loads_weights_only(tmp_path):
    torch.save({"state_dict": STATE, "global_step": 2, "hyper_parameters": {"lr": 0.1}}, tmp_path / "ok.ckpt")
    assert _same(read_state_dict(tmp_path / "ok.ckpt"), STATE)
    torch.save({"state_dict": STATE, "x": Pwn(tmp_path / "pwned")}, tmp_path / "bad.ckpt")
    with pytest.raises(UnsafeCheckpoint, match="^it asks for (builtins|io).open$"):
        read_state_dict(tmp_path / "bad.ckpt")
    assert not (tmp_path / "pwned").exists()


def test_what_is_not_a_checkpoint_is_said_so(tmp_path):
    torch.save({"weights": STATE}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="no 'state_dict'"):
        read_state_dict(tmp_path / "plain.pt")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match="without .metadata"):
        read_state_dict(tmp_path / "folder")
