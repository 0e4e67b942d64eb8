"""``precision: auto``: the mixed precision the machine a run starts on is fast at.

- CUDA GPU with bfloat16 support (Ampere and newer, ROCm): ``bf16-mixed``.
- Older CUDA GPU (V100, T4): ``16-mixed`` (float16 autocast with a loss scaler).
- CPU: ``bf16-mixed`` only when it multiplies bfloat16 matrices natively (AVX512-BF16 or AMX-BF16,
  the ``avx512_bf16`` / ``amx_bf16`` flags of ``/proc/cpuinfo``); otherwise ``32-true``. Without
  those instructions oneDNN emulates bf16 matmuls, about 4x slower than float32 (measured on an
  Intel Xeon without AVX512-BF16: 15 min instead of 2 for the demo pre-training). Outside Linux
  the flags cannot be read and the CPU counts as without.
- Any other accelerator (MPS, TPU, ...): ``32-true``.

:func:`choose_precision` is the decision, a pure function of what was probed; :func:`cpu_flags`
and :func:`cuda_device` probe; :func:`resolve_auto_precision` does both for a Trainer's
``accelerator``. No Lightning import; torch only where CUDA is probed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Iterable, Optional

AUTO = "auto"
CPUINFO = "/proc/cpuinfo"
#: /proc/cpuinfo flags of native bfloat16 matrix multiplication (either suffices)
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class CudaDevice:
    """What the decision needs to know about a CUDA (or ROCm) device."""

    name: str
    capability: tuple[int, int]
    bf16: bool


@dataclass(frozen=True)
class PrecisionChoice:
    """A resolved Trainer ``precision`` and the hardware feature it was decided by (for the log)."""

    precision: str
    reason: str


def choose_precision(device: str, *, cpu_flags: Optional[Iterable[str]] = None,
                     cuda: Optional[CudaDevice] = None) -> PrecisionChoice:
    """The precision ``auto`` stands for on ``device`` (``"cuda"``, ``"cpu"`` or another accelerator name).

    ``cpu_flags``: the CPU's feature flags from ``/proc/cpuinfo``, read for ``"cpu"`` (``None``: not
    known, outside Linux); ``cuda``: the CUDA device, read for ``"cuda"`` (``None``: none visible,
    the Trainer then reports the missing GPU itself).
    """
    if device == "cuda":
        if cuda is None:
            return PrecisionChoice("32-true", "no CUDA device visible")
        gpu = f"CUDA GPU {cuda.name} (compute capability {cuda.capability[0]}.{cuda.capability[1]})"
        if cuda.bf16:
            return PrecisionChoice("bf16-mixed", f"{gpu} supports bf16")
        return PrecisionChoice("16-mixed", f"{gpu} has no native bf16")
    if device == "cpu":
        if cpu_flags is None:
            return PrecisionChoice("32-true", f"the CPU's bf16 support is not known outside Linux (no {CPUINFO})")
        found = [flag for flag in CPU_BF16_FLAGS if flag in set(cpu_flags)]
        if found:
            return PrecisionChoice("bf16-mixed", f"the CPU has native bf16 matmul ({', '.join(found)} in {CPUINFO})")
        return PrecisionChoice("32-true", f"the CPU has no native bf16 matmul (neither {' nor '.join(CPU_BF16_FLAGS)} "
                                          f"in {CPUINFO}): emulated bf16 is slower than fp32")
    return PrecisionChoice("32-true", f"no automatic choice for accelerator {device!r}")


def cpu_flags(cpuinfo: Optional[str] = None, *, platform: Optional[str] = None) -> Optional[frozenset[str]]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (or the given ``cpuinfo`` text); None outside
    Linux or when the file cannot be read."""
    if cpuinfo is None:
        if not (platform or sys.platform).startswith("linux"):
            return None
        try:
            with open(CPUINFO, encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            return None
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            flags.update(value.split())
    return frozenset(flags)


def cuda_device() -> Optional[CudaDevice]:
    """The current CUDA device, or None when none is visible. bf16 counts only when native
    (``is_bf16_supported(including_emulation=False)``): emulated bf16 on an older GPU is slow."""
    import torch

    if not torch.cuda.is_available():
        return None
    index = torch.cuda.current_device()
    return CudaDevice(name=torch.cuda.get_device_name(index), capability=tuple(torch.cuda.get_device_capability(index)),
                      bf16=bool(torch.cuda.is_bf16_supported(including_emulation=False)))


def target_device(accelerator: Any) -> str:
    """``"cuda"``, ``"cpu"`` or another accelerator name for a Trainer's ``accelerator`` argument
    (a string or an ``Accelerator`` instance); ``"auto"`` follows Lightning's order (MPS, then CUDA, then CPU)."""
    if not isinstance(accelerator, str):
        name = type(accelerator).__name__.lower()
        return "cuda" if "cuda" in name else "cpu" if "cpu" in name else name.removesuffix("accelerator")
    accelerator = accelerator.lower()
    if accelerator in ("gpu", "cuda"):
        return "cuda"
    if accelerator != AUTO:
        return accelerator
    import torch

    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_auto_precision(accelerator: Any = AUTO) -> PrecisionChoice:
    """Probe the hardware ``accelerator`` selects and choose the precision ``auto`` stands for."""
    device = target_device(accelerator)
    if device == "cuda":
        return choose_precision(device, cuda=cuda_device())
    if device == "cpu":
        return choose_precision(device, cpu_flags=cpu_flags())
    return choose_precision(device)
