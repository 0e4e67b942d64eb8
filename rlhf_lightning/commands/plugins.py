"""``rlhf-lightning plugins``: list every plugin of every group, with its distribution, and the broken ones."""

from __future__ import annotations

import argparse
import json
import sys

from rlhf_lightning import registry


def _row(info: registry.PluginInfo) -> dict[str, str | bool | None]:
    return {"group": info.group, "name": info.name, "class_path": info.class_path,
            "distribution": info.distribution, "version": info.version, "ok": info.ok,
            "description": info.description if info.ok else "", "error": info.error}


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for r in rows:
        cells = [c.ljust(w) for c, w in zip(r, widths, strict=False)] + [r[-1]]  # the last column unpadded
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rlhf-lightning plugins",
                                     description="List the reward, constraint, loss and estimator plugins found "
                                                 "through entry points, built-in and third-party alike.")
    parser.add_argument("--group", choices=list(registry.GROUPS), help="only this group")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any plugin is broken")
    args = parser.parse_args(argv)

    groups = [args.group] if args.group else list(registry.GROUPS)
    infos = [i for g in groups for i in registry.plugins(g)]
    bad = [i for i in infos if not i.ok]
    if args.json:
        print(json.dumps([_row(i) for i in infos], indent=2))
    else:
        header = ["GROUP", "NAME", "CLASS", "DISTRIBUTION", "VERSION", "DESCRIPTION"]
        rows = [header]
        for group in groups:
            members = registry.plugins(group)
            if not members:
                rows.append([group, "-", "-", "-", "-", "(no plugins installed)"])
            for i in members:
                rows.append([group, i.name, i.class_path, i.distribution or "?", i.version or "?",
                             i.description if i.ok else "BROKEN (see below)"])
        print(_table(rows))
        if registry.plugins_disabled():
            print(f"\nThird-party plugins are off ({registry.DISABLE_ENV} is set): only built-ins are listed.")
        if bad:
            print(f"\n{len(bad)} broken plugin(s):", file=sys.stderr)
            for i in bad:
                print(f"  {i.group} {i.name!r} ({i.value}) from {i.distribution or '?'} {i.version or ''}: {i.error}",
                      file=sys.stderr)
    return 1 if (args.strict and bad) else 0


if __name__ == "__main__":
    sys.exit(main())
