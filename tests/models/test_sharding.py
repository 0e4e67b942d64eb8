"""The FSDP2 policy on a one-process gloo group: which children become FSDP units, and what it refuses."""

from __future__ import annotations

import socket

import pytest
import torch
from torch import nn

from rlhf_lightning.errors import ConfigError
from rlhf_lightning.models.sharding import full_state_dict, is_sharded, shard_stage


@pytest.fixture(scope="module")
def mesh():
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        yield init_device_mesh("cpu", (1,))
    finally:
        dist.destroy_process_group()


class Stage(nn.Module):
    def __init__(self, model_dir):
        super().__init__()
        from transformers import AutoModelForCausalLM

        self.model = AutoModelForCausalLM.from_pretrained(model_dir)
        self.ref_model = AutoModelForCausalLM.from_pretrained(model_dir).requires_grad_(False)
        self.value_head = nn.Linear(self.model.config.hidden_size, 1)
        self.empty = nn.Identity()


def test_every_model_and_loose_module_becomes_a_unit(mesh, tiny_llama_dir):
    from torch.distributed.fsdp import FSDPModule

    stage = Stage(tiny_llama_dir)
    before = {k: v.clone() for k, v in stage.model.state_dict().items()}
    assert shard_stage(stage, mesh) == ["model", "ref_model", "value_head"]
    blocks = [m for m in stage.model.modules() if isinstance(m, FSDPModule)]
    assert len(blocks) == stage.model.config.num_hidden_layers + 1  # each decoder layer + the root
    assert is_sharded(stage.ref_model) and not is_sharded(stage.empty)
    assert shard_stage(stage, mesh) == []  # idempotent
    ids = torch.tensor([[1, 2, 3]])
    assert stage.model(input_ids=ids).logits.shape[:2] == (1, 3)
    full = full_state_dict(stage.model)
    assert full.keys() == before.keys()
    for k in before:
        torch.testing.assert_close(full[k], before[k], rtol=0, atol=0)


def test_loose_parameters_are_refused_by_name(mesh):
    class Loose(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(2, 2)
            self.temperature = nn.Parameter(torch.ones(()))

    with pytest.raises(ConfigError, match="temperature"):
        shard_stage(Loose(), mesh)


def test_strategy_options_are_checked():
    from rlhf_lightning.strategies.fsdp2 import FSDP2Strategy

    with pytest.raises(ConfigError, match="tensor_parallel_size"):
        FSDP2Strategy(tensor_parallel_size=2)
