"""Typed model options, as they appear in YAML under a stage's ``policy:`` / ``backbone:`` key.

Plain dataclasses: LightningCLI (jsonargparse) turns them into nested, validated config sections.
No transformers import here, so configs parse fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union


@dataclass
class LoraSpec:
    """LoRA adapter options (passed to ``peft.LoraConfig``)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: Union[str, list[str]] = "all-linear"
    bias: Literal["none", "all", "lora_only"] = "none"
    modules_to_save: Optional[list[str]] = None
    use_rslora: bool = False


@dataclass
class QuantizationSpec:
    """bitsandbytes 4-bit loading (QLoRA). Needs ``lora`` to be trainable."""

    load_in_4bit: bool = True
    quant_type: Literal["nf4", "fp4"] = "nf4"
    compute_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    double_quant: bool = True


@dataclass
class ModelSpec:
    """Where a model comes from and how it is loaded.

    Exactly one of ``name_or_path`` (a hub id or a local folder) and ``init_config`` (a config folder,
    a config dict, or a hub id whose config is used, for training from scratch) is usually given;
    with both, ``init_config`` overrides fields of ``name_or_path``'s config and weights are random.

    ``chat_template`` replaces the tokenizer's template: a built-in name (``chatml``, ``llama3``,
    ``qwen2``), the path of a ``.jinja`` file, or an inline Jinja string (see
    :mod:`rlhf_lightning.data.chat_templates`); the CLI hands it to the data module too, and exports
    carry it in their tokenizer files.
    """

    name_or_path: Optional[str] = None
    init_config: Optional[Union[str, dict[str, Any]]] = None
    tokenizer: Optional[str] = None
    revision: Optional[str] = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "float32"
    attn_implementation: Optional[Literal["eager", "sdpa", "flash_attention_2", "flex_attention"]] = "sdpa"
    trust_remote_code: bool = False
    gradient_checkpointing: bool = False
    lora: Optional[LoraSpec] = None
    quantization: Optional[QuantizationSpec] = None
    extra_kwargs: dict[str, Any] = field(default_factory=dict)
    chat_template: Optional[str] = None

    def __post_init__(self) -> None:
        if self.chat_template is not None:  # a bad name, missing file or broken Jinja fails at parse time
            from rlhf_lightning.data.chat_templates import resolve_chat_template

            resolve_chat_template(self.chat_template, owner=self)

    @property
    def tokenizer_path(self) -> Optional[str]:
        """The tokenizer's source: ``tokenizer`` if set, else the model's own folder/hub id."""
        if self.tokenizer:
            return self.tokenizer
        if self.name_or_path:
            return self.name_or_path
        return self.init_config if isinstance(self.init_config, str) else None
