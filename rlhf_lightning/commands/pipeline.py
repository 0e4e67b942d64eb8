"""``rlhf-lightning pipeline --config pipeline.yaml``: run the stages of a pipeline file in order.

Finished steps (their export records the key of the config that made it) are skipped, an
interrupted step resumes from its ``last.ckpt``, a step whose config changed is rerun together with
every step after it; the evaluation steps always run. ``--dry-run`` prints the plan; ``--from``,
``--until`` and ``--only`` select steps; ``--force`` reruns the selected steps even if done. When an
evaluation ran, the last line of output is its report folder. See rlhf_lightning/pipeline/spec.py
for the file format and configs/demo/pipeline.yaml for an example.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Optional

from rlhf_lightning.errors import ConfigError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one message and exit 2 through the CLI's user-error path
        raise ConfigError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rlhf-lightning pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="the pipeline YAML")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    parser.add_argument("--from", dest="start", metavar="STEP", help="start the plan at this step")
    parser.add_argument("--until", metavar="STEP", help="end the plan after this step")
    parser.add_argument("--only", metavar="STEP", action="append", help="run only this step (repeatable, or a,b)")
    parser.add_argument("--force", action="store_true", help="rerun the selected steps even when done")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    from rlhf_lightning.pipeline.runner import StepFailed, describe, execute, plan
    from rlhf_lightning.pipeline.spec import load_pipeline, select

    args = build_parser().parse_args(argv)
    only = [name for value in args.only or [] for name in value.split(",") if name]
    started = time.monotonic()
    pipeline = load_pipeline(args.config)
    chosen = select(pipeline.steps, only=only or None, start=args.start, until=args.until)
    print(f"pipeline {args.config}: resolving {len(pipeline.steps)} steps ...", flush=True)
    planned = plan(pipeline.steps, chosen, force=args.force, log_dir=pipeline.log_dir)
    print(describe(planned), flush=True)
    if args.dry_run:
        return 0
    try:
        report = execute(planned, echo=lambda line: print(line, flush=True))
    except StepFailed as failed:
        print(f"rlhf-lightning: error: {failed}", file=sys.stderr)
        print("(finished steps stay done; rerunning the same command continues from the failed step)", file=sys.stderr)
        return failed.status
    lines = [ln for ln in report.strip().splitlines() if ln.strip()]
    for line in lines[:-1]:
        print(line)
    elapsed = time.monotonic() - started
    print(f"pipeline finished in {int(elapsed // 60)} min {elapsed % 60:.0f} s", flush=True)
    if lines:
        print(lines[-1])  # the report folder, the evaluation's last line
    return 0
