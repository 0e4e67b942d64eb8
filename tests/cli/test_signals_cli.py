"""SIGTERM and Ctrl-C (SIGINT) during ``fit``, sent from outside to the real console script: the run
finishes the optimizer step it is in (a gradient-accumulation window, a PPO rollout iteration),
saves ``last.ckpt``, exits with 128 + the signal (143, 130), and ``--ckpt_path last`` then ends
bit-for-bit where an uninterrupted run ends. Before, SIGTERM stopped at the end of the batch with
exit status 0 and no checkpoint, and Ctrl-C exited 1 with none. ``--ckpt_path last`` with nothing
to continue from is an error (it trained from scratch)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from rlhf_lightning.cli import main
from tests.cli.conftest import sft_config
from tests.cli.test_ppo_cli import ppo_config, prompt_file
from tests.cli.test_resume_cli import ADAMW, EXE, FAULTS, REPO, SCHEDULE, assert_same_end, checkpoints, last, run_cli


def run_signalled(cfg_for, root: Path, step: int, signum: int) -> subprocess.CompletedProcess:
    """Run ``fit`` in a fresh process that pauses when the batch after optimizer step ``step`` starts;
    send it ``signum`` there, let it go on, and return how it ended."""
    ready, go = root / "paused", root / "go"
    pause = {"class_path": f"{FAULTS}.PauseAtStep", "init_args": {"step": step, "ready": str(ready), "go": str(go)}}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([EXE, "fit", "--config", str(cfg_for([checkpoints(root, 2), pause]))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), f"the run did not reach step {step}: {proc.poll()}"
        proc.send_signal(signum)
        time.sleep(0.2)  # the handler runs while the callback waits
        go.touch()
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def interrupt_and_resume(tmp_path: Path, make_config, *, step: int, signum: int) -> tuple[dict, str]:
    """Uninterrupted run vs. a run signalled in the batch after step ``step`` and resumed with
    ``--ckpt_path last``; returns the checkpoint the signal left and the signalled run's stderr."""
    full, r = tmp_path / "full", tmp_path / "signalled"
    full.mkdir(), r.mkdir()
    run_cli(make_config(full, [checkpoints(full, 2)]))
    res = run_signalled(lambda callbacks: make_config(r, callbacks), r, step, signum)
    assert res.returncode == 128 + signum, res.stderr[-4000:]
    assert "Traceback" not in res.stderr, res.stderr[-4000:]
    saved = last(r)
    run_cli(make_config(r, [checkpoints(r, 2)]), "--ckpt_path", "last")
    assert_same_end(last(full), last(r))
    return saved, res.stderr


def test_sft_sigterm_mid_accumulation_window_saves_at_the_end_of_the_step(tmp_path, tiny_llama_dir, sft_files):
    """24 rows, batch 4, 2 micro-batches a step: 3 steps an epoch. SIGTERM arrives in the first
    micro-batch of step 4: the second one still runs, step 4's optimizer step is taken and its
    checkpoint written (not step 3's plus half an accumulation window)."""
    def config(root, callbacks):
        return sft_config(root, tiny_llama_dir, sft_files, **{
            "trainer.max_steps": 6, "trainer.accumulate_grad_batches": 2, "trainer.callbacks": callbacks,
            "trainer.num_sanity_val_steps": 0, "export.enabled": False,
            "model.init_args.optimizer": ADAMW, "model.init_args.scheduler": SCHEDULE})

    saved, err = interrupt_and_resume(tmp_path, config, step=3, signum=signal.SIGTERM)
    assert saved["global_step"] == 4
    assert saved["SFTDataModule"] == {"epoch": 1, "samples_done": 8, "seed": 42}  # 2 micro-batches of epoch 1
    path = tmp_path / "signalled" / "checkpoints" / "last.ckpt"
    assert (f"stopped by SIGTERM after optimizer step 4; checkpoint saved to {path}; continue with --ckpt_path last "
            "(exit status 143)") in err


def test_ppo_ctrl_c_finishes_the_rollout_iteration(tmp_path, tiny_llama_dir):
    """2 optimizer steps a rollout; Ctrl-C arrives as rollout 3 starts (after step 4): its PPO update
    (steps 5 and 6) runs to the end, then the checkpoint is written and the run exits 130."""
    prompts = prompt_file(tmp_path)

    def config(root, callbacks):
        return ppo_config(root, tiny_llama_dir, prompts, **{
            "trainer.max_steps": 10, "trainer.callbacks": callbacks, "export.enabled": False})

    saved, err = interrupt_and_resume(tmp_path, config, step=4, signum=signal.SIGINT)
    assert saved["global_step"] == 6 and saved["ppo_state"]["rollouts_done"] == 3
    assert "stopped by SIGINT after optimizer step 6" in err and "(exit status 130)" in err
    assert not (tmp_path / "signalled" / "export").exists()


def test_ckpt_path_last_without_a_checkpoint_is_an_error(tmp_path, tiny_llama_dir, sft_files, capsys):
    cfg = sft_config(tmp_path, tiny_llama_dir, sft_files, **{"trainer.max_steps": 1, "export.enabled": False})
    assert main(["fit", "--config", str(cfg), "--ckpt_path", "last"]) == 2
    err = capsys.readouterr().err
    assert (f"fit --ckpt_path last: there is no last checkpoint to continue from (looked in "
            f"{tmp_path / 'checkpoints'})") in err
    assert "Traceback" not in err and not (tmp_path / "checkpoints").exists()
