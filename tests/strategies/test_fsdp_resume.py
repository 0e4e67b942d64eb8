"""Kill and resume under FSDP2 (2 CPU processes): the checkpoint is a folder of per-rank shards plus
Lightning's metadata (stage state, data position); a run SIGKILLed after the checkpoint of step N and
resumed with ``--ckpt_path last`` exports exactly the weights of an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.cli.test_resume_cli import checkpoints, fault, run_cli, run_killed
from tests.strategies.test_stage_parity import PRESETS, models, ppo, sft  # noqa: F401 - fixture


def _preset(name: str) -> tuple[str, ...]:
    return ("--config", str(PRESETS[name]), "--trainer.devices", "2")


def assert_same_export(full: Path, resumed: Path) -> None:
    a, b = load_file(full / "export" / "model.safetensors"), load_file(resumed / "export" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resuming"


def _config(root: Path, build, models, callbacks: list, max_steps: int) -> Path:  # noqa: F811
    from tests.cli.conftest import write_config

    cfg = {"seed_everything": 0, **build(root, models, 2)}
    cfg["trainer"]["callbacks"] = callbacks
    cfg["trainer"]["max_steps"] = max_steps
    cfg["model"]["init_args"]["optimizer"] = {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.01}}
    return write_config(root / "run.yaml", cfg, {})


@pytest.mark.slow
@pytest.mark.parametrize("stage,strategy", [("sft", "fsdp"), ("ppo", "fsdp"), ("ppo", "ddp")])
def test_kill_and_resume_ends_with_the_same_weights(stage, strategy, tmp_path, models):  # noqa: F811
    launch = _preset(strategy)
    build = {"sft": sft, "ppo": ppo}[stage]
    steps, every, kill_at = (6, 2, 4) if stage == "sft" else (8, 4, 4)  # PPO: 2 optimizer steps per rollout
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    for root in (full, resumed):
        root.mkdir()
    run_cli(_config(full, build, models, [checkpoints(full, every)], steps), *launch, subprocess_=True)
    run_killed(_config(resumed, build, models, [checkpoints(resumed, every), fault("KillAfterStep", kill_at)], steps),
               *launch)
    ckpt = resumed / "checkpoints" / "last.ckpt"
    assert ckpt.is_dir() == (strategy == "fsdp") and not (resumed / "export").exists()
    meta = torch.load(ckpt / "meta.pt" if ckpt.is_dir() else ckpt, map_location="cpu", weights_only=False)
    assert meta["global_step"] == kill_at
    run_cli(_config(resumed, build, models, [checkpoints(resumed, every)], steps), *launch, "--ckpt_path", "last",
            subprocess_=True)
    assert_same_export(full, resumed)


@pytest.mark.slow
def test_kill_while_writing_sharded_last_keeps_the_previous_one(tmp_path, models):  # noqa: F811
    """Every process SIGKILLed while step 4's sharded ``last.ckpt`` is being written (all shards on disk,
    rank 0 writing the metadata): step 2's folder stays whole, resumes to the uninterrupted run's
    weights, and the next save deletes the killed one's leftovers."""
    launch = _preset("fsdp")
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    for root in (full, resumed):
        root.mkdir()
    run_cli(_config(full, sft, models, [checkpoints(full, 2)], 6), *launch, subprocess_=True)
    killer = {**fault("KillDuringSave", 4), "init_args": {"step": 4, "group": True}}
    run_killed(_config(resumed, sft, models, [checkpoints(resumed, 2), killer], 6), *launch)
    folder = resumed / "checkpoints"
    left = [p for p in folder.iterdir() if p.name.startswith(".last.ckpt.tmp-")]
    assert len(left) == 1 and any(p.suffix == ".distcp" for p in left[0].iterdir())  # killed after the shards
    assert torch.load(folder / "last.ckpt" / "meta.pt", map_location="cpu", weights_only=False)["global_step"] == 2
    run_cli(_config(resumed, sft, models, [checkpoints(resumed, 2)], 6), *launch, "--ckpt_path", "last",
            subprocess_=True)
    assert not any(p.name.startswith(".last.ckpt.") for p in folder.iterdir())
    assert_same_export(full, resumed)
