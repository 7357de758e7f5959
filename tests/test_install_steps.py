"""The README's install steps, as written, under ``--prefix`` into a temporary
root: afterwards ``edge config check`` finds every secret in its credential file.

The steps are read from the README itself (the ``sh`` block under "Install"), so
the test follows the document. Only what cannot run here is left out: cloning,
``make venv`` (the test runs in that venv), the editor, and ``systemctl``; paths
under ``/etc/edge`` move under the temporary root and ``edge install`` gets
``--prefix``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_HERE = ("git clone", "make venv", "$EDITOR", "systemctl")


def readme_install_steps() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Install (as root, on the edge server)"):]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block, "no sh block under Install"
    return [line for line in block.group(1).splitlines() if line.strip()]


def here(step: str, root: Path) -> str:
    edge = f"{shlex.quote(sys.executable)} -m edge"
    step = step.replace(".venv/bin/edge install", f".venv/bin/edge install --prefix {root}")
    step = step.replace(".venv/bin/edge", edge)
    return step.replace("/etc/edge/", f"{root}/etc/edge/")


def test_the_readme_install_steps_wire_every_secret_to_its_file(tmp_path):
    root = tmp_path / "root"
    steps = [here(s, root) for s in readme_install_steps() if not s.startswith(NOT_HERE)]
    assert any(" install --prefix" in s for s in steps) and "config check" in steps[-1]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("EDGE_", "AWS_", "CREDENTIALS_DIRECTORY"))}
    result = subprocess.run(["bash", "-e", "-c", "\n".join(steps)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    credentials = root / "etc" / "edge" / "credentials"
    secrets = [line.strip("# ") for line in result.stdout.splitlines() if line.startswith("#   ")]
    assert secrets == [
        f"amqp.password: from file {credentials}/amqp_password",
        f"kafka.sasl_password: from file {credentials}/kafka_password",
        f"influxdb.password: from file {credentials}/influx_password",
        f"aws.credentials: from file {credentials}/aws_credentials (the archive unit's AWS_SHARED_CREDENTIALS_FILE)",
    ]
    for written in ("the AMQP password", "the Kafka SASL password", "the InfluxDB password"):
        assert written not in result.stdout
    assert "Traceback" not in result.stderr


def test_install_under_a_prefix_does_not_tell_to_enable_units_on_this_host(tmp_path):
    """Units written under --prefix are not in this host's systemd: the next steps
    enable them in that tree (systemctl --root), never `enable --now` here."""
    root = tmp_path / "image"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_", "CREDENTIALS_DIRECTORY"))}
    result = subprocess.run([sys.executable, "-m", "edge", "install", "--prefix", str(root)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    steps = result.stdout.split("\nnext:\n", 1)[1].splitlines()
    units = "edge-bridge.service edge-parser.service edge-sink.service edge-archive.timer"
    assert steps[-3:] == [
        f"  the units are under {root}, not in this host's systemd: nothing was reloaded, enabled or started.",
        f"  to enable them in that tree (an image or container root): systemctl --root={root} enable {units}",
        f"  to run them on this host instead: edge install (no --prefix) as root, then systemctl enable --now {units}",
    ]
    assert not any(line.strip().startswith("systemctl enable --now") for line in steps), steps
    for unit in units.split():
        assert (root / "etc" / "systemd" / "system" / unit).is_file()
