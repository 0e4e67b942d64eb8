"""fp32 ``nn.Linear`` through oneDNN on CPU, for the given model's own layers only.

PyTorch runs an fp32 ``F.linear`` on CPU through MKL's sgemm; oneDNN's fp32 kernel
(``torch.ops.mkldnn._linear_pointwise``, the one TorchInductor emits) is ~2x faster on AMD Zen 5
(measured on 2 cores: 1.4x for a 32-row decoding GEMM, 1.1x for 512+ rows; earlier notes say up to 2x), and
no faster on an Intel Xeon without AVX512-BF16 (~69 vs ~67 GFLOP/s per thread), in full fp32 (no
reduced-precision math). So the choice is an option: ``true``, ``false`` (YAML's ``on``/``off`` are
booleans too) or ``"auto"``, which times both kernels once per process (:func:`probe`) and takes oneDNN
only where its GEMMs are clearly faster. The stages default to ``false``: end to end (generation,
scoring and update of GRPO / PPO on a 4M-parameter Llama, tests/benchmarks/run_all.py) it was 0.96-0.97x
the stock speed on AMD Zen 5 with 5-10 % more peak memory (the copies and transposes around each GEMM
and oneDNN's primitive cache eat the kernel's gain), so a GEMM probe alone does not predict a gain.

:func:`route` changes the class of each plain ``torch.nn.Linear`` *instance* of one model to
:class:`OneDNNLinear` (a subclass whose forward and backward GEMMs — ``y = x·Wᵀ + b``,
``grad_x = g·W``, ``grad_W = gᵀ·x`` — run through oneDNN); :func:`unroute` puts the class back. Nothing
process-wide changes: other models and ``F.linear`` are untouched, and two threads routing different
models do not meet. Because the class lives on the instance, activation-checkpointing recompute (which
calls the layer again during backward) takes the same path while the model is routed; with
:func:`routed` (route for one block) recompute that runs after the block takes the stock path.
Layers that are not exactly ``nn.Linear`` (LoRA wrappers — their ``base_layer`` is plain and is
routed —, 4-bit layers) are left alone; at call time, DTensor (sharded) or DeepSpeed weights, tensor
subclasses, other dtypes and devices, and autocast take the stock forward.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import time
from typing import Iterable, Iterator, Literal, Optional, Union

import torch
from torch import Tensor

#: the option's type: ``True``, ``False`` or ``"auto"`` (oneDNN where :func:`probe` finds it faster)
Kernel = Union[bool, Literal["auto"]]
KERNELS = (True, False, "auto")
#: ``auto`` takes oneDNN when its GEMM is at least this much faster than the stock one
AUTO_MARGIN = 1.10
_LOCK = threading.Lock()


def available() -> bool:
    """oneDNN is built into this PyTorch and has the fused linear kernel."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _gemm(x: Tensor, w: Tensor, b: Optional[Tensor] = None) -> Tensor:
    """``x (M, K) · wᵀ (K, N) + b`` through oneDNN; ``x`` and ``w`` contiguous fp32."""
    return torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        x2 = x.reshape(-1, x.shape[-1]).contiguous()
        ctx.save_for_backward(x2, weight)
        ctx.has_bias = bias is not None
        return _gemm(x2, weight, bias).view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad: Tensor):
        x2, weight = ctx.saved_tensors
        g2 = grad.reshape(-1, grad.shape[-1]).contiguous()
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = _gemm(g2, weight.t().contiguous()).view(*grad.shape[:-1], weight.shape[1])
        if ctx.needs_input_grad[1]:
            gw = _gemm(g2.t().contiguous(), x2.t().contiguous())
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g2.sum(0)
        return gx, gw, gb


def _fast(w: Tensor, x: Tensor) -> bool:
    return (type(w.data) is torch.Tensor and type(x) is torch.Tensor and not hasattr(w, "ds_id")
            and w.device.type == "cpu" and w.dtype == torch.float32 and x.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu"))


class OneDNNLinear(torch.nn.Linear):
    """A routed ``nn.Linear`` (set by :func:`route`, never built directly): same parameters and state dict."""

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002 - nn.Linear's own name, so linear(input=x) works
        w = self.weight
        if not _fast(w, input):
            return super().forward(input)
        if not (torch.is_grad_enabled() and (input.requires_grad or w.requires_grad
                                             or (self.bias is not None and self.bias.requires_grad))):
            x2 = input.reshape(-1, input.shape[-1]).contiguous()
            return _gemm(x2, w, self.bias).view(*input.shape[:-1], w.shape[0])
        return _Linear.apply(input, w, self.bias)


#: the probe's GEMMs ``(M, K, N)``: a decoding step (32 rows) and a training / scoring pass (512 rows)
PROBE_SHAPES = ((32, 1024, 1024), (512, 1024, 1024))


@functools.lru_cache(maxsize=None)
def _probe(threads: int) -> tuple[tuple[float, float], ...]:
    gen = torch.Generator().manual_seed(0)
    pairs = [(torch.randn(m, k, generator=gen), torch.randn(n, k, generator=gen)) for m, k, n in PROBE_SHAPES]

    def best(fn) -> float:  # the fastest of 5 after one warm-up call (oneDNN builds its primitive there)
        fn()
        times = []
        for _ in range(5):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    with torch.no_grad():
        return tuple((best(lambda x=x, w=w: torch.nn.functional.linear(x, w)), best(lambda x=x, w=w: _gemm(x, w)))
                     for x, w in pairs)


def probe() -> dict:
    """Stock vs oneDNN time of the fp32 GEMMs :data:`PROBE_SHAPES` (each the best of 5 after one warm-up),
    measured once per process and thread count (~90 ms on 2 Zen 5 cores; later calls are free). Returns the
    seconds per shape and ``speedup``, the geometric mean of the per-shape speed-ups."""
    times = _probe(torch.get_num_threads())
    speedup = math.exp(sum(math.log(stock / fast) for stock, fast in times) / len(times))
    return {"stock_s": [t[0] for t in times], "onednn_s": [t[1] for t in times], "speedup": speedup}


def valid(option: object) -> bool:
    return isinstance(option, bool) or option == "auto"


def resolve(option: Kernel) -> bool:
    """Whether ``option`` means oneDNN here: ``True``, and ``"auto"`` where :func:`probe` finds it at
    least :data:`AUTO_MARGIN` times faster; never when oneDNN is not built in."""
    if not valid(option):
        raise ValueError(f"onednn: must be true, false or auto, got {option!r}")
    if option is False or not available():
        return False
    return option is True or probe()["speedup"] >= AUTO_MARGIN


def route(model: torch.nn.Module) -> list[torch.nn.Linear]:
    """Route every plain ``nn.Linear`` of ``model`` through oneDNN; returns the layers this call routed
    (already routed ones are counted by a per-layer reference count, so nested routing nests)."""
    changed = []
    with _LOCK:
        for module in model.modules():
            if type(module) is OneDNNLinear:
                module._onednn_refs = getattr(module, "_onednn_refs", 1) + 1
            elif type(module) is torch.nn.Linear:
                module.__class__ = OneDNNLinear
                module._onednn_refs = 1
            else:
                continue
            changed.append(module)
    return changed


def unroute(layers: Iterable[torch.nn.Module]) -> None:
    """Undo one :func:`route` of these layers; a layer goes back to ``nn.Linear`` at its last undo."""
    with _LOCK:
        for module in layers:
            if type(module) is not OneDNNLinear:
                continue
            module._onednn_refs = getattr(module, "_onednn_refs", 1) - 1
            if module._onednn_refs <= 0:
                module.__class__ = torch.nn.Linear
                del module._onednn_refs


def route_if(models: Iterable[Optional[torch.nn.Module]], option: Kernel) -> int:
    """Route each model (``None`` skipped) when ``option`` resolves to oneDNN; returns the layers routed."""
    if not resolve(option):
        return 0
    return sum(len(route(m)) for m in models if m is not None)


@contextlib.contextmanager
def routed(model: torch.nn.Module, option: Kernel = "auto") -> Iterator[int]:
    """Route ``model``'s plain ``nn.Linear`` layers while the block runs (when ``option`` resolves to
    oneDNN); yields the number of layers routed. Backward of outputs made inside the block runs through
    oneDNN even after it (autograd keeps the function); activation-checkpointing recompute after the
    block takes the stock path."""
    layers = route(model) if resolve(option) else []
    try:
        yield len(layers)
    finally:
        unroute(layers)
