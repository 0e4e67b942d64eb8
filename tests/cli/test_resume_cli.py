"""Kill and resume, every stage, through the real console script: a run SIGKILLed right after the
checkpoint of step N and resumed with ``--ckpt_path last`` ends bit-for-bit where an uninterrupted run
ends (weights, optimizer moments, LR schedule, data position, stage state); a kill in the middle of
writing ``last.ckpt`` leaves the previous one loadable and resumable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import torch

from rlhf_lightning.cli import main
from tests.cli.conftest import sft_config
from tests.cli.test_dpo_cli import dpo_config, pref_files  # noqa: F401 - fixture
from tests.cli.test_ppo_cli import ppo_config, prompt_file
from tests.cli.test_reward_cli import clf_dir, rm_config, rm_files  # noqa: F401 - fixtures

EXE = str(Path(sys.executable).parent / "rlhf-lightning")
REPO = Path(__file__).resolve().parents[2]
FAULTS = "tests.callbacks.faults"


def checkpoints(root: Path, every: int) -> dict:
    return {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
            "init_args": {"dirpath": str(root / "checkpoints"), "save_last": True, "every_n_train_steps": every}}


def fault(name: str, step: int) -> dict:
    return {"class_path": f"{FAULTS}.{name}", "init_args": {"step": step}}


def run_killed(cfg: Path, *args: str) -> None:
    """Run ``fit`` in a fresh process (its own session, so DDP's second process goes with it) and
    expect it to die by SIGKILL."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([EXE, "fit", "--config", str(cfg), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL, err[-4000:]


def run_cli(cfg: Path, *args: str, subprocess_=False) -> None:
    if not subprocess_:
        assert main(["fit", "--config", str(cfg), *args]) == 0
        return
    res = subprocess.run([EXE, "fit", "--config", str(cfg), *args], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"exit status {res.returncode}\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}"


def last(root: Path) -> dict:
    return torch.load(root / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def assert_same_end(a: dict, b: dict) -> None:
    assert a["global_step"] == b["global_step"] and a["epoch"] == b["epoch"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), f"{k} differs after resuming"
    for key in ("optimizer_states", "lr_schedulers", "ppo_state", "SFTDataModule", "ComparisonDataModule",
                "PromptDataModule"):
        assert key in a or key not in b
        if key in a:
            assert_equal(a[key], b[key], key)


def assert_equal(a, b, where: str) -> None:
    """Exact equality of nested checkpoint entries (tensors bit for bit, everything else with ==)."""
    assert type(a) is type(b), where
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def kill_and_resume(tmp_path: Path, make_config, *, every: int, kill_at: int, extra=(),
                    subprocess_=False) -> tuple[dict, dict]:
    """Uninterrupted run vs. run killed right after the checkpoint of step ``kill_at`` + resumed run;
    returns the checkpoint resumed from and the final one (``max_steps`` must be a multiple of ``every``
    so the last step is checkpointed)."""
    roots = {name: tmp_path / name for name in ("full", "resumed")}
    for root in roots.values():
        root.mkdir()
    run_cli(make_config(roots["full"], [checkpoints(roots["full"], every)]), *extra, subprocess_=subprocess_)
    r = roots["resumed"]
    run_killed(make_config(r, [checkpoints(r, every), fault("KillAfterStep", kill_at)]), *extra)
    killed = last(r)
    assert killed["global_step"] == kill_at
    run_cli(make_config(r, [checkpoints(r, every)]), *extra, "--ckpt_path", "last", subprocess_=subprocess_)
    full = last(roots["full"])
    assert full["global_step"] > kill_at
    assert_same_end(full, last(r))
    return killed, full


SCHEDULE = {"class_path": "rlhf_lightning.optim.schedules.WarmupCosineLR", "init_args": {"warmup_ratio": 0.3}}
ADAMW = {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.01, "weight_decay": 0.1}}


def test_sft_with_gradient_accumulation(tmp_path, tiny_llama_dir, sft_files):
    """24 rows, batch 4, 2 batches per step: 3 steps an epoch; killed after step 4, mid-epoch 1."""
    def config(root, callbacks):
        return sft_config(root, tiny_llama_dir, sft_files, **{
            "trainer.max_steps": 6, "trainer.accumulate_grad_batches": 2, "trainer.callbacks": callbacks,
            "trainer.num_sanity_val_steps": 0, "export.enabled": False,
            "model.init_args.optimizer": ADAMW, "model.init_args.scheduler": SCHEDULE})

    killed, _ = kill_and_resume(tmp_path, config, every=2, kill_at=4)
    assert killed["SFTDataModule"] == {"epoch": 1, "samples_done": 8, "seed": 42}  # 2 batches of epoch 1


def test_sft_ddp_two_processes(tmp_path, tiny_llama_dir, sft_files):
    """Two processes, 4 rows each per batch: 8 rows a step, 3 steps an epoch; killed mid-epoch 1."""
    def config(root, callbacks):
        return sft_config(root, tiny_llama_dir, sft_files, **{
            "trainer.max_steps": 6, "trainer.callbacks": callbacks, "trainer.num_sanity_val_steps": 0,
            "export.enabled": False, "model.init_args.optimizer": ADAMW})

    ddp = ("--trainer.strategy=ddp", "--trainer.devices=2")
    killed, _ = kill_and_resume(tmp_path, config, every=2, kill_at=4, extra=ddp, subprocess_=True)
    assert killed["SFTDataModule"] == {"epoch": 1, "samples_done": 8, "seed": 42}  # 1 batch × 4 rows × 2 ranks


def test_reward_model(tmp_path, clf_dir, rm_files):  # noqa: F811
    """8 pairs, batch 3: 3 steps an epoch; killed after step 4, mid-epoch 1."""
    def config(root, callbacks):
        return rm_config(root, clf_dir, rm_files, **{
            "trainer.max_epochs": None, "trainer.max_steps": 6, "trainer.callbacks": callbacks,
            "export.enabled": False, "data.init_args.batch_size": 3, "model.init_args.optimizer": ADAMW})

    killed, _ = kill_and_resume(tmp_path, config, every=2, kill_at=4)
    assert killed["ComparisonDataModule"] == {"epoch": 1, "samples_done": 3, "seed": 42}


def test_dpo(tmp_path, tiny_llama_dir, pref_files):  # noqa: F811
    """12 pairs, batch 4: 3 steps an epoch; killed after step 4, mid-epoch 1."""
    def config(root, callbacks):
        return dpo_config(root, tiny_llama_dir, pref_files, **{
            "trainer.max_steps": 6, "trainer.val_check_interval": None, "trainer.callbacks": callbacks,
            "export.enabled": False, "data.init_args.batch_size": 4, "model.init_args.optimizer": ADAMW})

    killed, _ = kill_and_resume(tmp_path, config, every=2, kill_at=4)
    assert killed["ComparisonDataModule"] == {"epoch": 1, "samples_done": 4, "seed": 42}


def test_ppo(tmp_path, tiny_llama_dir):
    """4 prompts, batch 2, 2 optimizer steps a rollout: 4 steps an epoch; killed after step 6 (mid-epoch
    1) with a Lagrange multiplier, sampled rollouts and a shuffled prompt order in flight."""
    prompts = prompt_file(tmp_path)

    def config(root, callbacks):
        return ppo_config(root, tiny_llama_dir, prompts, **{
            "trainer.max_steps": 10, "trainer.callbacks": callbacks, "export.enabled": False})

    killed, end = kill_and_resume(tmp_path, config, every=2, kill_at=6)
    assert killed["ppo_state"]["rollouts_done"] == 3 and end["ppo_state"]["rollouts_done"] == 5
    assert killed["PromptDataModule"] == {"epoch": 1, "samples_done": 2, "seed": 0}


def test_kill_while_writing_last_keeps_the_previous_checkpoint(tmp_path, tiny_llama_dir, sft_files):
    """SIGKILL from inside the write of step 4's ``last.ckpt``: step 2's stays, loads and resumes to
    the uninterrupted run's end."""
    def config(root, callbacks):
        return sft_config(root, tiny_llama_dir, sft_files, **{
            "trainer.max_steps": 6, "trainer.callbacks": callbacks, "trainer.num_sanity_val_steps": 0,
            "export.enabled": False})

    full, r = tmp_path / "full", tmp_path / "killed"
    full.mkdir(), r.mkdir()
    run_killed(config(r, [checkpoints(r, 2), fault("KillDuringSave", 4)]))
    left = sorted(p.name for p in (r / "checkpoints").iterdir())
    assert any(name.startswith(".last.ckpt.tmp-") for name in left), left  # killed while writing aside
    assert last(r)["global_step"] == 2
    run_cli(config(r, [checkpoints(r, 2)]), "--ckpt_path", "last")
    assert not any(p.name.startswith(".last.ckpt.tmp-") for p in (r / "checkpoints").iterdir())
    run_cli(config(full, [checkpoints(full, 2)]))
    assert_same_end(last(full), last(r))


def test_kill_during_export_keeps_the_previous_export(tmp_path, tiny_llama_dir, sft_files):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    def config(steps, callbacks):
        return sft_config(tmp_path, tiny_llama_dir, sft_files, **{
            "trainer.max_steps": steps, "trainer.callbacks": callbacks, "trainer.num_sanity_val_steps": 0})

    run_cli(config(1, []))
    export = tmp_path / "export"
    before = load_file(export / "model.safetensors")
    run_killed(config(3, [{"class_path": f"{FAULTS}.KillDuringExport"}]))
    partial = [p for p in tmp_path.iterdir() if p.name.startswith(".export.tmp-")]
    assert partial and (partial[0] / "model.safetensors").is_file()  # killed half-way through the export
    after = load_file(export / "model.safetensors")
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    AutoModelForCausalLM.from_pretrained(export)  # still a complete, loadable folder
    run_cli(config(1, []))  # the next export deletes the killed one's folder
    assert not any(p.name.startswith(".export.") for p in tmp_path.iterdir())


def test_sft_with_dropout_resumes_exactly(tmp_path, tiny_tokenizer_dir, sft_files):
    """Dropout draws from the global random stream: each process's stream is in the checkpoint
    (RandomStateCheckpoint) and restored before the first resumed batch."""
    from transformers import AutoTokenizer

    from tests import tiny

    vocab = len(AutoTokenizer.from_pretrained(tiny_tokenizer_dir))
    model = tiny.build_llama(tmp_path / "dropout_llama", vocab_size=vocab, tokenizer_dir=tiny_tokenizer_dir,
                             attention_dropout=0.3)

    def config(root, callbacks):
        return sft_config(root, model, sft_files, **{
            "trainer.max_steps": 6, "trainer.callbacks": callbacks, "trainer.num_sanity_val_steps": 0,
            "export.enabled": False, "model.init_args.optimizer": ADAMW})

    killed, _ = kill_and_resume(tmp_path, config, every=2, kill_at=4)
    assert any("RandomStateCheckpoint" in k for k in killed["callbacks"])
