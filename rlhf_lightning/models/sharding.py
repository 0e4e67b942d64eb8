"""FSDP2 (``torch.distributed.fsdp.fully_shard``) for every model a stage holds.

The policy, applied to a LightningModule after its ``configure_model``:

* every Hugging Face model in it (policy, frozen reference, critic; LoRA-wrapped ones included):
  each decoder/encoder block named in the model's ``_no_split_modules`` becomes one FSDP unit,
  then the model itself (embeddings, final norm, head) becomes the root unit of that model;
  ``generate`` is registered as an FSDP forward method so decoding sees whole weights;
* every other submodule holding parameters that no unit covers (a PPO value head) becomes its own
  unit, so its gradients are reduced across the data-parallel ranks like everything else.

Frozen models are sharded too (their memory is split across ranks; no gradients flow). Models held
outside the module tree (a reward plugin's classifier) stay whole on every rank.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn


def is_sharded(module: nn.Module) -> bool:
    """True if ``module`` or one of its submodules is an FSDP2 unit."""
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(m, FSDPModule) for m in module.modules())


def _is_hf_model(module: nn.Module) -> bool:
    from transformers import PreTrainedModel

    if isinstance(module, PreTrainedModel):
        return True
    get_base = getattr(module, "get_base_model", None)  # a peft wrapper
    return callable(get_base) and isinstance(get_base(), PreTrainedModel)


def _block_classes(model: nn.Module) -> set[str]:
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return set(getattr(inner, "_no_split_modules", None) or [])


def shard_model(model: nn.Module, mesh: Any, **fsdp_kwargs: Any) -> int:
    """Shard one Hugging Face model in place (blocks, then the root); returns the number of units."""
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

    blocks = _block_classes(model)
    units = 0
    for sub in model.modules():
        if sub is not model and type(sub).__name__ in blocks:
            fully_shard(sub, mesh=mesh, **fsdp_kwargs)
            units += 1
    fully_shard(model, mesh=mesh, **fsdp_kwargs)
    if hasattr(model, "generate"):
        register_fsdp_forward_method(model, "generate")
    return units + 1


def shard_stage(module: nn.Module, mesh: Any, *, reshard_after_forward: Optional[bool] = True,
                mp_policy: Any = None, offload_policy: Any = None) -> list[str]:
    """Apply the policy above to a LightningModule's children; returns the names of the sharded
    models (for the log). Idempotent: already sharded children are left alone."""
    loose = [n for n, _ in module.named_parameters(recurse=False)]
    if loose:
        from rlhf_lightning.errors import ConfigError

        raise ConfigError(f"{type(module).__name__} holds parameters outside any submodule ({', '.join(loose)}); "
                          "FSDP can only shard parameters of submodules")
    kwargs: dict[str, Any] = {"reshard_after_forward": reshard_after_forward}
    if mp_policy is not None:
        kwargs["mp_policy"] = mp_policy
    if offload_policy is not None:
        kwargs["offload_policy"] = offload_policy
    from torch.distributed.fsdp import fully_shard

    done: list[str] = []
    for name, child in module.named_children():
        if is_sharded(child):
            continue
        if _is_hf_model(child):
            shard_model(child, mesh, **kwargs)
        elif any(True for _ in child.parameters()):
            fully_shard(child, mesh=mesh, **kwargs)
        else:
            continue
        done.append(name)
    return done


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole (unsharded, CPU) state dict of an FSDP2 model on every rank — a collective: call it
    on all ranks. For an unsharded model it is simply ``model.state_dict()``."""
    if not is_sharded(model):
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
