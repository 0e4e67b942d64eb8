"""A pipeline file: named steps, their dependencies, references between them, and the plan order.

A pipeline is a YAML list of steps; each is an ordinary stage config (one path, or a list that
stacks presets) plus ``set:`` overrides, run with ``rlhf-lightning <command>``::

    steps:
      - name: sft
        config: configs/demo/sft.yaml
        set: {model.init_args.policy.name_or_path: "${pretrain.export}"}
      - name: report
        command: evaluate
        config: configs/demo/evaluate.yaml

``${NAME.export}`` is step NAME's Hugging Face export folder and ``${NAME.dir}`` its run folder
(``trainer.default_root_dir``); for a ``sample`` or ``constitution`` step (``rlhf-lightning sample``,
``rlhf-lightning constitution``), ``export`` is its output folder (``${NAME.export}/pairs.jsonl``) and
``dir`` the folder of its log. A reference makes
NAME a dependency, and ``after:`` adds others.
This module is plain Python (no Lightning): parsing, validation and ordering only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from rlhf_lightning.errors import ConfigError

COMMANDS = ("fit", "evaluate", "sample", "constitution")
#: commands whose step has folders other steps may refer to (``fit``: run and export; the data
#: commands ``sample`` and ``constitution``: their output folder)
PRODUCERS = ("fit", "sample", "constitution")
#: producers that write one output folder (keyed and skipped like fit steps, logs under the pipeline's log_dir)
DATA_COMMANDS = ("sample", "constitution")
REFERENCE = re.compile(r"\$\{([A-Za-z_][\w-]*)\.(export|dir)\}")
_NAME = re.compile(r"^[A-Za-z_][\w-]*$")


@dataclass
class Step:
    """One step of the plan; ``set`` maps dotted option names to values (references unresolved)."""

    name: str
    command: str
    configs: list[str]
    set: dict[str, Any] = field(default_factory=dict)
    after: list[str] = field(default_factory=list)

    def references(self) -> list[str]:
        """Names of the steps whose folders this step's overrides refer to, in order of appearance."""
        found: list[str] = []
        for value in _strings(self.set):
            for match in REFERENCE.finditer(value):
                if match.group(1) not in found:
                    found.append(match.group(1))
        return found

    def dependencies(self) -> list[str]:
        return list(dict.fromkeys([*self.after, *self.references()]))


def _strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def substitute(value: Any, folders: dict[str, dict[str, str]]) -> Any:
    """``value`` with every ``${NAME.export|dir}`` replaced from ``folders[NAME][kind]``."""
    if isinstance(value, str):
        return REFERENCE.sub(lambda m: folders[m.group(1)][m.group(2)], value)
    if isinstance(value, dict):
        return {k: substitute(v, folders) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [substitute(v, folders) for v in value]
    return value


@dataclass
class Pipeline:
    """A validated pipeline file: its steps in plan (dependency) order, and where evaluation logs go."""

    steps: list[Step]
    log_dir: str = "runs/pipeline"


def load_pipeline(path: str | Path) -> Pipeline:
    """Read and validate a pipeline file (keys ``steps`` and optionally ``log_dir``)."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"pipeline file not found: {path}")
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("steps"), list) or not doc["steps"]:
        raise ConfigError(f"{path}: expected a mapping with a non-empty list under 'steps'")
    unknown = sorted(set(doc) - {"steps", "log_dir"})
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {unknown} (allowed: steps, log_dir)")
    if not isinstance(doc.get("log_dir", ""), str):
        raise ConfigError(f"{path}: 'log_dir' must be a folder path")
    steps = [_parse_step(raw, i, path) for i, raw in enumerate(doc["steps"], 1)]
    return Pipeline(plan_order(steps, source=str(path)), doc.get("log_dir") or "runs/pipeline")


def _parse_step(raw: Any, index: int, path: str | Path) -> Step:
    where = f"{path}: step {index}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with name/config, got {type(raw).__name__}")
    unknown = sorted(set(raw) - {"name", "command", "config", "set", "after"})
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} (allowed: name, command, config, set, after)")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{where}: 'name' must be a word (letters, digits, _ or -), got {name!r}")
    where = f"{path}: step {name!r}"
    command = raw.get("command", "fit")
    if command not in COMMANDS:
        raise ConfigError(f"{where}: command must be one of {list(COMMANDS)}, got {command!r}")
    configs = raw.get("config")
    configs = [configs] if isinstance(configs, str) else configs
    if not configs or not isinstance(configs, list) or not all(isinstance(c, str) for c in configs):
        raise ConfigError(f"{where}: 'config' must be a path or a list of paths")
    for config in configs:
        if not Path(config).is_file():
            raise ConfigError(f"{where}: config file not found: {config}")
    overrides = raw.get("set") or {}
    if not isinstance(overrides, dict) or not all(isinstance(k, str) and k for k in overrides):
        raise ConfigError(f"{where}: 'set' must map option names (e.g. model.init_args.policy.name_or_path) to values")
    after = raw.get("after") or []
    after = [after] if isinstance(after, str) else after
    if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
        raise ConfigError(f"{where}: 'after' must be a step name or a list of step names")
    return Step(name=name, command=command, configs=list(configs), set=dict(overrides), after=list(after))


def plan_order(steps: list[Step], source: str = "pipeline") -> list[Step]:
    """Topological order, stable with respect to the file's order; refuses duplicates, unknown
    references, references to a non-``fit`` step's folders, and cycles (named)."""
    by_name: dict[str, Step] = {}
    for step in steps:
        if step.name in by_name:
            raise ConfigError(f"{source}: two steps are named {step.name!r}")
        by_name[step.name] = step
    for step in steps:
        for dep in step.dependencies():
            if dep not in by_name:
                raise ConfigError(f"{source}: step {step.name!r} depends on {dep!r}, which is not a step "
                                  f"(steps: {', '.join(by_name)})")
            if dep == step.name:
                raise ConfigError(f"{source}: step {step.name!r} depends on itself")
        for ref in step.references():
            if by_name[ref].command not in PRODUCERS:
                raise ConfigError(f"{source}: step {step.name!r} refers to the folders of {ref!r}, "
                                  f"whose command is {by_name[ref].command!r} (only fit, sample and constitution steps have folders)")
    ordered: list[Step] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = placed

    def visit(step: Step, path: list[str]) -> None:
        if state.get(step.name) == 2:
            return
        if state.get(step.name) == 1:
            cycle = path[path.index(step.name):] + [step.name]
            raise ConfigError(f"{source}: the steps form a cycle: {' -> '.join(cycle)}")
        state[step.name] = 1
        for dep in step.dependencies():
            visit(by_name[dep], [*path, step.name])
        state[step.name] = 2
        ordered.append(step)

    for step in steps:
        visit(step, [])
    return ordered


def select(steps: list[Step], *, only: Optional[list[str]] = None, start: Optional[str] = None,
           until: Optional[str] = None) -> list[Step]:
    """The steps to consider: ``only`` these, or the plan from ``start`` to ``until`` (inclusive)."""
    names = [s.name for s in steps]
    for option, value in (("--only", only or []), ("--from", [start] if start else []),
                          ("--until", [until] if until else [])):
        for name in value:
            if name not in names:
                raise ConfigError(f"{option} {name}: no such step (steps: {', '.join(names)})")
    if only:
        if start or until:
            raise ConfigError("--only cannot be combined with --from/--until")
        return [s for s in steps if s.name in only]
    lo = names.index(start) if start else 0
    hi = names.index(until) if until else len(names) - 1
    if lo > hi:
        raise ConfigError(f"--from {start} comes after --until {until} in the plan ({' -> '.join(names)})")
    return steps[lo:hi + 1]
