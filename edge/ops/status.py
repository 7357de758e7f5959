"""``edge status``: one table with the health of every service, or ``--json``.

For each service (bridge, parser, sink, archive) it reads what is there to read,
and says "not running" or "unknown" for what is not:

- systemd, when it runs on this host: the unit's state and its ``STATUS=`` text
  (``systemctl show``), and for the archive the end and result of its last run;
- the service's Prometheus endpoint (``[metrics] host``, the unit's
  ``EDGE_METRICS__PORT``: bridge 9101, parser 9102, sink 9103, archive 9104, as
  in ``deploy/systemd``; ``--port NAME=PORT`` overrides): consumer lag (summed
  over partitions), time of the last success (bridge ack, parser commit, sink
  write), DLQ records, and whether the sink is paused;
- the local archive directory: the newest manifest, when systemd cannot tell
  when the archive last ran.

Metrics are found by the project's naming (``edge_<service>_*``): gauges ending in
``_consumer_lag`` and ``_last_*_timestamp``, counters ``*_dlq_records`` and the
bridge's ``dead_lettered``. Exit status 0: it reports, it does not judge.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

SERVICES = {"bridge": "edge-bridge.service", "parser": "edge-parser.service",
            "sink": "edge-sink.service", "archive": "edge-archive.service"}
UNITS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
SCRAPE_TIMEOUT_S = 1.0
_PORT = re.compile(r"EDGE_METRICS__PORT=(\d+)")


@dataclass
class Health:
    service: str
    state: str = "unknown"  # running | not running | active | inactive | failed | ...
    detail: str = ""
    lag: float | None = None
    last_success: float | None = None  # unix time
    dlq: float | None = None
    last_archive_run: str | None = None


# ------------------------------------------------------------------ pure


def unit_port(unit_text: str) -> int | None:
    m = _PORT.search(unit_text)
    return int(m.group(1)) if m else None


def read_metrics(service: str, text: str, health: Health) -> Health:
    """Fill lag, last success, DLQ and pause from a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    prefix = f"edge_{service}_"
    lag = dlq = None
    last = None
    for family in text_string_to_metric_families(text):
        if not family.name.startswith(prefix):
            continue
        total = sum(s.value for s in family.samples if not s.name.endswith("_created"))
        if family.name.endswith("_consumer_lag"):
            lag = (lag or 0) + total
        elif family.name.endswith("_timestamp") and "_last_" in family.name and total > 0:
            last = max(last or 0, total)
        elif family.name.endswith(("_dlq_records", "_dead_lettered")):
            dlq = (dlq or 0) + total
        elif family.name == f"{prefix}paused" and total:
            health.detail = health.detail or "paused (InfluxDB unavailable or buffer full)"
    health.lag, health.last_success, health.dlq = lag, last, dlq
    return health


def parse_show(text: str) -> dict[str, str]:
    """``systemctl show -p ...`` output (KEY=value lines) as a dict."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def age(moment: float | None, now: float) -> str:
    if moment is None:
        return "-"
    seconds = max(0, now - moment)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit} ago"
    return f"{seconds:.0f} s ago"


def table(rows: list[Health], now: float) -> str:
    header = ("SERVICE", "STATE", "LAG", "LAST SUCCESS", "DLQ", "LAST ARCHIVE RUN", "DETAIL")
    cells = [header] + [
        (h.service, h.state, "-" if h.lag is None else f"{h.lag:g}", age(h.last_success, now),
         "-" if h.dlq is None else f"{h.dlq:g}", h.last_archive_run or "-", h.detail)
        for h in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


# ------------------------------------------------------------------ I/O


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def systemd_show(unit: str) -> dict[str, str]:
    props = "ActiveState,SubState,StatusText,Result,ExecMainExitTimestamp,Environment"
    result = subprocess.run(["systemctl", "show", unit, "-p", props], capture_output=True, text=True, timeout=10)
    return parse_show(result.stdout) if result.returncode == 0 else {}


def scrape(host: str, port: int) -> str | None:
    import requests

    try:
        answer = requests.get(f"http://{host}:{port}/metrics", timeout=SCRAPE_TIMEOUT_S)
    except requests.RequestException:
        return None
    return answer.text if answer.ok else None


def last_manifest(archive_dir: str) -> float | None:
    newest = None
    root = Path(archive_dir)
    if root.is_dir():
        for manifest in root.rglob("_manifest.json"):
            newest = max(newest or 0, manifest.stat().st_mtime)
    return newest


def service_health(service: str, host: str, port: int | None, systemd: bool, archive_dir: str) -> Health:
    health = Health(service)
    shown = systemd_show(SERVICES[service]) if systemd else {}
    if shown:
        health.state = shown.get("ActiveState", "unknown")
        health.detail = shown.get("StatusText", "")
        port = unit_port(shown.get("Environment", "")) or port
    text = scrape(host, port) if port else None
    if text is not None:
        health.state = "running" if not shown else health.state
        read_metrics(service, text, health)
    elif not shown:
        health.state = "not running" if port else "unknown"
    if service == "archive":
        ended = shown.get("ExecMainExitTimestamp")
        if ended:
            health.last_archive_run = f"{ended} ({shown.get('Result', '?')})"
        else:
            newest = last_manifest(archive_dir)
            if newest is not None:
                health.last_archive_run = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(newest))
        if health.state in ("not running", "inactive"):
            health.state = "idle" if health.last_archive_run else health.state
    return health


def default_ports() -> dict[str, int | None]:
    """Each service's metrics port as its shipped unit sets it."""
    ports: dict[str, int | None] = {}
    for service, unit in SERVICES.items():
        path = UNITS_DIR / unit
        ports[service] = unit_port(path.read_text(encoding="utf-8")) if path.is_file() else None
    return ports


def _port_option(text: str) -> tuple[str, int]:
    name, _, port = text.partition("=")
    if name not in SERVICES or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=PORT, NAME one of {', '.join(SERVICES)}")
    return name, int(port)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per service, in a list")
    parser.add_argument("--port", action="append", type=_port_option, default=[], metavar="NAME=PORT",
                        help="a service's metrics port, when not the unit's (repeatable)")
    parser.add_argument("--service", action="append", choices=list(SERVICES), help="only this service (repeatable)")


def run(args: argparse.Namespace) -> int:
    from edge.config.settings import StatusSettings

    settings = StatusSettings.load(getattr(args, "config", None))
    ports = {**default_ports(), **dict(args.port)}
    systemd = systemd_running()
    services = args.service or list(SERVICES)
    rows = [service_health(s, settings.metrics.host, ports.get(s), systemd, settings.archive.directory)
            for s in services]
    if args.json:
        print(json.dumps([asdict(h) for h in rows], indent=2))
    else:
        print(table(rows, time.time()))
    return 0
