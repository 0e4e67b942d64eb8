"""``rlhf-lightning pipeline`` end to end on tiny SFT steps: finished steps are skipped, a changed config
reruns its step and those after it only, an interrupted step resumes from its checkpoint to the same
weights, a failing step stops the pipeline with one message, and bad pipelines exit 2."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from rlhf_lightning.cli import main
from tests.cli.conftest import sft_config

REPO = Path(__file__).resolve().parents[2]


def checkpoints(root: Path) -> dict:
    return {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
            "init_args": {"dirpath": str(root / "checkpoints"), "save_last": True, "every_n_train_steps": 2}}


def make_pipeline(tmp_path: Path, model_dir: Path, files: dict, *, base: dict | None = None,
                  tuned: dict | None = None, tuned_callbacks: list | None = None) -> Path:
    """Two SFT steps: ``base`` from the tiny model, ``tuned`` from base's export (by reference)."""
    runs = tmp_path / "runs"
    configs = {}
    for name, extra in (("base", base or {}), ("tuned", tuned or {})):
        root = runs / name
        root.mkdir(parents=True, exist_ok=True)
        configs[name] = sft_config(root, model_dir, files, **{
            "trainer.max_steps": 6, "trainer.num_sanity_val_steps": 0, "trainer.val_check_interval": None,
            "trainer.callbacks": [checkpoints(root), *((tuned_callbacks or []) if name == "tuned" else [])],
            **extra})
    doc = {"log_dir": str(runs), "steps": [
        {"name": "base", "config": str(configs["base"])},
        {"name": "tuned", "config": str(configs["tuned"]),
         "set": {"model.init_args.policy.name_or_path": "${base.export}"}},
    ]}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def run(pipeline: Path, capsys, *args: str) -> tuple[int, str, str]:
    status = main(["pipeline", "--config", str(pipeline), *args])
    out = capsys.readouterr()
    return status, out.out, out.err


def weights(export: Path) -> dict:
    return load_file(export / "model.safetensors")


def test_skip_and_rerun_only_what_changed(tmp_path, tiny_llama_dir, sft_files, capsys):
    pipeline = make_pipeline(tmp_path, tiny_llama_dir, sft_files)
    status, out, _ = run(pipeline, capsys)
    assert status == 0, out
    base, tuned = tmp_path / "runs/base/export", tmp_path / "runs/tuned/export"
    assert "[1/2] base: running" in out and "[2/2] tuned: running" in out
    assert (base / "pipeline_step.json").is_file() and (tuned / "pipeline_step.json").is_file()
    first = {p: (p / "model.safetensors").stat().st_mtime_ns for p in (base, tuned)}

    status, out, _ = run(pipeline, capsys)  # nothing changed: nothing runs
    assert status == 0 and "[1/2] base: done" in out and "[2/2] tuned: done" in out and "running" not in out, out
    assert {p: (p / "model.safetensors").stat().st_mtime_ns for p in (base, tuned)} == first

    # a changed option of the second step reruns it alone
    make_pipeline(tmp_path, tiny_llama_dir, sft_files, tuned={"trainer.max_steps": 4})
    status, out, _ = run(pipeline, capsys)
    assert status == 0 and "[1/2] base: done" in out and "[2/2] tuned: rerunning" in out, out
    assert (base / "model.safetensors").stat().st_mtime_ns == first[base]
    assert (tuned / "model.safetensors").stat().st_mtime_ns != first[tuned]

    # a changed first step reruns both; --dry-run only says so
    make_pipeline(tmp_path, tiny_llama_dir, sft_files, base={"trainer.max_steps": 4}, tuned={"trainer.max_steps": 4})
    status, out, _ = run(pipeline, capsys, "--dry-run")
    assert status == 0 and out.count("[rerun:") == 2, out
    assert (base / "model.safetensors").stat().st_mtime_ns == first[base]
    status, out, _ = run(pipeline, capsys, "--only", "base")
    assert status == 0 and "base: rerunning" in out and "tuned" not in out.split("\n", 5)[-1], out
    status, out, _ = run(pipeline, capsys, "--from", "tuned")
    assert status == 0 and "[1/1] tuned: rerunning" in out, out


def test_a_killed_pipeline_resumes_its_step_to_the_uninterrupted_weights(tmp_path, tiny_llama_dir, sft_files):
    """The whole process group (pipeline and stage) is SIGKILLed when step 2 of 'tuned' starts (right
    after its step-2 checkpoint); the rerun skips 'base', resumes 'tuned' from that checkpoint and ends
    with the weights of a pipeline that was never interrupted (same configs, other folders)."""
    kill = {"class_path": "tests.callbacks.faults.KillGroupAfterStepIf", "init_args": {"step": 2}}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("RLHF_TEST_KILL", None)
    pipelines = {}
    for name in ("killed", "full"):
        (tmp_path / name).mkdir()
        pipelines[name] = make_pipeline(tmp_path / name, tiny_llama_dir, sft_files, tuned_callbacks=[kill])

    def pipeline(name: str, **extra_env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rlhf_lightning.cli", "pipeline", "--config",
                               str(pipelines[name])], env={**env, **extra_env}, capture_output=True, text=True,
                              timeout=600, start_new_session=True)

    res = pipeline("killed", RLHF_TEST_KILL="1")
    assert res.returncode == -signal.SIGKILL, res.stdout + res.stderr
    tuned = tmp_path / "killed/runs/tuned"
    assert (tmp_path / "killed/runs/base/export/pipeline_step.json").is_file()
    assert not (tuned / "export").exists() and (tuned / "checkpoints/last.ckpt").is_file()

    res = pipeline("killed")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "[1/2] base: done" in res.stdout and f"tuned: resuming from {tuned / 'checkpoints/last.ckpt'}" in res.stdout
    assert pipeline("full").returncode == 0
    for name in ("base", "tuned"):
        a, b = (weights(tmp_path / run / f"runs/{name}/export") for run in ("killed", "full"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_a_failing_step_stops_with_one_message_and_earlier_steps_stay_done(tmp_path, tiny_llama_dir, sft_files,
                                                                            capsys):
    pipeline = make_pipeline(tmp_path, tiny_llama_dir, sft_files,
                             tuned={"data.init_args.train": str(tmp_path / "missing.csv")})
    status, out, err = run(pipeline, capsys)
    assert status == 2
    assert "step 'tuned' (2/2) failed with exit status 2" in err and "missing.csv" in err, err
    assert f"log: {tmp_path / 'runs/tuned/pipeline.log'}" in err
    assert (tmp_path / "runs/base/export/pipeline_step.json").is_file()
    status, out, err = run(pipeline, capsys)
    assert status == 2 and "[1/2] base: done" in out


@pytest.mark.parametrize("steps, message", [
    ([{"name": "a", "config": "x.yaml", "after": "b"}, {"name": "b", "config": "x.yaml", "after": "a"}], "cycle"),
    ([{"name": "a", "config": "x.yaml", "set": {"k": "${b.export}"}}], "'b', which is not a step"),
    ([{"name": "a", "config": "missing.yaml"}], "config file not found: missing.yaml"),
])
def test_bad_pipelines_exit_2_with_one_message(tmp_path, capsys, monkeypatch, steps, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.yaml").write_text("seed_everything: 0\n", encoding="utf-8")
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"steps": steps}), encoding="utf-8")
    status, out, err = run(tmp_path / "p.yaml", capsys)
    assert status == 2 and message in err and "Traceback" not in err, err
    assert err.count("error:") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml", "x.yaml"]  # nothing written


def test_a_step_config_the_parser_refuses_is_reported_before_anything_runs(tmp_path, tiny_llama_dir, sft_files,
                                                                           capsys):
    pipeline = make_pipeline(tmp_path, tiny_llama_dir, sft_files, tuned={"model.init_args.no_such_option": 1})
    status, out, err = run(pipeline, capsys)
    assert status == 2 and "step 'tuned'" in err and "no_such_option" in err, err
    assert not (tmp_path / "runs/base/export").exists()


def test_a_sample_step_feeds_a_later_step_and_is_skipped_until_its_config_changes(tmp_path, tiny_llama_dir,
                                                                                  sft_files, capsys):
    """base (SFT) -> samples (rlhf-lightning sample from base's export) -> tuned (SFT on the best-of-N rows)."""
    pipeline = make_pipeline(tmp_path, tiny_llama_dir, sft_files)
    doc = yaml.safe_load(pipeline.read_text(encoding="utf-8"))
    sample_config = tmp_path / "sample.yaml"
    sample_config.write_text(yaml.safe_dump({
        "policy": str(tiny_llama_dir), "prompts": str(sft_files["prompts"]), "samples_per_prompt": 3, "seed": 0,
        "generation": {"max_new_tokens": 6, "do_sample": True}, "max_prompt_length": 32,
        "rewards": [{"class_path": "length", "init_args": {"target": 10, "unit": "chars"}}],
        "output": str(tmp_path / "runs/samples")}), encoding="utf-8")
    doc["steps"].insert(1, {"name": "samples", "command": "sample", "config": str(sample_config),
                            "set": {"policy": "${base.export}"}})
    doc["steps"][2]["set"]["data.init_args.train"] = "${samples.export}/best_of_n.jsonl"
    pipeline.write_text(yaml.safe_dump(doc), encoding="utf-8")

    status, out, err = run(pipeline, capsys)
    assert status == 0, out + err
    assert "[2/3] samples: running; log " + str(tmp_path / "runs/pipeline/samples/pipeline.log") in out
    samples = tmp_path / "runs/samples"
    assert (samples / "best_of_n.jsonl").is_file() and (samples / "pipeline_step.json").is_file()
    assert "best_of_n.jsonl" in (tmp_path / "runs/tuned/pipeline.log").read_text(encoding="utf-8")
    stamp = (samples / "samples.jsonl").stat().st_mtime_ns

    status, out, _ = run(pipeline, capsys)
    assert status == 0 and "[2/3] samples: done" in out and "[3/3] tuned: done" in out, out

    doc["steps"][1]["set"]["seed"] = 1  # another sampling stream: samples and tuned rerun, base stays done
    pipeline.write_text(yaml.safe_dump(doc), encoding="utf-8")
    status, out, _ = run(pipeline, capsys)
    assert status == 0 and "[1/3] base: done" in out, out
    assert "[2/3] samples: rerunning" in out and "[3/3] tuned: rerunning" in out, out
    assert (samples / "samples.jsonl").stat().st_mtime_ns != stamp


def test_sigterm_to_the_pipeline_saves_the_running_step_and_the_rerun_resumes_it(tmp_path, tiny_llama_dir,
                                                                                   sft_files):
    """SIGTERM sent to the pipeline process alone (as a job scheduler or `kill PID` does) reaches the
    running step, which finishes its optimizer step, saves last.ckpt and stops; the pipeline exits 143
    naming the step, and the rerun resumes that step from the checkpoint."""
    ready, go = tmp_path / "paused", tmp_path / "go"
    pause = {"class_path": "tests.callbacks.faults.PauseAtStep",
             "init_args": {"step": 2, "ready": str(ready), "go": str(go), "env": "RLHF_TEST_PAUSE"}}
    pipeline = make_pipeline(tmp_path, tiny_llama_dir, sft_files, tuned_callbacks=[pause])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "rlhf_lightning.cli", "pipeline", "--config", str(pipeline)]
    proc = subprocess.Popen(cmd, env={**env, "RLHF_TEST_PAUSE": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), proc.communicate()
        proc.send_signal(signal.SIGTERM)  # the pipeline process only, not its group
        time.sleep(0.3)
        go.touch()
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    tuned = tmp_path / "runs/tuned"
    assert proc.returncode == 143, out + err
    assert "step 'tuned' (2/2) stopped by SIGTERM after saving its checkpoint" in err and "Traceback" not in err, err
    assert (tuned / "checkpoints/last.ckpt").is_file() and not (tuned / "export").exists()
    assert torch.load(tuned / "checkpoints/last.ckpt", weights_only=True)["global_step"] == 3

    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"tuned: resuming from {tuned / 'checkpoints/last.ckpt'}" in res.stdout, res.stdout
    assert (tuned / "export/pipeline_step.json").is_file()
