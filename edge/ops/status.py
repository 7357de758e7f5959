"""``edge status``: one table with the health of every service and the DLQ, or ``--json``.

For each service with a unit (``edge.config.services``: bridge, parser, sink,
archive) it reads what is there to read, and says why when it cannot tell:

- systemd, when it runs on this host: the unit's state and its ``STATUS=`` text
  (``systemctl show``), and for the archive the end and result of its last run;
- the service's Prometheus endpoint (``[metrics] host``, the port of ``[metrics]
  ports``: bridge 9641, parser 9642, sink 9643, archive 9644; a unit's
  ``EDGE_METRICS__PORT``, else ``--port NAME=PORT``, overrides it): consumer lag
  (summed over partitions), time of the last success (bridge ack, parser commit,
  sink write), and whether a stage is paused and why (``paused: <reason>``). Without systemd, an endpoint that
  does not answer leaves the state ``unknown``, with the reason (refused, no
  answer, not an edge endpoint);
- the local archive directory: the newest manifest, when systemd cannot tell
  when the archive last ran;
- the DLQ topic: the records it holds, from its low watermark to its last
  record (a service's own DLQ counter starts from 0 at every restart; the topic
  does not). That is every record: dead letters (one per failure, but for the
  copies a live stage can write), repeat markers and ``edge dlq redrive``'s
  resolution markers; ``edge dlq list`` tells the failures apart and which are
  resolved.

Then one row per InfluxDB node of the site map (``edge.ops.influx_health``):
reachable or not, and why.

Exit status: 0 when every long-running service is running and every InfluxDB
node answers; 1 when one is down or unknown, or a unit failed (the table says
which and why).
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from edge.config.services import BY_NAME, with_units
from edge.core.words import count

SERVICES = {s.name: s.unit for s in with_units()}
SCRAPE_TIMEOUT_S = 1.0
_PORT = re.compile(r"EDGE_METRICS__PORT=(\d+)")
RUNNING = ("running", "active")


@dataclass
class Health:
    service: str
    state: str = "unknown"  # running | unknown | idle | active | inactive | failed | ...
    detail: str = ""
    lag: float | None = None
    last_success: float | None = None  # unix time
    last_archive_run: str | None = None
    port: int | None = None


@dataclass
class Dlq:
    topic: str
    records: int | None = None  # high - low watermark, summed over partitions
    partitions: int | None = None
    detail: str = ""


# ------------------------------------------------------------------ pure


def unit_port(unit_text: str) -> int | None:
    m = _PORT.search(unit_text)
    return int(m.group(1)) if m else None


def read_metrics(service: str, text: str, health: Health) -> bool:
    """Fill lag, last success and pause from a Prometheus text exposition; False
    when it holds no ``edge_<service>_`` metric (another program on the port)."""
    from prometheus_client.parser import text_string_to_metric_families

    prefix = f"edge_{service}_"
    found = False
    for family in text_string_to_metric_families(text):
        if not family.name.startswith(prefix):
            continue
        found = True
        total = sum(s.value for s in family.samples if not s.name.endswith("_created"))
        if family.name.endswith("_consumer_lag"):
            health.lag = (health.lag or 0) + total
        elif family.name.endswith("_timestamp") and "_last_" in family.name and total > 0:
            health.last_success = max(health.last_success or 0, total)
        elif family.name == f"{prefix}paused" and total:
            why = ", ".join(s.labels.get("reason", "") for s in family.samples if s.value) or "?"
            health.detail = health.detail or f"paused: {why}"
    return found


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
    header = ("SERVICE", "STATE", "LAG", "LAST SUCCESS", "LAST ARCHIVE RUN", "DETAIL")
    cells = [header] + [
        (h.service, h.state, "-" if h.lag is None else f"{h.lag:g}", age(h.last_success, now),
         h.last_archive_run or "-", h.detail)
        for h in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


def dlq_line(dlq: Dlq) -> str:
    if dlq.records is None:
        return f"DLQ {dlq.topic}: unknown: {dlq.detail}"
    return (f"DLQ {dlq.topic}: {count(dlq.records, 'record')} in {count(dlq.partitions or 0, 'partition')}, counted from the topic "
            "(copies, repeat and redrive markers included: edge dlq list shows each failure and its state)")


def failing(rows: list[Health]) -> list[Health]:
    """Rows that make the exit status 1: a long-running service not running (or
    not known to be), or any unit systemd reports failed."""
    return [h for h in rows if h.state == "failed" or (BY_NAME[h.service].long_running and h.state not in RUNNING)]


# ------------------------------------------------------------------ I/O


def systemd_show(unit: str) -> dict[str, str]:
    props = "ActiveState,SubState,StatusText,Result,ExecMainExitTimestamp,Environment"
    result = subprocess.run(["systemctl", "show", unit, "-p", props], capture_output=True, text=True, timeout=10)
    return parse_show(result.stdout) if result.returncode == 0 else {}


def scrape(host: str, port: int) -> tuple[str | None, str]:
    """The endpoint's text, or None and why not, in words."""
    import requests

    where = f"metrics port {port}" + ("" if host in ("127.0.0.1", "localhost") else f" on {host}")
    try:
        answer = requests.get(f"http://{host}:{port}/metrics", timeout=SCRAPE_TIMEOUT_S)
    except requests.Timeout:
        return None, f"{where} did not answer within {SCRAPE_TIMEOUT_S:g} s"
    except requests.ConnectionError as exc:
        if "refused" in str(exc).lower():
            return None, f"{where} refused connection"
        return None, f"{where} cannot be reached ({type(exc).__name__})"
    if not answer.ok:
        return None, f"{where} answered HTTP {answer.status_code}: not an edge metrics endpoint"
    return answer.text, ""


def answers(service: str, host: str, port: int) -> bool:
    """Whether ``service``'s own metrics answer on ``port``: it runs there."""
    text, _reason = scrape(host, port)
    return text is not None and read_metrics(service, text, Health(service))


def last_manifest(archive_dir: str) -> float | None:
    newest = None
    root = Path(archive_dir)
    if root.is_dir():
        for manifest in root.rglob("_manifest.json"):
            newest = max(newest or 0, manifest.stat().st_mtime)
    return newest


def _unknown_why(service: str, reason: str, metrics_enabled: bool) -> str:
    if not metrics_enabled:
        return f"{reason}; metrics are off here (metrics.enabled = false): without systemd nothing tells its state"
    return f"{reason}; not running, or its metrics are off or on another port (metrics.ports.{service})"


def service_health(service: str, host: str, port: int | None, systemd: bool, archive_dir: str,
                   metrics_enabled: bool = True, port_given: bool = False) -> Health:
    """One row; ``port`` is the ports table's, or ``--port``'s (``port_given``),
    which the unit's ``EDGE_METRICS__PORT`` does not override."""
    health = Health(service)
    shown = systemd_show(SERVICES[service]) if systemd else {}
    if shown:
        health.state = shown.get("ActiveState", "unknown")
        health.detail = shown.get("StatusText", "")
        port = port if port_given else unit_port(shown.get("Environment", "")) or port
    health.port = port
    text, reason = scrape(host, port) if port else (None, "no metrics port (metrics.ports)")
    if text is not None and not read_metrics(service, text, health):
        text, reason = None, f"metrics port {port} answers without edge_{service}_ metrics: another program on it?"
    if text is not None:
        health.state = "running" if not shown else health.state
    elif shown:
        if health.state == "active" and BY_NAME[service].long_running:
            health.detail = "; ".join(p for p in (health.detail, f"no lag or last success: {reason}") if p)
    else:
        health.detail = _unknown_why(service, reason, metrics_enabled)
    if service == "archive":
        _archive_runs(health, shown, archive_dir)
    return health


def _archive_runs(health: Health, shown: dict[str, str], archive_dir: str) -> None:
    """When the oneshot last ran: systemd's record, else the newest manifest; a
    run not going on now is idle, not down."""
    ended = shown.get("ExecMainExitTimestamp")
    if ended:
        health.last_archive_run = f"{ended} ({shown.get('Result', '?')})"
    else:
        newest = last_manifest(archive_dir)
        if newest is not None:
            health.last_archive_run = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(newest))
    if health.state in ("unknown", "inactive"):
        health.state = "idle"
        health.detail = "" if health.last_archive_run else f"no run recorded (no manifest in {archive_dir})"


def dlq_count(config: str | None) -> Dlq:
    """The records the DLQ topic holds now: per partition, from the low watermark
    to the true log end (the offset after its last record: tansu under-reports
    the high watermark after a multi-record batch)."""
    from edge.config.settings import SettingsError, TopicsSettings
    from edge.core.errors import OperatorError

    try:
        kafka = TopicsSettings.load(config).kafka
    except SettingsError as exc:
        return Dlq("?", detail=f"the [kafka] settings cannot be read: {exc}")
    from edge.kafka.topic_reader import TopicReader

    dlq = Dlq(kafka.dlq_topic)
    reader = None
    try:
        reader = TopicReader(kafka, kafka.dlq_topic, group_id="edge-status", client_id="edge-status")
        extents = reader.extents()
        dlq.records, dlq.partitions = sum(max(0, end - low) for low, end in extents.values()), len(extents)
    except OperatorError as exc:
        dlq.detail = str(exc)
    finally:
        if reader is not None:
            reader.close()
    return dlq
