"""Typed model options, as they appear in YAML under a stage's ``policy:`` / ``backbone:`` key.

Plain dataclasses: LightningCLI (jsonargparse) turns them into nested, validated config sections.
No transformers import here, so configs parse fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union

from rlhf_lightning.option_checks import in_range, positive, require

#: ``LoraSpec.init_weights`` values that rewrite the frozen base weights (the adapter starts from the base's
#: principal / orthonormal components and the base keeps the residual), see :mod:`rlhf_lightning.models.lora`.
BASE_CHANGING_INITS: tuple[str, ...] = ("pissa", "olora")


def _init_weights_ok(value: object) -> bool:
    if value is True or value in ("gaussian", "orthogonal") or value in BASE_CHANGING_INITS:
        return True
    # PiSSA with a fast randomised SVD of N subspace iterations (peft's "pissa_niter_N").
    return isinstance(value, str) and value.startswith("pissa_niter_") and value[12:].isdigit() and int(value[12:]) > 0


def changes_base(init_weights: object) -> bool:
    """Whether this ``init_weights`` rewrites the base weights (PiSSA, OLoRA)."""
    return isinstance(init_weights, str) and init_weights.split("_niter_")[0] in BASE_CHANGING_INITS


@dataclass
class LoraSpec:
    """LoRA adapter options (passed to ``peft.LoraConfig``; peft 0.21).

    ``use_dora``: weight-decomposed LoRA (DoRA, Liu et al. 2024): a trained magnitude per output feature
    on top of the low-rank direction update. ``use_rslora``: rank-stabilised scaling ``alpha / sqrt(r)``
    (Kalajdzievski 2023) instead of ``alpha / r``. ``init_weights``: ``true`` (peft's default: A Kaiming-
    uniform, B zero), ``gaussian`` (A Gaussian), ``orthogonal`` (orthogonal A and B, product zero),
    ``pissa`` / ``pissa_niter_<N>`` (Meng et al. 2024: A, B from the base weight's top singular
    components, exact SVD or N randomised iterations) or ``olora`` (Büyükakyüz 2024: from a QR of the
    base weight). PiSSA and OLoRA move those components out of the frozen base, so the base is no
    longer the original model: such a run needs an explicit frozen ``reference`` model where the stage
    would otherwise disable the adapter, exports the merged model only, and cannot be quantized.
    """

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: Union[str, list[str]] = "all-linear"
    bias: Literal["none", "all", "lora_only"] = "none"
    modules_to_save: Optional[list[str]] = None
    use_rslora: bool = False
    use_dora: bool = False
    init_weights: Union[bool, str] = True

    def __post_init__(self) -> None:
        positive(self, "r", self.r)
        positive(self, "alpha", self.alpha)
        in_range(self, "dropout", self.dropout, 0.0, 1.0, high_open=True)
        require(self, "init_weights", _init_weights_ok(self.init_weights),
                "must be true, gaussian, orthogonal, pissa, pissa_niter_<N> (N >= 1) or olora", self.init_weights)
        require(self, "init_weights", not (self.use_dora and changes_base(self.init_weights)),
                "pissa/olora initialisation is not combined with use_dora here (the DoRA magnitude would be "
                "computed from the residual base)", self.init_weights)


@dataclass
class QuantizationSpec:
    """bitsandbytes loading of the frozen base (QLoRA): 4-bit (``load_in_4bit``, the default; also runs on
    CPU) or 8-bit (``load_in_8bit: true``, LLM.int8(); needs a CUDA GPU). Needs ``lora`` to be trainable.

    ``load_in_4bit`` left unset means 4-bit unless ``load_in_8bit`` is set; ``load_in_4bit: false`` alone
    turns quantization off. ``quant_type``, ``compute_dtype`` and ``double_quant`` apply to 4-bit only;
    ``int8_threshold`` (LLM.int8()'s outlier threshold, bitsandbytes' default 6.0) to 8-bit only.
    """

    load_in_4bit: Optional[bool] = None
    quant_type: Literal["nf4", "fp4"] = "nf4"
    compute_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    double_quant: bool = True
    load_in_8bit: bool = False
    int8_threshold: float = 6.0

    def __post_init__(self) -> None:
        require(self, "load_in_8bit", not (self.load_in_8bit and self.load_in_4bit),
                "cannot be combined with load_in_4bit: true (choose one)", self.load_in_8bit)
        positive(self, "int8_threshold", self.int8_threshold)

    @property
    def bits(self) -> Optional[int]:
        """8, 4, or ``None`` when quantization is switched off (``load_in_4bit: false``)."""
        if self.load_in_8bit:
            return 8
        return None if self.load_in_4bit is False else 4


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
        if self.lora is not None and self.quantization is not None and self.quantization.bits:
            require(self, "lora.init_weights", not changes_base(self.lora.init_weights),
                    "pissa/olora rewrite the base weights, which a quantized base cannot hold (and a merged "
                    "export re-loads the original base); use the default init with quantization",
                    self.lora.init_weights)
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
