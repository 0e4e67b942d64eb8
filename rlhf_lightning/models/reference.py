"""The frozen reference policy of the preference (DPO family) and online-RL (PPO family) stages.

Both stages keep it the same way (:func:`build_reference`), in this order of preference:

- ``reference:`` a separately loaded model;
- with a LoRA policy: no second model — the policy with its adapter disabled is the reference;
- otherwise a copy of the policy's initial weights (``copy_policy``), or none, when the caller
  uses the not-yet-updated policy itself (DPO's precomputed reference log-probs).

A built reference is frozen (no gradients, dropout off, eval mode; :func:`freeze_reference`) and
held by the stage as ``reference_model``; :func:`reference_forward` yields whichever module
computes reference log-probs, without gradients and in eval mode. Its weights are not checkpointed
(:func:`drop_reference_weights`): they are rebuilt from their source on resume and filled back in
(:func:`restore_reference_weights`) — except under FSDP, whose strict sharded loader restores every
parameter of the module, so a sharded reference stays in the checkpoint.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any, Iterator, Optional

import torch
from torch import nn

from rlhf_lightning.models.spec import ModelSpec

#: the stages' attribute (and checkpoint key prefix) of a separate reference model
REFERENCE_ATTRIBUTE = "reference_model"
#: PPO's checkpoint key prefix before both stages shared this module
LEGACY_PREFIXES = ("ref_model.",)


def freeze_reference(model: nn.Module) -> nn.Module:
    """No gradients, every dropout probability 0, eval mode; returns ``model``."""
    model.requires_grad_(False)
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    return model.eval()


def build_reference(policy: nn.Module, spec: Optional[ModelSpec], tokenizer: Any, *,
                    copy_policy: bool = True) -> Optional[nn.Module]:
    """The reference model a stage holds, frozen; ``None`` when the policy itself computes reference
    log-probs (its LoRA adapter disabled, or, without ``copy_policy``, the policy before its first update).

    Call it right after loading the policy (``configure_model``), before any update. What
    transformers/peft refuse about ``spec`` is the user's option ``model.init_args.reference``.
    """
    from rlhf_lightning.models.lora import has_adapter

    if spec is not None:
        from rlhf_lightning.errors import option_errors
        from rlhf_lightning.models.loading import load_causal_lm

        with option_errors("model.init_args.reference"):
            return freeze_reference(load_causal_lm(spec, tokenizer=tokenizer))
    if has_adapter(policy) or not copy_policy:
        return None
    return freeze_reference(copy.deepcopy(policy))  # the initial weights (also right for init_config)


@contextlib.contextmanager
def reference_forward(policy: nn.Module, reference: Optional[nn.Module]) -> Iterator[nn.Module]:
    """The module that computes reference log-probs, in eval mode and without gradients: ``reference``
    if the stage holds one, else the policy with its LoRA adapter disabled (or the policy itself);
    the policy's train/eval mode is restored afterwards."""
    with torch.no_grad():
        if reference is not None:
            yield reference.eval()
            return
        from rlhf_lightning.models.lora import disable_adapter, has_adapter

        was_training = policy.training
        policy.eval()
        try:
            if has_adapter(policy):
                with disable_adapter(policy) as ref:
                    yield ref
            else:
                yield policy
        finally:
            policy.train(was_training)


def drop_reference_weights(state_dict: dict[str, Any], reference: Optional[nn.Module]) -> None:
    """Remove the reference's entries from a checkpoint's ``state_dict`` unless it is sharded (FSDP)."""
    from rlhf_lightning.models.sharding import is_sharded

    if reference is not None and is_sharded(reference):
        return
    prefixes = (REFERENCE_ATTRIBUTE + ".", *LEGACY_PREFIXES)
    for key in [k for k in state_dict if k.startswith(prefixes)]:
        del state_dict[key]


def restore_reference_weights(checkpoint: dict[str, Any], reference: Optional[nn.Module]) -> None:
    """Fill a loaded checkpoint's ``state_dict`` with the rebuilt reference's weights where it has none,
    so strict loading finds every key; entries under a legacy prefix (``ref_model.``) are renamed."""
    state = checkpoint.get("state_dict")
    if state is None:
        return
    for old in LEGACY_PREFIXES:
        for key in [k for k in state if k.startswith(old)]:
            state[REFERENCE_ATTRIBUTE + "." + key[len(old):]] = state.pop(key)
    if reference is not None:
        for name, tensor in reference.state_dict().items():
            state.setdefault(f"{REFERENCE_ATTRIBUTE}.{name}", tensor)
