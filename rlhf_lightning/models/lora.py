"""LoRA adapters: build from a :class:`LoraSpec`, switch off for a reference pass, merge for export.

peft is imported inside the functions so that importing this module (and parsing configs) stays light.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any, Iterator

import torch

from rlhf_lightning.errors import ConfigError, ModelError, option_errors
from rlhf_lightning.models.spec import LoraSpec, changes_base

__all__ = ["build_lora_config", "apply_lora", "has_adapter", "disable_adapter", "merged_copy",
           "merge_into_base", "changes_base_weights"]

_TASK_TYPES = ("CAUSAL_LM", "SEQ_CLS", "TOKEN_CLS", "SEQ_2_SEQ_LM", "FEATURE_EXTRACTION", "QUESTION_ANS")


def build_lora_config(spec: LoraSpec, task_type: str) -> Any:
    """A ``peft.LoraConfig`` from ``spec``; ``task_type`` is a peft task name such as "CAUSAL_LM".

    The task type matters beyond bookkeeping: with "SEQ_CLS" peft also trains the new score head.
    """
    from peft import LoraConfig

    if task_type not in _TASK_TYPES:
        raise ConfigError(f"unknown LoRA task_type {task_type!r}; expected one of {', '.join(_TASK_TYPES)}")
    if spec.r <= 0:
        raise ConfigError(f"lora.r must be positive, got {spec.r}")
    return LoraConfig(
        r=spec.r,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=spec.target_modules,
        bias=spec.bias,
        modules_to_save=list(spec.modules_to_save) if spec.modules_to_save else None,
        use_rslora=spec.use_rslora,
        use_dora=spec.use_dora,
        init_lora_weights=spec.init_weights,
        task_type=task_type,
    )


def changes_base_weights(model: torch.nn.Module) -> bool:
    """Whether ``model``'s active adapter was initialised by rewriting the base weights (PiSSA, OLoRA):
    its frozen base is then the residual, not the original model."""
    if not has_adapter(model):
        return False
    init = getattr(model.peft_config[model.active_adapter], "init_lora_weights", True)
    return changes_base(init)


def has_adapter(model: torch.nn.Module) -> bool:
    """True for a ``peft.PeftModel`` (the only adapter wrapper this package creates)."""
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover
        return False
    return isinstance(model, PeftModel)


def apply_lora(model: torch.nn.Module, spec: LoraSpec, task_type: str) -> Any:
    """Wrap ``model`` in a ``peft.PeftModel`` with a fresh LoRA adapter; the base is frozen. What peft
    refuses is an :class:`~rlhf_lightning.errors.OptionError` naming ``lora``."""
    from peft import get_peft_model

    if has_adapter(model):
        raise ConfigError("the model already has a LoRA adapter; apply_lora would nest a second one")
    with option_errors("lora"):  # e.g. target_modules that match nothing in this architecture
        return get_peft_model(model, build_lora_config(spec, task_type))


@contextlib.contextmanager
def disable_adapter(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Run the frozen base model through the same object: ``with disable_adapter(policy) as ref:``.

    This is the reference policy of DPO/PPO without a second copy of the weights. A model without an
    adapter raises ModelError rather than silently yielding the trained policy as its own reference.
    """
    if not has_adapter(model):
        raise ModelError("disable_adapter needs a LoRA (peft) model; this model has no adapter, "
                         "so its reference must be a separate frozen copy")
    if changes_base_weights(model):
        init = model.peft_config[model.active_adapter].init_lora_weights
        raise ConfigError(f"lora.init_weights={init!r} rewrote the base weights, so the policy with its adapter "
                          "disabled is not the original model and cannot be the reference; give the stage a "
                          "separate `reference:` model (or use the default LoRA init)")
    with model.disable_adapter():
        yield model


def merged_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A plain ``PreTrainedModel`` with the adapter folded into a deep copy of the base weights.

    Copying keeps the training model bit-identical (merge then unmerge would round weights). Not for
    4-bit bases: merging into quantized weights re-quantizes and loses the update; use
    :func:`merge_into_base` with a full-precision base instead.
    """
    if not has_adapter(model):
        raise ModelError("merged_copy needs a LoRA (peft) model")
    clone = copy.deepcopy(model)
    return clone.merge_and_unload()


def merge_into_base(model: torch.nn.Module, base: torch.nn.Module) -> torch.nn.Module:
    """Fold ``model``'s active adapter into ``base`` (a separately loaded, full-precision copy of its
    base model) and return the merged plain model. ``model`` is not modified.

    The adapter weights (and any ``modules_to_save`` copies) move through peft's own state-dict
    functions, so this works for a QLoRA model whose own base is 4-bit.
    """
    from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    if not has_adapter(model):
        raise ModelError("merge_into_base needs a LoRA (peft) model")
    if changes_base_weights(model):
        raise ModelError("an adapter initialised with pissa/olora belongs to its residual base; it cannot be "
                         "merged into a re-loaded original base")
    name = model.active_adapter
    config = copy.deepcopy(model.peft_config[name])
    config.inference_mode = False
    wrapped = get_peft_model(base, config, adapter_name=name)
    state = get_peft_model_state_dict(model, adapter_name=name)
    result = set_peft_model_state_dict(wrapped, state, adapter_name=name)
    missing = [k for k in result.missing_keys if "lora_" in k]
    if result.unexpected_keys or missing:
        raise ModelError(f"adapter does not fit the re-loaded base: unexpected={result.unexpected_keys[:5]} "
                         f"missing={missing[:5]}")
    return wrapped.merge_and_unload()
