"""``edge install``: install systemd units and a config skeleton.

The command's arguments and what it prints; what is installed where is
``edge.ops.install``."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from edge.core.errors import UsageError
from edge.ops.install import (
    HIDDEN_BY_PROTECT_HOME,
    PACKAGED_EXEC,
    apply,
    default_edge_exec,
    named_slots,
    next_steps,
    plan,
)
from edge.runtime.supervision import systemd_running


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefix", default="/", help="install under this root (default: /)")
    parser.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    parser.add_argument("--edge-exec", help=f"the edge executable the units start (default: this installation's, "
                        f"else {PACKAGED_EXEC})")


def run(args: argparse.Namespace) -> int:
    prefix = Path(args.prefix)
    edge_exec = args.edge_exec or default_edge_exec()
    if not os.path.isabs(edge_exec):
        raise UsageError(f"--edge-exec must be an absolute path, got {edge_exec}")
    if edge_exec.startswith(HIDDEN_BY_PROTECT_HOME):
        print(f"edge install: warning: {edge_exec} is under a directory the units hide (ProtectHome=yes); "
              f"install the project under /opt/edge (or pass --edge-exec)", file=sys.stderr)
    steps = plan(prefix, edge_exec)
    for step in steps:
        action = step.action()
        label = {"keep": "keep (exists, not overwritten)", "same": "unchanged"}.get(action, action)
        print(f"{label:32s} {step.path}")
        if not args.dry_run and action in ("create", "update"):
            apply(step)
    if args.dry_run:
        print("dry run: nothing changed")
        return 0
    live = prefix.resolve() == Path("/") and systemd_running()
    if live:
        subprocess.run(["systemctl", "daemon-reload"], check=True)
        print("systemctl daemon-reload: done")
    config = prefix / "etc" / "edge" / "edge.toml"
    credentials = prefix / "etc" / "edge" / "credentials"
    named = named_slots(config)
    empty = [name for name in named if _is_empty(credentials / name)]
    print("\nnext:\n" + "\n".join(f"  {line}" for line in next_steps(
        prefix, config, credentials, empty, edge_exec, live)))
    return 0


def _is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False
