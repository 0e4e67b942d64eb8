"""``precision: auto`` (rlhf_lightning/precision.py): the decision from faked CPU flags and CUDA devices,
each branch, and the probes fed fake /proc/cpuinfo text and a fake torch.cuda."""

from __future__ import annotations

import pytest
import torch

from rlhf_lightning import precision
from rlhf_lightning.precision import CudaDevice, choose_precision, cpu_flags, cuda_device, resolve_auto_precision

# Two processors as Linux lists them (flags trimmed); only the first two lines per CPU matter here.
XEON_NO_BF16 = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz
flags\t\t: fpu vme sse sse2 avx avx2 avx512f avx512bw avx512_vnni
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz
flags\t\t: fpu vme sse sse2 avx avx2 avx512f avx512bw avx512_vnni
"""
ZEN5 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu sse2 avx512f amx_bf16 amx_tile amx_int8\n"
# ARM lists "Features", not "flags": bf16 there is not one of the flags the decision reads
GRAVITON3 = "processor\t: 0\nFeatures\t: fp asimd bf16 i8mm sve\n"


def test_cpu_flags_parses_the_flags_lines():
    assert "avx512_vnni" in cpu_flags(XEON_NO_BF16)
    assert "avx512_bf16" not in cpu_flags(XEON_NO_BF16)
    assert "avx512_bf16" in cpu_flags(ZEN5)
    assert cpu_flags(GRAVITON3) == frozenset()


def test_cpu_flags_are_not_known_outside_linux():
    assert cpu_flags(platform="darwin") is None
    assert cpu_flags(platform="win32") is None


@pytest.mark.parametrize("cpuinfo, flag", [(ZEN5, "avx512_bf16"), (SAPPHIRE_RAPIDS, "amx_bf16")])
def test_cpu_with_native_bf16_gets_bf16_mixed(cpuinfo, flag):
    choice = choose_precision("cpu", cpu_flags=cpu_flags(cpuinfo))
    assert choice.precision == "bf16-mixed"
    assert flag in choice.reason and "/proc/cpuinfo" in choice.reason


@pytest.mark.parametrize("cpuinfo", [XEON_NO_BF16, GRAVITON3])
def test_cpu_without_native_bf16_gets_fp32(cpuinfo):
    choice = choose_precision("cpu", cpu_flags=cpu_flags(cpuinfo))
    assert choice.precision == "32-true"
    assert "avx512_bf16" in choice.reason and "amx_bf16" in choice.reason


def test_cpu_with_unknown_flags_gets_fp32():
    choice = choose_precision("cpu", cpu_flags=None)
    assert choice.precision == "32-true" and "outside Linux" in choice.reason


def test_gpu_with_bf16_gets_bf16_mixed():
    choice = choose_precision("cuda", cuda=CudaDevice("NVIDIA H200", (9, 0), bf16=True))
    assert choice == precision.PrecisionChoice("bf16-mixed", "CUDA GPU NVIDIA H200 (compute capability 9.0) "
                                                             "supports bf16")


def test_gpu_without_bf16_gets_fp16_mixed():
    choice = choose_precision("cuda", cuda=CudaDevice("Tesla V100-SXM2-16GB", (7, 0), bf16=False))
    assert choice.precision == "16-mixed"
    assert "Tesla V100" in choice.reason and "7.0" in choice.reason


def test_no_visible_gpu_and_other_accelerators_get_fp32():
    assert choose_precision("cuda", cuda=None).precision == "32-true"
    choice = choose_precision("mps")
    assert choice.precision == "32-true" and "'mps'" in choice.reason


def _fake_cuda(monkeypatch, name: str, capability: tuple[int, int]) -> list[bool]:
    """Pretend one CUDA device is visible; ``is_bf16_supported`` answers as torch does: native from
    compute capability 8.0, emulated (slow) below when ``including_emulation`` (its default)."""
    asked: list[bool] = []

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        asked.append(including_emulation)
        return capability[0] >= 8 or including_emulation

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: name)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    return asked


def test_cuda_probe_counts_only_native_bf16(monkeypatch):
    asked = _fake_cuda(monkeypatch, "Tesla T4", (7, 5))
    assert cuda_device() == CudaDevice("Tesla T4", (7, 5), bf16=False)
    assert asked == [False]  # emulated bf16 on a T4 would pass the default check, and be slow


@pytest.mark.parametrize("accelerator", ["gpu", "cuda", "auto"])
@pytest.mark.parametrize("gpu, capability, expected", [("NVIDIA A100-SXM4-40GB", (8, 0), "bf16-mixed"),
                                                       ("Tesla V100-SXM2-16GB", (7, 0), "16-mixed")])
def test_resolve_on_a_fake_gpu(monkeypatch, accelerator, gpu, capability, expected):
    _fake_cuda(monkeypatch, gpu, capability)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    choice = resolve_auto_precision(accelerator)
    assert choice.precision == expected and gpu in choice.reason


@pytest.mark.parametrize("cpuinfo, expected", [(ZEN5, "bf16-mixed"), (XEON_NO_BF16, "32-true")])
def test_resolve_on_cpu_reads_the_cpu_flags(monkeypatch, cpuinfo, expected):
    _fake_cuda(monkeypatch, "NVIDIA H200", (9, 0))  # present, but accelerator=cpu does not use it
    monkeypatch.setattr(precision, "cpu_flags", lambda: cpu_flags(cpuinfo))
    assert resolve_auto_precision("cpu").precision == expected


def test_auto_accelerator_without_gpu_is_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(precision, "cpu_flags", lambda: cpu_flags(XEON_NO_BF16))
    assert precision.target_device("auto") == "cpu"
    assert resolve_auto_precision("auto").precision == "32-true"


def test_accelerator_instances():
    from lightning.pytorch.accelerators import CPUAccelerator, CUDAAccelerator, MPSAccelerator

    assert precision.target_device(CPUAccelerator()) == "cpu"
    assert precision.target_device(CUDAAccelerator()) == "cuda"
    assert precision.target_device(MPSAccelerator()) == "mps"


def test_module_does_not_import_lightning():
    import subprocess
    import sys

    code = "import sys, rlhf_lightning.precision; print(any(m.startswith('lightning') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
