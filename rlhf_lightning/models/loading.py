"""Tokenizer and model loading from a :class:`ModelSpec`: hub id or local folder, or a config for
training from scratch; dtype, attention kernel, gradient checkpointing, LoRA and QLoRA.

Every stage builds its models through these functions, so a YAML ``policy:`` block means the same
thing in SFT, RM, DPO and PPO. No Lightning here: strategies call these inside ``configure_model``.
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch

from rlhf_lightning.errors import ConfigError, ModelError, option_errors
from rlhf_lightning.models.lora import apply_lora
from rlhf_lightning.models.quantization import bnb_config, check_8bit_device, guard_linear4bit_on_cpu
from rlhf_lightning.models.spec import ModelSpec

log = logging.getLogger(__name__)

__all__ = ["load_tokenizer", "load_causal_lm", "load_sequence_classifier", "count_parameters"]


# --------------------------------------------------------------------------- sources and errors


def _is_valid_hub_id(name: str) -> bool:
    try:
        from huggingface_hub.utils import validate_repo_id

        validate_repo_id(name)
    except Exception:  # HFValidationError, or an old hub client without the helper
        return False
    return True


def _from_source(fn: Callable[..., Any], source: str, what: str, **kwargs: Any) -> Any:
    """Call ``fn(source, **kwargs)`` and turn "cannot find it" failures into one clear ModelError.

    Checked before trying: a path that is not a folder and not even a well-formed hub id fails fast
    (no network round trip, no transformers traceback about repo-id syntax).
    """
    local = Path(source).expanduser()
    if not local.is_dir() and not _is_valid_hub_id(source):
        raise ModelError(f"{what} {source!r} is neither a local folder nor a valid Hugging Face hub id")
    try:
        return fn(str(local) if local.is_dir() else source, **kwargs)
    except (OSError, ValueError) as exc:  # hub errors (offline, 404, gated) are OSError subclasses
        if local.is_dir():
            raise ModelError(f"cannot load {what} from folder {source!r}: {exc}") from exc
        raise ModelError(
            f"{what} {source!r} is neither a local folder nor a reachable Hugging Face hub id "
            f"({type(exc).__name__}: {exc})"
        ) from exc


def _revision_for(spec: ModelSpec, source: str) -> Optional[str]:
    # ``revision`` pins the model's hub repo; a separately named tokenizer/config repo is not pinned.
    return spec.revision if source == spec.name_or_path else None


def _dtype(spec: ModelSpec) -> Union[str, torch.dtype]:
    return "auto" if spec.dtype == "auto" else getattr(torch, spec.dtype)


# --------------------------------------------------------------------------- tokenizer


def load_tokenizer(spec_or_path: Union[ModelSpec, str], *, padding_side: str = "right",
                   chat_template: Optional[str] = None):
    """Load the tokenizer of a spec (``spec.tokenizer_path``) or of a folder / hub id.

    A tokenizer without a pad token gets ``pad_token = eos_token`` (with a warning), because every
    collator pads; one with neither is a ModelError. ``padding_side`` is "right" for training;
    generation wants "left". The spec's ``chat_template`` (or ``chat_template`` given with a path)
    replaces the folder's template (:func:`rlhf_lightning.data.chat_templates.set_chat_template`).
    """
    from transformers import AutoTokenizer

    spec = spec_or_path if isinstance(spec_or_path, ModelSpec) else ModelSpec(name_or_path=str(spec_or_path),
                                                                                chat_template=chat_template)
    source = spec.tokenizer_path
    if source is None:
        raise ConfigError("no tokenizer source: set `tokenizer` (the model is built from an init_config dict)")
    if padding_side not in ("left", "right"):
        raise ConfigError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    tokenizer = _from_source(
        AutoTokenizer.from_pretrained, source, "tokenizer",
        revision=_revision_for(spec, source), trust_remote_code=spec.trust_remote_code,
    )
    tokenizer.padding_side = padding_side
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelError(f"tokenizer {source!r} has neither a pad token nor an eos token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
        warnings.warn(
            f"tokenizer {source!r} has no pad token; using its eos token {tokenizer.eos_token!r} as pad token",
            UserWarning, stacklevel=2,
        )
    if spec.chat_template is not None:
        from rlhf_lightning.data.chat_templates import set_chat_template

        set_chat_template(tokenizer, spec.chat_template)
    return tokenizer


# --------------------------------------------------------------------------- models


def _build_config(spec: ModelSpec, config_overrides: dict[str, Any]) -> Any:
    """The config for a from-scratch model: ``init_config`` (folder / hub id, or a dict with
    ``model_type``), or ``name_or_path``'s config updated by the ``init_config`` dict."""
    from transformers import AutoConfig

    init = spec.init_config
    common = {"trust_remote_code": spec.trust_remote_code}
    if isinstance(init, str):
        config = _from_source(AutoConfig.from_pretrained, init, "init_config",
                              revision=_revision_for(spec, init), **common)
    else:
        fields = dict(init)
        if spec.name_or_path:
            config = _from_source(AutoConfig.from_pretrained, spec.name_or_path, "model",
                                  revision=spec.revision, **common)
            fields.pop("model_type", None)
            config.update(fields)
        else:
            model_type = fields.pop("model_type", None)
            if not model_type:
                raise ConfigError("init_config given as a dict needs a `model_type` key (e.g. 'llama')")
            try:
                config = AutoConfig.for_model(model_type, **fields)
            except ValueError as exc:
                raise ConfigError(f"init_config: {exc}") from exc
    config.update(config_overrides)
    return config


def _align_with_tokenizer(model: Any, tokenizer: Any) -> None:
    """Grow the embeddings to the tokenizer's vocab and point pad ids at the tokenizer's pad token."""
    vocab = len(tokenizer)
    if vocab > model.get_input_embeddings().weight.shape[0]:
        log.info("Resizing token embeddings %d -> %d to fit the tokenizer",
                 model.get_input_embeddings().weight.shape[0], vocab)
        model.resize_token_embeddings(vocab)
    if tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
        generation_config = getattr(model, "generation_config", None)
        if generation_config is not None and generation_config.pad_token_id is None:
            generation_config.pad_token_id = tokenizer.pad_token_id


def _load(auto_cls: Any, spec: ModelSpec, tokenizer: Any, task_type: str,
          config_overrides: dict[str, Any]) -> Any:
    """Shared path of the causal-LM and sequence-classifier loaders."""
    bits = spec.quantization.bits if spec.quantization is not None else None
    quantized = bits is not None
    if quantized and spec.lora is None:
        raise ConfigError(f"quantization ({bits}-bit) needs `lora`: {bits}-bit weights cannot be trained directly")
    if bits == 8:
        check_8bit_device(spec.quantization)
    if spec.name_or_path is None and spec.init_config is None:
        raise ConfigError("set `name_or_path` (pretrained weights) or `init_config` (train from scratch)")

    kwargs: dict[str, Any] = {"dtype": _dtype(spec), "trust_remote_code": spec.trust_remote_code}
    if spec.attn_implementation is not None:
        kwargs["attn_implementation"] = spec.attn_implementation
    kwargs.update(spec.extra_kwargs)

    if spec.init_config is not None:
        if quantized:
            raise ConfigError("quantization needs pretrained weights (`name_or_path`), not `init_config`")
        with option_errors("init_config"):
            config = _build_config(spec, config_overrides)
        kwargs.pop("dtype")
        model = auto_cls.from_config(config, **kwargs)
        if spec.dtype not in ("auto", "float32"):
            model = model.to(getattr(torch, spec.dtype))
    else:
        if quantized:
            kwargs["quantization_config"] = bnb_config(spec.quantization)
        model = _from_source(auto_cls.from_pretrained, spec.name_or_path, "model",
                             revision=spec.revision, **config_overrides, **kwargs)

    if tokenizer is not None:
        _align_with_tokenizer(model, tokenizer)

    checkpoint_kwargs = {"use_reentrant": False}
    if quantized:
        from peft import prepare_model_for_kbit_training

        # Freezes the 4-bit base, upcasts norms to fp32 and makes inputs require grad.
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=spec.gradient_checkpointing,
            gradient_checkpointing_kwargs=checkpoint_kwargs,
        )
    elif spec.gradient_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=checkpoint_kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpoint_kwargs)
        if spec.lora is not None:
            # With a frozen base no activation requires grad, so checkpointed blocks would
            # backprop nothing; a grad-requiring embedding output keeps the graph connected.
            model.enable_input_require_grads()

    if spec.lora is not None:
        model = apply_lora(model, spec.lora, task_type)
    if bits == 4:
        guard_linear4bit_on_cpu(model)
    model.train()  # from_pretrained returns eval mode in transformers 5
    return model


def load_causal_lm(spec: ModelSpec, *, tokenizer: Any = None) -> Any:
    """Load (or build from ``init_config``) an ``AutoModelForCausalLM`` as ``spec`` says.

    Returns a ``PreTrainedModel``, or a ``peft.PeftModel`` when ``spec.lora`` is set; always in train
    mode. With a ``tokenizer``, embeddings grow to its vocab and ``config.pad_token_id`` follows it.
    """
    return _load(_auto("AutoModelForCausalLM"), spec, tokenizer, "CAUSAL_LM", {})


def load_sequence_classifier(spec: ModelSpec, *, num_labels: int = 1, tokenizer: Any = None) -> Any:
    """Load an ``AutoModelForSequenceClassification`` (``num_labels=1``: a scalar reward head).

    The classifier scores the last non-pad token, found through ``config.pad_token_id``, so that id
    is always set: from the tokenizer, else the config's own, else its eos id (with a warning).
    With LoRA, peft keeps the (new, randomly initialised) score head fully trainable.
    """
    model = _load(_auto("AutoModelForSequenceClassification"), spec, tokenizer, "SEQ_CLS",
                  {"num_labels": num_labels})
    config = model.config
    if config.pad_token_id is None:
        eos = config.eos_token_id
        eos = eos[0] if isinstance(eos, (list, tuple)) and eos else eos
        if eos is None:
            raise ModelError(
                f"model {spec.name_or_path or spec.init_config!r} has no pad_token_id or eos_token_id; "
                "pass the tokenizer so the classifier can find each sequence's last token"
            )
        warnings.warn(f"config has no pad_token_id; using eos_token_id {eos}", UserWarning, stacklevel=2)
        config.pad_token_id = eos
    return model


def _auto(name: str) -> Any:
    import transformers

    return getattr(transformers, name)


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts; 4-bit weights count their unpacked size."""
    trainable = total = 0
    for param in model.parameters():
        state = getattr(param, "quant_state", None)
        n = math.prod(state.shape) if state is not None else param.numel()
        total += n
        if param.requires_grad:
            trainable += n
    return trainable, total

