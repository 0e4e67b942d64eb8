"""fp32 ``nn.Linear`` through oneDNN on CPU: about 2x PyTorch's default (MKL) GEMM on these CPUs.

PyTorch runs an fp32 ``F.linear`` on CPU through MKL's sgemm; oneDNN's fp32 kernel
(``torch.ops.mkldnn._linear_pointwise``, the one TorchInductor emits) is measured at ~400 vs ~200
GFLOP/s for the rollout shapes on 2 Zen 5 cores, in full fp32 (no reduced-precision math). Inside
:func:`onednn_linear`, every plain ``torch.nn.Linear`` with fp32 CPU weights runs its forward and
its backward GEMMs (``grad_x = g·W``, ``grad_W = gᵀ·x``) through that kernel. Anything else —
subclasses with their own forward (LoRA layers' base layers are plain and do use it; 4-bit layers
do not), DTensor (sharded) weights, tensor subclasses, other dtypes, autocast, other devices — takes
the stock path. ``RLHF_LIGHTNING_ONEDNN=0`` switches it off.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Iterator, Optional

import torch
from torch import Tensor

_STOCK_FORWARD = torch.nn.Linear.forward
_LOCK = threading.Lock()
_depth = 0


def available() -> bool:
    """oneDNN is built in, and not switched off with ``RLHF_LIGHTNING_ONEDNN=0``."""
    if os.environ.get("RLHF_LIGHTNING_ONEDNN", "1") == "0":
        return False
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


def _forward(self: torch.nn.Linear, x: Tensor) -> Tensor:
    w = self.weight
    if (type(self) is not torch.nn.Linear or type(w.data) is not torch.Tensor or type(x) is not torch.Tensor
            or w.device.type != "cpu" or w.dtype != torch.float32 or x.dtype != torch.float32
            or torch.is_autocast_enabled("cpu")):  # DTensor (sharded) weights and tensor subclasses: stock
        return _STOCK_FORWARD(self, x)
    if not (torch.is_grad_enabled() and (x.requires_grad or w.requires_grad
                                         or (self.bias is not None and self.bias.requires_grad))):
        x2 = x.reshape(-1, x.shape[-1]).contiguous()
        return _gemm(x2, w, self.bias).view(*x.shape[:-1], w.shape[0])
    return _Linear.apply(x, w, self.bias)


@contextlib.contextmanager
def onednn_linear(enabled: bool = True) -> Iterator[None]:
    """Route plain fp32 CPU ``nn.Linear`` layers through oneDNN while the block runs (nests; no-op if off)."""
    global _depth
    if not enabled or not available():
        yield
        return
    with _LOCK:
        _depth += 1
        torch.nn.Linear.forward = _forward
    try:
        yield
    finally:
        with _LOCK:
            _depth -= 1
            if _depth == 0:
                torch.nn.Linear.forward = _STOCK_FORWARD
