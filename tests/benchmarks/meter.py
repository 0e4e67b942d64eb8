"""The step meter every benchmark uses: step stamps, work counters, CPU time, peak RSS, environment.

One :class:`Meter` runs inside each worker process (ours or the peer's). The trainer calls
``step_end(units)`` after every step it counts — an optimizer step, or one rollout for online RL —
and ``finish()`` at the end, which writes the measured window as JSON: from the end of step
``warmup`` to the end of the last step. ``units`` is what the benchmark counts per step (pairs,
episodes); with ``attach(model, pad_token_id)`` a forward pre-hook also counts the non-padding
input tokens of every model forward, and fingerprints what the model was fed over the whole run
(:class:`Fingerprint`), so a benchmark can assert that both sides processed identical tokens. :class:`LightningStepMeter` (built on first access, so a peer's
worker never imports Lightning) drives a meter from Lightning's hooks.
"""

from __future__ import annotations

import array
import datetime
import hashlib
import importlib
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path
from typing import Optional


class Fingerprint:
    """An order-free digest of token sequences: how many, how many tokens, and a hash of their multiset."""

    def __init__(self):
        self.digests: list[bytes] = []
        self.tokens = 0

    def add(self, ids: list[int]) -> None:
        self.digests.append(hashlib.sha1(array.array("q", ids).tobytes()).digest())
        self.tokens += len(ids)

    def result(self) -> dict:
        h = hashlib.sha256(b"".join(sorted(self.digests))).hexdigest()[:16]
        return dict(sequences=len(self.digests), tokens=self.tokens, sha256=h)


def sequences_of(ids, real, position_ids=None) -> list[list[int]]:
    """The real tokens of each row ``(B, T)``, split where ``position_ids`` restart at 0 (packed rows)."""
    out = []
    for b in range(ids.shape[0]):
        keep = real[b].nonzero().flatten()
        row = ids[b, keep].tolist()
        if position_ids is None:
            out.append(row)
            continue
        starts = (position_ids[b if position_ids.shape[0] > 1 else 0, keep] == 0).nonzero().flatten().tolist()
        bounds = (starts if starts and starts[0] == 0 else [0] + starts) + [len(row)]
        out.extend(row[i:j] for i, j in zip(bounds, bounds[1:], strict=False) if j > i)
    return out


class Meter:
    """Stamps the end of every counted step and accumulates units, tokens and forwards.

    With a pad id, the forward pre-hook also fingerprints, over the whole run (warm-up included):
    ``trained`` — the sequences of every forward run with gradients (training passes; packed rows split
    per example), ``prompts`` — the prompt rows of every generation prefill (a forward given an empty KV
    cache), and ``generated_tokens`` — rows x forwards of every generation step. Reference, old-log-prob
    and value passes run without gradients or cache and are not fingerprinted.
    """

    def __init__(self, warmup: int, out: str, profile: Optional[str] = None):
        self.warmup, self.out, self.profile = warmup, out, profile
        self.pad: Optional[int] = None
        self.cum = dict(units=0, tokens=0, slots=0, sequences=0, forwards=0)
        self.steps: list[dict] = []
        self.info: dict = {}
        self.trained, self.prompts, self.generated_tokens = Fingerprint(), Fingerprint(), 0
        self._prof = None
        self.t0, self.cpu0 = time.perf_counter(), time.process_time()

    def attach(self, model, pad_token_id: Optional[int] = None) -> None:
        """Record the model's size; with ``pad_token_id``, count the tokens of each of its forwards."""
        import torch

        if pad_token_id is not None:
            self.pad = pad_token_id
            # the decoder under the head: every pass goes through it, also when a stage calls the backbone
            # directly and projects only some positions through the head (our DPO)
            backbone = getattr(model, getattr(model, "base_model_prefix", "") or "", None)
            target = backbone if isinstance(backbone, torch.nn.Module) else model
            target.register_forward_pre_hook(self._hook, with_kwargs=True)
        self.info["torch_threads"] = torch.get_num_threads()
        self.info["model_parameters"] = sum(p.numel() for p in model.parameters())
        # weights that multiply activations (every nn.Linear, the LM / score head included; a tied head once):
        # the FLOP estimate counts 2 FLOPs per such weight per token forward, 4 more in backward
        self.info["matmul_parameters"] = sum(m.weight.numel() for m in model.modules()
                                             if isinstance(m, torch.nn.Linear))
        self.info["attn_implementation"] = getattr(getattr(model, "config", None), "_attn_implementation", None)
        self.info["rss_at_train_start_mb"] = rss_now_mb()
        self.t0, self.cpu0 = time.perf_counter(), time.process_time()

    def _hook(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:  # e.g. inputs_embeds
            return
        real = ids != self.pad
        self.cum["tokens"] += int(real.sum())
        self.cum["slots"] += ids.numel()
        pos = kwargs.get("position_ids")
        self.cum["sequences"] += int(((pos == 0) & real).sum()) if pos is not None else ids.shape[0]
        self.cum["forwards"] += 1
        mask = kwargs.get("attention_mask")
        if mask is not None and mask.dim() == 2 and int(mask.sum()) != int(real.sum()):
            self.info["mask_mismatch"] = True  # a pad id inside real text would make the count wrong
        self._fingerprint(ids, mask.bool() if mask is not None and mask.dim() == 2 else real, pos, kwargs)

    def _fingerprint(self, ids, real, pos, kwargs) -> None:
        import torch

        past = kwargs.get("past_key_values", kwargs.get("cache"))  # transformers 5.24 passes ``cache``
        if torch.is_grad_enabled():
            for seq in sequences_of(ids, real, pos):
                self.trained.add(seq)
        elif past is not None and hasattr(past, "get_seq_length"):  # a generation step
            if past.get_seq_length() == 0:  # prefill: the prompts
                for seq in sequences_of(ids, real):
                    self.prompts.add(seq)
            self.generated_tokens += ids.shape[0]  # each generation forward yields one token per row

    def step_end(self, units: float = 0) -> None:
        self.cum["units"] += units
        self.steps.append(dict(t=time.perf_counter(), cpu=time.process_time(), **self.cum))
        if self.profile and len(self.steps) == self.warmup:
            import torch

            self._prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            self._prof.__enter__()

    def finish(self, extra: Optional[dict] = None) -> dict:
        """Write (and return) the measured window's figures to ``out``."""
        if self._prof is not None:
            self._prof.__exit__(None, None, None)
            table = self._prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=45)
            Path(self.profile).write_text(table)
        start = dict(t=self.t0, cpu=self.cpu0, **{k: 0 for k in self.cum})
        first = self.steps[self.warmup - 1] if self.warmup else start
        last = self.steps[-1] if self.steps else start
        window = ([first] + self.steps[self.warmup:]) if self.steps else []
        times = [b["t"] - a["t"] for a, b in zip(window, window[1:], strict=False)]
        dt, cpu = last["t"] - first["t"], last["cpu"] - first["cpu"]
        result = dict(self.info, steps_total=len(self.steps), steps_measured=len(self.steps) - self.warmup,
                      seconds=dt, cpu_seconds=cpu, median_step_s=statistics.median(times) if times else None,
                      **{k: last[k] - first[k] for k in self.cum}, **(extra or {}))
        result["units_per_sec"] = result["units"] / dt if dt > 0 else float("nan")
        result["tokens_per_sec"] = result["tokens"] / dt if dt > 0 else float("nan")
        # CPU seconds (all threads) of the measured steps: less sensitive than wall time to other processes
        # competing for the cores; with 2 threads and no competition, a rate ~ 2 x the rate per CPU second.
        result["tokens_per_cpu_sec"] = result["tokens"] / cpu if cpu > 0 else None
        result["units_per_cpu_sec"] = result["units"] / cpu if cpu > 0 else None
        result["peak_rss_mb"] = peak_rss_mb()
        if self.pad is not None:
            result["fingerprint"] = dict(trained=self.trained.result(), prompts=self.prompts.result(),
                                         generated_tokens=self.generated_tokens)
        Path(self.out).write_text(json.dumps(result, indent=1))
        return result


def rss_now_mb() -> Optional[float]:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        return None


def peak_rss_mb() -> float:
    """``ru_maxrss`` of this process (kB on Linux): includes imports, data and every model."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def environment(threads: int) -> dict:
    """Machine and library versions, printed and stored beside every benchmark's results."""
    import lightning
    import torch
    import transformers

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    try:
        import trl

        trl_version = trl.__version__
    except ImportError:
        trl_version = None
    return dict(date=datetime.datetime.now().isoformat(timespec="seconds"), cpu=cpu, cpu_count=os.cpu_count(),
                torch_threads=threads, python=platform.python_version(), torch=torch.__version__,
                lightning=lightning.__version__, transformers=transformers.__version__, trl=trl_version,
                mkldnn=torch.backends.mkldnn.is_available())


def worker_env(threads: int, repo: Path, pythonpath_first: Optional[str] = None) -> dict:
    """Environment of a worker subprocess: ``threads`` OpenMP/MKL threads, offline hubs, the repo importable."""
    path = [p for p in (pythonpath_first, str(repo), os.environ.get("PYTHONPATH", "")) if p]
    return dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                PYTHONPATH=os.pathsep.join(path))


def _resolve(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def __getattr__(name: str):
    """``LightningStepMeter`` is built on first access so a peer's worker never imports Lightning."""
    if name != "LightningStepMeter":
        raise AttributeError(name)
    from lightning.pytorch.callbacks import Callback

    class LightningStepMeter(Callback):
        """A :class:`Meter` stamped at every ``on_train_batch_end``.

        Args:
            out: JSON result path.
            warmup: training batches before the measured window.
            units_per_step: units (pairs, episodes...) one training batch counts.
            pad_token_id: count the tokens of every forward of ``pl_module.<model_attr>`` (``None``: no count).
            model_attr: the LightningModule attribute holding the Hugging Face model.
            dataset_stats: dotted path of a function ``f(train_data) -> dict`` stored with the results.
            profile: write a torch.profiler table of the measured steps here.
        """

        def __init__(self, out: str, warmup: int, units_per_step: float = 0, pad_token_id: Optional[int] = None,
                     model_attr: str = "model", dataset_stats: Optional[str] = None, profile: Optional[str] = None):
            self.meter = Meter(warmup, out, profile)
            self.units_per_step, self.pad, self.model_attr = units_per_step, pad_token_id, model_attr
            self.dataset_stats = dataset_stats

        def on_train_start(self, trainer, pl_module):
            self.meter.attach(getattr(pl_module, self.model_attr), self.pad)
            if self.dataset_stats:
                self.meter.info.update(_resolve(self.dataset_stats)(trainer.datamodule.train_data))

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.meter.step_end(self.units_per_step)

        def on_train_end(self, trainer, pl_module):
            self.meter.finish()

    LightningStepMeter.__module__ = __name__
    globals()[name] = LightningStepMeter
    return LightningStepMeter


def fit_ours(work: Path, cfg: dict) -> None:
    """Write ``cfg`` as ``work/ours.yaml`` and run ``rlhf-lightning fit`` on it in this process."""
    import yaml

    from rlhf_lightning.cli import main

    path = Path(work) / "ours.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    rc = main(["fit", "--config", str(path)])
    if rc:
        raise SystemExit(f"rlhf-lightning fit exited with {rc}")
