"""``edge install``: the systemd units, a commented config skeleton, credential slots.

What it writes under ``--prefix`` (default ``/``):

- ``etc/systemd/system/edge-{bridge,parser,sink,archive}.service`` and
  ``edge-archive.timer`` from ``deploy/systemd/``, with ``ExecStart=`` pointing at
  this installation's ``edge`` (the units are ours: rewritten on every install;
  local changes belong in drop-ins, ``systemctl edit <unit>``);
- ``etc/edge/edge.toml`` from ``deploy/edge.toml`` (0644) only when there is none:
  an operator's configuration is never overwritten. Its secret settings
  (``password_file``, ``sasl_password_file``) name these credential slots, so
  what the operator writes into a slot is what the service uses;
- ``etc/edge/credentials/`` (0700) with an empty root-only (0600) file for each
  secret a unit loads with ``LoadCredential=`` (a missing file would fail the
  start); existing files are kept. A slot the config names and that is still
  empty is refused by ``edge config check`` and by the service: the install
  lists them.

No system user is created: the units run with ``DynamicUser=yes`` (systemd
allocates the user while a unit runs; the archive's state directory follows it).
Then ``systemctl daemon-reload`` when installing into ``/`` on a host where
systemd runs. Enabling is left to the operator (README, Operations); the next
steps printed say how, true to where the units went: ``enable --now`` for this
host's systemd, ``systemctl --root=DIR enable`` for a tree under ``--prefix``. ``--dry-run``
prints what would change and touches nothing.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from edge.config.services import with_units

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNIT_NAMES = tuple(u for s in with_units() for u in (s.unit, s.timer) if u)
# What is enabled: the long-running services, and the timers of the others.
TO_ENABLE = tuple(s.unit if s.long_running else s.timer for s in with_units() if s.long_running or s.timer)
PACKAGED_EXEC = "/opt/edge/.venv/bin/edge"
CREDENTIALS = ("amqp_password", "amqp_client_key", "kafka_password", "influx_password", "aws_credentials")
# ProtectHome= hides these from the services: an `edge` there cannot start.
HIDDEN_BY_PROTECT_HOME = ("/home/", "/root/", "/run/user/")


@dataclass
class Step:
    path: Path
    content: bytes | None  # None: a directory
    mode: int
    overwrite: bool

    def action(self) -> str:
        """What applying this step would do: create, update, keep (exists), same."""
        if self.content is None:
            return "same" if self.path.is_dir() else "create"
        if not self.path.exists():
            return "create"
        if not self.overwrite:
            return "keep"
        return "same" if self.path.read_bytes() == self.content else "update"


def render_unit(text: str, edge_exec: str) -> str:
    """The unit as shipped, with ``ExecStart=`` naming this installation's ``edge``."""
    return text.replace(PACKAGED_EXEC, edge_exec)


def default_edge_exec() -> str:
    beside = Path(sys.executable).parent / "edge"  # the venv's console script
    if beside.is_file():
        return str(beside)
    found = shutil.which("edge")
    return found or PACKAGED_EXEC


def plan(prefix: Path, edge_exec: str, source: Path = DEPLOY) -> list[Step]:
    etc = prefix / "etc"
    steps: list[Step] = []
    for name in UNIT_NAMES:
        text = (source / "systemd" / name).read_text(encoding="utf-8")
        steps.append(Step(etc / "systemd" / "system" / name, render_unit(text, edge_exec).encode(), 0o644, True))
    steps.append(Step(etc / "edge", None, 0o755, False))
    steps.append(Step(etc / "edge" / "edge.toml", (source / "edge.toml").read_bytes(), 0o644, False))
    steps.append(Step(etc / "edge" / "credentials", None, 0o700, False))
    for name in CREDENTIALS:
        steps.append(Step(etc / "edge" / "credentials" / name, b"", 0o600, False))
    return steps


def apply(step: Step) -> None:
    if step.content is None:
        step.path.mkdir(parents=True, exist_ok=True)
        os.chmod(step.path, step.mode)
        return
    step.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = step.path.with_name(f".{step.path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, step.mode)
    with os.fdopen(fd, "wb") as f:
        f.write(step.content)
    os.chmod(tmp, step.mode)
    os.replace(tmp, step.path)


def next_steps(prefix: Path, config: Path, credentials: Path, empty: list[str], edge_exec: str,
               live: bool) -> list[str]:
    """What the operator does next, true to where the units went: ``enable --now``
    only for units installed into this host's running systemd."""
    steps = [f"edit {config} (brokers, InfluxDB, S3)"]
    if empty:
        steps += [f"write each secret into its file in {credentials}/: {', '.join(empty)} (named in the config, "
                  "still empty);", "for a hop without authentication remove its *_file line from the config instead"]
    steps.append(f"{edge_exec} config check --config {config}")
    units = " ".join(TO_ENABLE)
    if live:
        return steps + [f"systemctl enable --now {units}"]
    if prefix.resolve() != Path("/"):
        return steps + [
            f"the units are under {prefix}, not in this host's systemd: nothing was reloaded, enabled or started.",
            f"to enable them in that tree (an image or container root): systemctl --root={prefix} enable {units}",
            "to run them on this host instead: edge install (no --prefix) as root, then systemctl enable --now "
            f"{units}",
        ]
    return steps + [
        "systemd does not run on this host: nothing was reloaded, enabled or started.",
        f"on a host that boots with systemd: systemctl enable --now {units}; here, start the services by hand "
        "(edge bridge, edge parse, edge sink) under a supervisor of your choice",
    ]


def named_slots(config: Path) -> list[str]:
    """The credential slots a config's secret settings name (relative ``*_file``
    values and ``client_secret_files``), in the order of ``CREDENTIALS``."""
    import tomllib

    try:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return []
    names: set[str] = set()

    def walk(table: dict, secret_files: bool) -> None:
        for key, value in table.items():
            if isinstance(value, dict):
                walk(value, key == "client_secret_files")
            elif isinstance(value, str) and (secret_files or key.endswith("_file")):
                names.add(value)
    walk(data, False)
    return [name for name in CREDENTIALS if name in names]
