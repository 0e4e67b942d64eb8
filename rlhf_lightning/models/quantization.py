"""bitsandbytes 4-bit loading (QLoRA), 8-bit loading (GPU only), and the CPU guard that keeps 4-bit LoRA
gradients alive.

The CPU trap, as read in the bitsandbytes 0.50 source (``bitsandbytes/nn/modules.py``,
``Linear4bit``):

* ``Linear4bit.__init__`` sets ``self.support_avx512bf16_for_cpu = has_avx512bf16()`` (the native
  library's CPU probe; an ``int`` 1/0, not a bool).
* ``Linear4bit.forward`` on a CPU input, when that attribute is truthy, the module is in eval mode and
  the input does not require grad (exactly what ``model.eval(); model.generate()`` produces), calls
  ``functional._convert_weight_packed_for_cpu``: it rewrites ``weight.data`` into an AVX512-BF16
  tiled layout and sets ``quant_state.packing_format_for_cpu = True``. The repacking is permanent:
  ``model.train()`` does not undo it.
* From then on ``autograd._functions.matmul_4bit`` sends every CPU call, training ones too, to the
  ``bitsandbytes::gemv_4bit`` op, which has no autograd kernel. Backward through it yields no input
  gradient (PyTorch only warns "an autograd kernel was not registered"), so every LoRA adapter
  below the last quantized layer gets a zero gradient: on a 2-layer Llama, 4 of 14 LoRA-B matrices
  still learn, the rest silently do not.
* With ``in_features`` smaller than the quantization block size (64) the repacking instead crashes
  (``shape '[32, 0]' is invalid``), so tiny test models must be at least 64 wide to see the trap.

:func:`guard_linear4bit_on_cpu` switches the attribute off on every ``Linear4bit`` (and unpacks any
weight that was already repacked), so eval-mode forwards take the same autograd-capable path as
training ones. It costs the faster bf16 inference kernel on CPU only; GPUs never take this branch.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch

from rlhf_lightning.errors import ConfigError

if TYPE_CHECKING:
    from rlhf_lightning.models.spec import QuantizationSpec

log = logging.getLogger(__name__)

_INSTALL_HINT = "quantization needs bitsandbytes: pip install 'bitsandbytes>=0.45'"


def import_bitsandbytes() -> Any:
    """Import bitsandbytes on first use (it is heavy and optional); ConfigError with a hint if absent."""
    try:
        import bitsandbytes
    except ImportError as exc:  # pragma: no cover - bitsandbytes is installed in our environments
        raise ConfigError(f"{_INSTALL_HINT} ({exc})") from exc
    return bitsandbytes


def check_8bit_device(spec: QuantizationSpec) -> None:
    """8-bit loading is GPU-only here: ConfigError naming ``quantization.load_in_8bit`` when no CUDA device is
    visible (bitsandbytes' LLM.int8() matmul and its training path are CUDA kernels)."""
    if spec.load_in_8bit and not torch.cuda.is_available():
        raise ConfigError("quantization.load_in_8bit: 8-bit bitsandbytes loading needs a CUDA GPU and none is "
                          "visible (torch.cuda.is_available() is False); use 4-bit (load_in_4bit, runs on CPU) "
                          "or run on a GPU")


def bnb_config(spec: QuantizationSpec) -> Any:
    """The ``transformers.BitsAndBytesConfig`` for ``spec``: 4-bit (the QLoRA recipe: ``bnb_4bit_quant_type``,
    ``bnb_4bit_compute_dtype``, ``bnb_4bit_use_double_quant``) or 8-bit (``load_in_8bit`` with
    ``llm_int8_threshold``)."""
    import_bitsandbytes()
    from transformers import BitsAndBytesConfig

    if spec.bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=spec.int8_threshold)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=spec.quant_type,
        bnb_4bit_compute_dtype=getattr(torch, spec.compute_dtype),
        bnb_4bit_use_double_quant=spec.double_quant,
    )


def _is_linear4bit(module: torch.nn.Module) -> bool:
    # By class name, so checking a model never imports bitsandbytes.
    return any(cls.__name__ == "Linear4bit" and cls.__module__.startswith("bitsandbytes")
               for cls in type(module).__mro__)


def is_quantized_4bit(model: torch.nn.Module) -> bool:
    """True if any submodule is a bitsandbytes ``Linear4bit`` (a QLoRA base)."""
    return any(_is_linear4bit(m) for m in model.modules())


def _is_bnb_linear(module: torch.nn.Module) -> bool:
    return any(cls.__name__ in ("Linear4bit", "Linear8bitLt") and cls.__module__.startswith("bitsandbytes")
               for cls in type(module).__mro__)


def is_quantized(model: torch.nn.Module) -> bool:
    """True if any submodule is a bitsandbytes 4-bit or 8-bit linear layer: merging an adapter into it would
    re-quantize the update away, so exports merge into a full-precision re-load instead."""
    return any(_is_bnb_linear(m) for m in model.modules())


def guard_linear4bit_on_cpu(model: torch.nn.Module) -> int:
    """Turn off the CPU AVX512-BF16 repacking of every ``Linear4bit``; return how many were touched.

    Call it after loading and before any eval-mode forward (see the module docstring for the trap).
    Weights already repacked by an earlier eval forward are unpacked back to the autograd-capable
    layout through bitsandbytes' own (private) inverse, so calling the guard late still repairs.
    """
    touched = 0
    for module in model.modules():
        if not _is_linear4bit(module):
            continue
        module.support_avx512bf16_for_cpu = False
        weight = module.weight
        state = getattr(weight, "quant_state", None)
        if state is not None and getattr(state, "packing_format_for_cpu", False):
            from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

            weight.data, weight.quant_state = _convert_weight_packed_for_cpu_inverse(weight.data, state)
            log.warning("Unpacked a Linear4bit weight that an eval forward had repacked for AVX512-BF16")
        touched += 1
    return touched
