"""``systemd-analyze security`` exposure of each shipped unit (lower is safer, 0-10).

    .venv/bin/python -m bench.systemd_security [--details]

Prints one line per service unit: ``<unit> <exposure> <verdict>``, then, with
``--details``, each check the unit does not pass. Reads the units offline
(``--offline=true``, systemd >= 250), so it needs no running systemd. Target: <= 2.0
for the long-running units (bridge, parser, sink); the remaining exposure is the
network access the services exist for (AF_INET sockets, no PrivateNetwork=) and
the site-specific IPAddressAllow= list (README, Operations).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from bench.harness import ROOT

UNITS = ROOT / "deploy" / "systemd"
LONG_RUNNING = ("edge-bridge.service", "edge-parser.service", "edge-sink.service")
TARGET = 2.0
_OVERALL = re.compile(r"Overall exposure level for (\S+): ([0-9.]+) (\S+)")


def analyze(unit: Path) -> tuple[float, str, list[str]]:
    """(exposure, verdict, failed checks) of one unit file, read offline."""
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True, text=True, timeout=60,
    )
    match = _OVERALL.search(result.stdout)
    if match is None:
        raise RuntimeError(f"systemd-analyze security {unit.name}: {result.stdout[-500:]}{result.stderr[-500:]}")
    failed = [line[1:].strip() for line in result.stdout.splitlines() if line.startswith("✗")]
    return float(match.group(2)), match.group(3), failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--details", action="store_true", help="list the checks each unit does not pass")
    args = parser.parse_args()
    version = subprocess.run(["systemd-analyze", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    print(f"# {version}; target <= {TARGET} for {', '.join(LONG_RUNNING)}")
    worst = 0.0
    for unit in sorted(UNITS.glob("*.service")):
        exposure, verdict, failed = analyze(unit)
        if unit.name in LONG_RUNNING:
            worst = max(worst, exposure)
        print(f"{unit.name:24s} exposure={exposure:.1f} {verdict}")
        if args.details:
            for check in failed:
                print("    " + re.sub(r"\s{2,}", " | ", check))
    print(f"worst long-running exposure={worst:.1f} ({'ok' if worst <= TARGET else 'over target'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
