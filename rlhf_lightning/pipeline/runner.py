"""Plan and run a pipeline: skip finished steps, resume interrupted ones, stop at the first failure.

Each training step runs as ``python -m rlhf_lightning.cli fit ...`` in a child process whose output
goes to ``<run folder>/pipeline.log``. Two small JSON files record where a step stands:

- ``<run folder>/pipeline_step.json``: the key of the attempt under way and when it started; a
  rerun with the same key resumes from the step's ``last.ckpt`` if that file was written after the
  attempt started (an older one belongs to another config and is never resumed from);
- ``<export folder>/pipeline_step.json``: written once the step finished and its export is complete,
  with the step's key. A step whose export holds its current key is done and skipped.

Data steps (``rlhf-lightning sample``: preference data from a policy; ``rlhf-lightning constitution``:
critique/revision data) are keyed and skipped the same way: their output folder is their export, their log goes to
``<log_dir>/pipeline/<step>/pipeline.log``. Evaluation steps always run (they take seconds and read
whatever the training steps left). SIGINT / SIGTERM sent to the pipeline are passed on to the
running step, which saves a checkpoint and stops (exit 128 + signal); the pipeline then stops with the
same status, and rerunning it resumes that step.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

from rlhf_lightning.atomic_paths import atomic_file
from rlhf_lightning.errors import ConfigError, RLHFError
from rlhf_lightning.pipeline.resolve import (
    Resolved,
    describe_resolved,
    describe_sample,
    override_args,
    resolve_fit,
    resolve_sample,
)
from rlhf_lightning.pipeline.spec import DATA_COMMANDS, Step, substitute

STATE_FILE = "pipeline_step.json"


class StepFailed(RLHFError):
    """A step's command failed; ``status`` is its exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Planned:
    """A step with its resolved command line and what the runner will do with it."""

    step: Step
    args: list[str]  # after ``rlhf-lightning``
    resolved: Optional[Resolved]  # fit and sample steps; None for evaluation
    action: str  # "skip" (done), "run", "rerun" (done with another config), "resume", "evaluate"
    reason: str = ""
    selected: bool = True
    log_dir: str = "runs/pipeline"  # logs of steps without a run folder (evaluation)

    @property
    def log_path(self) -> Path:
        if self.resolved is not None:
            return Path(self.resolved.run_dir) / "pipeline.log"
        return Path(self.log_dir) / f"{self.step.name}.log"


def _read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: dict) -> None:
    with atomic_file(path, "w", what="pipeline state", encoding="utf-8") as f:
        json.dump(data, f, indent=2)


def plan(steps: list[Step], selected: list[Step], *, force: bool = False,
         log_dir: str = "runs/pipeline") -> list[Planned]:
    """Resolve every step (in plan order) and decide what to do with each selected one."""
    folders: dict[str, dict[str, str]] = {}
    keys: dict[str, str] = {}
    chosen = {s.name for s in selected}
    planned: list[Planned] = []
    for step in steps:
        overrides = substitute(step.set, folders)
        args = [step.command] + [a for c in step.configs for a in ("--config", c)] + override_args(overrides)
        if step.command == "evaluate":
            planned.append(Planned(step, args, None, "evaluate", selected=step.name in chosen, log_dir=log_dir))
            continue
        upstream = [keys[d] for d in step.dependencies() if d in keys]
        try:
            if step.command in DATA_COMMANDS:
                log_folder = str(Path(log_dir) / "pipeline" / step.name)
                resolved = describe_sample(resolve_sample(args[1:], step.command), upstream, log_folder)
            else:
                resolved = describe_resolved(resolve_fit(args[1:]), upstream)
        except ConfigError as exc:
            raise ConfigError(f"step {step.name!r} ({' '.join(step.configs)}): {exc}") from exc
        if resolved.export_dir is None and any(step.name in s.references() for s in steps):
            raise ConfigError(f"step {step.name!r} has its export disabled, but other steps refer to its export")
        keys[step.name] = resolved.key
        folders[step.name] = {"export": resolved.export_dir or "", "dir": resolved.run_dir}
        planned.append(_decide(step, args, resolved, force, step.name in chosen))
    _check_disjoint(planned)
    _check_dependencies_ready(planned)
    return planned


def _decide(step: Step, args: list[str], resolved: Resolved, force: bool, selected: bool) -> Planned:
    done_file = Path(resolved.export_dir or resolved.run_dir) / STATE_FILE
    done = _read_json(done_file) or {}
    if done.get("status") == "done" and done.get("key") == resolved.key and not force:
        return Planned(step, args, resolved, "skip", "done", selected)
    state = _read_json(Path(resolved.run_dir) / STATE_FILE) or {}
    last = resolved.last_checkpoint
    if (state.get("status") == "running" and state.get("key") == resolved.key and last and Path(last).exists()
            and os.path.getmtime(last) >= float(state.get("started", float("inf")))):
        return Planned(step, args + [f"--ckpt_path={last}"], resolved, "resume", f"from {last}", selected)
    if done.get("key") and done.get("key") != resolved.key:
        return Planned(step, args, resolved, "rerun", "its config or an earlier step's changed", selected)
    return Planned(step, args, resolved, "run", "forced" if force and done else "", selected)


def _check_disjoint(planned: list[Planned]) -> None:
    seen: dict[str, str] = {}
    for item in planned:
        if item.resolved is None:
            continue
        for folder in {item.resolved.run_dir, item.resolved.export_dir} - {None}:
            real = os.path.realpath(folder)
            if real in seen and seen[real] != item.step.name:
                raise ConfigError(f"steps {seen[real]!r} and {item.step.name!r} both write to {folder}: give each "
                                  "its own trainer.default_root_dir / export.dirpath")
            seen[real] = item.step.name


def _check_dependencies_ready(planned: list[Planned]) -> None:
    by_name = {p.step.name: p for p in planned}
    for item in planned:
        if not item.selected:
            continue
        for dep in item.step.dependencies():
            other = by_name[dep]
            if not other.selected and other.action != "skip":
                state = "changed since it was done" if other.action == "rerun" else "not done"
                raise ConfigError(f"step {item.step.name!r} needs {dep!r}, which is {state} and not selected: "
                                  f"run it first or widen --from/--only/--until")


def describe(planned: list[Planned]) -> str:
    """The plan as text: position, name, action, folders, command line."""
    lines = []
    for i, item in enumerate(planned, 1):
        what = item.action if item.selected else "not selected"
        if item.selected and item.action == "skip":
            what = "done, skipped"
        line = f"{i}. {item.step.name} [{what}{': ' + item.reason if item.reason and item.selected else ''}]"
        if item.resolved and item.resolved.export_dir:
            line += f" -> {item.resolved.export_dir}"
        lines.append(line)
        lines.append(f"     rlhf-lightning {shlex.join(item.args)}")
    return "\n".join(lines)


def _die_with_parent() -> None:
    """In the child: be killed when the pipeline process dies (Linux), so no orphan keeps training."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@contextlib.contextmanager
def _forwarding_signals(proc: subprocess.Popen) -> Iterator[list[int]]:
    """While the step runs, SIGINT / SIGTERM sent to the pipeline are passed on to the step (which
    saves a checkpoint at its next safe point and stops) and recorded in the yielded list."""
    received: list[int] = []

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        if proc.poll() is None:
            proc.send_signal(signum)

    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_step(item: Planned, log_path: Path) -> tuple[int, str, Optional[int]]:
    """Run the step's command with output to ``log_path``; returns (exit status, its stdout for an
    evaluation step, the signal the pipeline received and passed on to it, if any)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "rlhf_lightning.cli", *item.args]
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} rlhf-lightning {' '.join(item.args)}\n")
        log.flush()
        evaluation = item.resolved is None  # keep its stdout to show the summary
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE if evaluation else log,
                                stderr=log if evaluation else subprocess.STDOUT, text=True, env=env,
                                preexec_fn=_die_with_parent)
        with _forwarding_signals(proc) as received:
            stdout, _ = proc.communicate()
        if evaluation:
            log.write(stdout)
        return proc.returncode, stdout or "", received[0] if received else None


def failure_cause(log_path: Path) -> str:
    """The error message of a failed run: its ``rlhf-lightning: error:`` line, else the last line."""
    try:
        lines = [ln.strip() for ln in log_path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    for line in reversed(lines):
        if line.startswith("rlhf-lightning: error:"):
            return line[len("rlhf-lightning: error:"):].strip()
    for line in reversed(lines):
        if not line.startswith(("(set RLHF_LIGHTNING_TRACEBACK", "===")):
            return line
    return "no output"


def execute(planned: list[Planned], echo: Callable[[str], None] = print) -> str:
    """Run the selected steps in order; returns the last evaluation's stdout ('' if none ran)."""
    todo = [p for p in planned if p.selected]
    started = time.monotonic()
    report = ""
    for i, item in enumerate(todo, 1):
        head = f"[{i}/{len(todo)}] {item.step.name}"
        if item.action == "skip":
            echo(f"{head}: done (export {item.resolved.export_dir}), skipped")
            continue
        log_path = item.log_path
        verb = {"resume": f"resuming {item.reason}", "rerun": f"rerunning ({item.reason})"}.get(item.action, "running")
        echo(f"{head}: {verb}; log {log_path}")
        t0 = time.monotonic()
        if item.resolved:
            _write_json(Path(item.resolved.run_dir) / STATE_FILE,
                        {"step": item.step.name, "key": item.resolved.key, "status": "running", "started": time.time()})
        status, stdout, signum = run_step(item, log_path)
        took = time.monotonic() - t0
        if signum is not None and status != 0:
            saved = " after saving its checkpoint" if status == 128 + signum else ""
            raise StepFailed(f"step {item.step.name!r} ({i}/{len(todo)}) stopped by {signal.Signals(signum).name}"
                             f"{saved} (exit status {status}); rerun the pipeline to continue it\n  log: {log_path}",
                             128 + signum)
        if status != 0:
            raise StepFailed(f"step {item.step.name!r} ({i}/{len(todo)}) failed with exit status {status}: "
                             f"{failure_cause(log_path)}\n  log: {log_path}", 2 if status == 2 else 1)
        if item.resolved:
            record = {"step": item.step.name, "key": item.resolved.key, "status": "done", "seconds": round(took, 1),
                      "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
            _write_json(Path(item.resolved.export_dir or item.resolved.run_dir) / STATE_FILE, record)
            _write_json(Path(item.resolved.run_dir) / STATE_FILE, record)
        else:
            report = stdout
        echo(f"{head}: finished in {_minutes(took)} (pipeline {_minutes(time.monotonic() - started)})")
    return report


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:04.1f} s" if seconds >= 60 else f"{seconds:.1f} s"
