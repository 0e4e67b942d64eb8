"""Checkpoints and configs written before PPO moved into the ``rlhf_lightning.modules.ppo`` package
still load and resume exactly.

``tests/fixtures/ppo_checkpoint/`` was written by the code of commit 61a02f2 (see
``tests/fixtures/make_ppo_checkpoint.py``): one rollout (4 optimizer steps) through the CLI
(``last.ckpt`` + the run's ``config.yaml``) and one through a plain ``Trainer`` (``api_last.ckpt``,
whose hyperparameters pickle the option dataclasses under ``rlhf_lightning.modules.ppo_config``).
Each is resumed for one more rollout and compared with an uninterrupted 2-rollout run of today's
code: bit for bit when today's code computes the fixture's first rollout bit for bit (the fixture's
CPU model and kernels); otherwise (another CPU, another GEMM kernel: rounding differs from the first
step on) every non-float piece of state must still match exactly and the weights, optimizer moments
and controller values closely — a lost piece of state (optimizer moments, random state, KL
controller, λ, prompt position) moves them by orders of magnitude more.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from rlhf_lightning.cli import main
from rlhf_lightning.modules.ppo import PPOModule  # noqa: F401 - a resume has imported the stage (its safe globals)
from tests.cli.test_resume_cli import assert_same_end
from tests.fixtures.make_ppo_checkpoint import STEPS_PER_ROLLOUT, api_fit

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "ppo_checkpoint"
END = 2 * STEPS_PER_ROLLOUT


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)  # what Lightning's resume does


def this_cpu() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    return next((line.split(":", 1)[1].strip() for line in out if line.startswith("Model name")), "")


def reproduces(fixture: dict, ours: dict) -> bool:
    """Whether today's code computed the fixture's first rollout bit for bit (else: why not, as a warning)."""
    try:
        assert_same_end(fixture, ours)
    except AssertionError as exc:
        meta = json.loads((FIXTURE / "meta.json").read_text())
        warnings.warn(f"the fixture's first rollout (written on {meta['cpu']!r}, torch {meta['torch']}) is not "
                      f"reproduced bit for bit on {this_cpu()!r}: {exc}; comparing the continuation closely "
                      "instead of exactly", stacklevel=2)
        return False
    return True


def assert_close_end(a, b, where: str = "checkpoint") -> None:
    """Same structure, every non-float leaf equal, float tensors and numbers within 1e-4 (relative 1e-3)."""
    assert type(a) is type(b), where
    if isinstance(a, torch.Tensor):
        assert a.shape == b.shape and a.dtype == b.dtype, where
        if a.is_floating_point():
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=where)
        else:
            assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_close_end(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close_end(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-3, abs=1e-4), where
    else:
        assert a == b, where


def assert_continues(start: dict, first: dict, end: dict, uninterrupted: dict) -> None:
    """``end`` (resumed from ``start``) is where ``uninterrupted`` (whose first rollout is ``first``) ends."""
    if reproduces(start, first):
        assert_same_end(end, uninterrupted)
        return
    keys = ("global_step", "epoch", "state_dict", "optimizer_states", "lr_schedulers", "ppo_state", "PromptDataModule")
    for key in keys:
        assert (key in end) == (key in uninterrupted), key
    rng = ("rng", "rng_per_rank")  # the random state after different samples differs, by design
    assert_close_end({k: end[k] for k in keys if k in end and k != "ppo_state"},
                     {k: uninterrupted[k] for k in keys if k in uninterrupted and k != "ppo_state"})
    assert_close_end({k: v for k, v in end["ppo_state"].items() if k not in rng},
                     {k: v for k, v in uninterrupted["ppo_state"].items() if k not in rng}, "ppo_state")


def test_old_module_paths_re_export_the_same_objects():
    import rlhf_lightning.modules.ppo as package
    from rlhf_lightning.modules import ppo_config, ppo_rollout, ppo_state
    from rlhf_lightning.modules.ppo import config, experience, loop, state
    from rlhf_lightning.rollout import samples, scoring

    assert package.PPOModule is loop.PPOModule
    for name in ppo_config.__all__:
        assert getattr(ppo_config, name) is getattr(config, name) is getattr(package, name)
    for name in ppo_state.__all__:
        assert getattr(ppo_state, name) is getattr(state, name)
    for name in ppo_rollout.__all__:
        new = next(m for m in (experience, samples, scoring) if hasattr(m, name))
        assert getattr(ppo_rollout, name) is getattr(new, name), name
    assert {"Rollout", "sample", "forward_completion", "score", "total_reward", "apply_constraints",
            "check_plugin_setup", "completion_mask", "position_ids_of"} <= set(ppo_rollout.__all__)


def test_cli_resumes_a_checkpoint_written_before_the_move(tmp_path, monkeypatch):
    resumed, full = tmp_path / "resumed", tmp_path / "full"
    for root in (resumed, full):
        shutil.copytree(FIXTURE, root)
    cfg = yaml.safe_load((FIXTURE / "config.yaml").read_text(encoding="utf-8"))
    assert cfg["model"]["class_path"] == "rlhf_lightning.modules.ppo.PPOModule"  # the saved config, as is

    monkeypatch.chdir(resumed)
    assert main(["fit", "--config", "config.yaml", "--ckpt_path", "last.ckpt", "--trainer.max_steps", str(END)]) == 0
    end = load(resumed / "checkpoints" / "last.ckpt")
    start = load(FIXTURE / "last.ckpt")
    assert start["global_step"] == STEPS_PER_ROLLOUT and end["global_step"] == END
    assert start["ppo_state"]["rollouts_done"] == 1 and end["ppo_state"]["rollouts_done"] == 2
    assert start["hyper_parameters"]["_class_path"] == end["hyper_parameters"]["_class_path"]

    # the same run uninterrupted, keeping its checkpoint of the first rollout too
    monkeypatch.chdir(full)
    cfg["trainer"]["callbacks"][0]["init_args"]["save_top_k"] = -1
    Path("full.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    assert main(["fit", "--config", "full.yaml", "--trainer.max_steps", str(END)]) == 0
    uninterrupted = load(full / "checkpoints" / "last.ckpt")
    assert end["state_dict"].keys() == uninterrupted["state_dict"].keys()
    first = load(next((full / "checkpoints").glob(f"*step={STEPS_PER_ROLLOUT}.ckpt")))
    assert_continues(start, first, end, uninterrupted)


def test_trainer_resumes_a_checkpoint_with_pickled_options_of_the_old_paths(tmp_path):
    start = load(FIXTURE / "api_last.ckpt")  # weights_only: the old class paths must be allowed globals
    hparams = start["hyper_parameters"]
    from rlhf_lightning.modules.ppo_config import KLSpec, PPOLoopSpec

    assert isinstance(hparams["kl"], KLSpec) and hparams["kl"].target == 0.5
    assert isinstance(hparams["ppo"], PPOLoopSpec) and hparams["ppo"].num_minibatches == 2

    model, prompts = FIXTURE / "model", FIXTURE / "prompts.jsonl"
    resumed, trainer = api_fit(model, prompts, tmp_path / "resumed", END, ckpt_path=str(FIXTURE / "api_last.ckpt"),
                               save=True)
    assert trainer.global_step == END and resumed.rollouts_done == 2
    api_fit(model, prompts, tmp_path / "full", END, save=True)
    ckpts = {name: tmp_path / name / "checkpoints" for name in ("resumed", "full")}
    first = load(next(ckpts["full"].glob(f"*step={STEPS_PER_ROLLOUT}.ckpt")))
    end, uninterrupted = load(ckpts["resumed"] / "last.ckpt"), load(ckpts["full"] / "last.ckpt")
    assert isinstance(end["hyper_parameters"]["kl"], KLSpec)  # saved again, under today's import path
    assert_continues(start, first, end, uninterrupted)
