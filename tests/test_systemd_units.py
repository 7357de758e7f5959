"""The systemd units as shipped and as ``edge install`` writes them.

- ``systemd-analyze verify`` passes on every installed unit (and does flag a broken
  one, so the check can fail);
- ``systemd-analyze security --offline`` exposure (bench.systemd_security) is
  <= 2.0 for each long-running unit: a property of the unit text;
- the properties the services rely on (Type=notify, watchdog, stop timeout above
  the 10 s graceful bound, credentials not in the text, distinct metrics ports);
- ``edge install`` never overwrites a config and ``--dry-run`` changes nothing;
- the services and their native libraries (librdkafka, pyarrow, orjson) run under
  MemoryDenyWriteExecute= semantics (the kernel's PR_SET_MDWE, what the unit's
  seccomp rule enforces), reaching READY=1.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from edge.config.settings import AmqpSettings, KafkaSettings
from edge.kafka.topics import ensure_topics
from tests.support import influx
from tests.support.bridge_io import delete_queue
from tests.support.processes import EdgeProcess
from tests.test_service_runtime import NotifySocket, _has

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "deploy" / "systemd"
LONG_RUNNING = ("edge-bridge.service", "edge-parser.service", "edge-sink.service")
ALL_UNITS = LONG_RUNNING + ("edge-archive.service", "edge-archive.timer")
GRACEFUL_STOP_BOUND_S = 10


def _seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "min": 60, "h": 3600, "": 1}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*(ms|min|s|h|)", value):
        total += float(number) * units[unit]
    return total


def unit_settings(path: Path) -> dict[str, dict[str, list[str]]]:
    """section -> key -> every value (systemd keys repeat)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(section, {}).setdefault(key, []).append(value)
    return out


def _install(prefix: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", "install", "--prefix", str(prefix), *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    prefix = tmp_path_factory.mktemp("root")
    result = _install(prefix)
    assert result.returncode == 0, result.stderr
    return prefix / "etc" / "systemd" / "system"


def _verify(paths: list[Path]) -> subprocess.CompletedProcess:
    # --man=no: no man pages in a container; the files are given by path, so no
    # running systemd (PID 1) is needed. Warnings go to stderr with exit status 0,
    # so both must be clean.
    return subprocess.run(["systemd-analyze", "verify", "--man=no", *map(str, paths)],
                          capture_output=True, text=True, timeout=60)


def test_systemd_analyze_verify_passes_on_every_installed_unit(installed):
    units = [installed / name for name in ALL_UNITS]
    result = _verify(units)
    assert result.returncode == 0 and not result.stderr.strip() and not result.stdout.strip(), result.stderr
    assert f"ExecStart={sys.prefix}/bin/edge bridge" in units[0].read_text()  # this installation's edge


def test_verify_does_flag_a_broken_unit(installed, tmp_path):
    broken = tmp_path / "edge-sink.service"
    text = (installed / "edge-sink.service").read_text()
    broken.write_text(text.replace("ProtectSystem=strict", "ProtectSystem=strikt").replace("Type=notify", "Typ=notify"))
    result = _verify([broken])
    assert "strikt" in result.stderr and "Typ" in result.stderr
    missing = tmp_path / "edge-parser.service"
    missing.write_text((UNITS / "edge-parser.service").read_text().replace("/opt/edge/.venv", str(tmp_path / "nope")))
    assert _verify([missing]).returncode != 0  # an ExecStart that does not exist


def test_security_exposure_of_each_long_running_unit_is_at_most_2():
    result = subprocess.run([sys.executable, "-m", "bench.systemd_security"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    exposure = {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\S+\.service)\s+exposure=([0-9.]+)",
                                                                   result.stdout, re.MULTILINE)}
    assert set(exposure) == {n for n in ALL_UNITS if n.endswith(".service")}, result.stdout
    for name in LONG_RUNNING:
        assert exposure[name] <= 2.0, result.stdout
    print(result.stdout)


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_unit_properties(name):
    service = unit_settings(UNITS / name)["Service"]
    assert service["Type"] == ["notify"] and service["NotifyAccess"] == ["main"]
    assert service["Restart"] == ["on-failure"]
    assert _seconds(service["WatchdogSec"][0]) >= 30  # above the loops' longest wait
    stop = _seconds(service["TimeoutStopSec"][0])
    assert GRACEFUL_STOP_BOUND_S < stop <= GRACEFUL_STOP_BOUND_S + 10
    assert service["DynamicUser"] == ["yes"] and service["CapabilityBoundingSet"] == [""]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices", "MemoryDenyWriteExecute"):
        assert service[key] == ["yes"], key
    assert service["ProtectSystem"] == ["strict"]
    assert service["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]
    assert "@system-service" in service["SystemCallFilter"]


def test_units_carry_no_secrets_and_leave_metrics_ports_to_the_settings():
    """A port in a unit (EDGE_METRICS__PORT) would override [metrics] ports, which
    edge status and the scrape config read: the units set none, the table's
    fixed ports are distinct."""
    from edge.config.services import default_metrics_ports

    for name in ALL_UNITS:
        text = (UNITS / name).read_text()
        settings = unit_settings(UNITS / name).get("Service", {})
        for env in settings.get("Environment", []):
            key = env.split("=", 1)[0]
            assert not re.search(r"PASSWORD|SECRET|TOKEN", key, re.IGNORECASE), env
            assert not key.startswith("EDGE_METRICS__"), env
        for cred in settings.get("LoadCredential", []):
            ident, _, source = cred.partition(":")
            assert source == f"/etc/edge/credentials/{ident}", cred
        assert "SetCredential" not in settings and "password=" not in text.lower()
    ports = default_metrics_ports()
    assert ports == {"bridge": 9641, "parser": 9642, "sink": 9643, "archive": 9644}
    assert len(set(ports.values())) == 4


def test_archive_runs_daily_as_a_oneshot():
    service = unit_settings(UNITS / "edge-archive.service")["Service"]
    assert service["Type"] == ["oneshot"] and service["StateDirectory"] == ["edge"]
    timer = unit_settings(UNITS / "edge-archive.timer")
    assert timer["Timer"]["OnCalendar"] == ["*-*-* 02:30:00"] and timer["Timer"]["Persistent"] == ["true"]
    assert timer["Install"]["WantedBy"] == ["timers.target"]
    calendar = subprocess.run(["systemd-analyze", "calendar", "--iterations=2", "*-*-* 02:30:00"],
                              capture_output=True, text=True, timeout=30)
    assert calendar.returncode == 0 and calendar.stdout.count("02:30:00") >= 2


def test_install_keeps_an_existing_config_and_dry_run_changes_nothing(tmp_path):
    dry = _install(tmp_path / "dry", "--dry-run")
    assert dry.returncode == 0 and not (tmp_path / "dry").exists()
    assert "create" in dry.stdout and "dry run: nothing changed" in dry.stdout

    prefix = tmp_path / "root"
    assert _install(prefix).returncode == 0
    config = prefix / "etc" / "edge" / "edge.toml"
    assert config.read_text() == (ROOT / "deploy" / "edge.toml").read_text()
    assert stat.S_IMODE(config.stat().st_mode) == 0o644
    credentials = prefix / "etc" / "edge" / "credentials"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o700
    for name in ("amqp_password", "kafka_password", "influx_password", "aws_credentials", "amqp_client_key"):
        assert stat.S_IMODE((credentials / name).stat().st_mode) == 0o600
    # Every LoadCredential= of every unit has its slot, or the unit would not start.
    for unit in ALL_UNITS:
        for cred in unit_settings(UNITS / unit).get("Service", {}).get("LoadCredential", []):
            assert (prefix / cred.partition(":")[2].lstrip("/")).is_file(), cred

    config.write_text("# the operator's own\n")
    (credentials / "amqp_password").write_text("s3cret\n")
    unit = prefix / "etc" / "systemd" / "system" / "edge-sink.service"
    unit.write_text("stale\n")
    again = _install(prefix)
    assert again.returncode == 0, again.stderr
    assert config.read_text() == "# the operator's own\n"
    assert (credentials / "amqp_password").read_text() == "s3cret\n"
    assert "keep (exists, not overwritten)" in again.stdout and "update" in again.stdout
    assert unit.read_text().startswith("# edge sink")  # units are ours: refreshed


def test_every_secret_file_the_shipped_config_names_is_a_slot_the_units_load():
    """The installed edge.toml's secret settings name credential slots, and every
    unit whose service reads that section loads the slot (LoadCredential=), so the
    relative name resolves in its $CREDENTIALS_DIRECTORY."""
    import tomllib

    from edge.ops.install import CREDENTIALS, named_slots
    from edge.config.settings import SERVICE_SETTINGS

    config = tomllib.loads((ROOT / "deploy" / "edge.toml").read_text())
    named = named_slots(ROOT / "deploy" / "edge.toml")
    assert named == ["amqp_password", "kafka_password", "influx_password"]
    assert set(named) <= set(CREDENTIALS)
    section_of = {"amqp_password": "amqp", "kafka_password": "kafka", "influx_password": "influxdb"}
    assert config["amqp"]["password_file"] == "amqp_password"
    assert config["kafka"]["sasl_password_file"] == "kafka_password"
    assert config["influxdb"]["password_file"] == "influx_password"
    unit_of = {"bridge": "edge-bridge.service", "parser": "edge-parser.service", "sink": "edge-sink.service",
               "archive": "edge-archive.service"}
    for service, unit in unit_of.items():
        loaded = {c.partition(":")[0] for c in unit_settings(UNITS / unit)["Service"].get("LoadCredential", [])}
        for slot in named:
            if section_of[slot] in SERVICE_SETTINGS[service].model_fields:
                assert slot in loaded, f"{unit} reads [{section_of[slot]}] but does not load {slot}"


# ------------------------------------------------------------------ MemoryDenyWriteExecute

PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1


def _deny_write_execute() -> None:
    """In the child before exec: what MemoryDenyWriteExecute=yes enforces (inherited)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE) failed: kernel older than 6.3?")


class _MdweProcess(EdgeProcess):
    def start(self):
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", *self.args], cwd=ROOT, env={**os.environ, **self.env},
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_deny_write_execute,
        )
        log.close()
        return self


def test_mdwe_is_really_enforced_in_the_child():
    probe = subprocess.run(
        [sys.executable, "-c", "import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)"],
        preexec_fn=_deny_write_execute, capture_output=True, text=True, timeout=30,
    )
    assert probe.returncode != 0 and "PermissionError" in probe.stderr


def test_services_reach_ready_with_memory_deny_write_execute(local_services, names, edge_env, tmp_path):
    ensure_topics(KafkaSettings(topic_prefix=names["prefix"], partitions=1))
    servers, procs = [], []
    try:
        for stage in ("bridge", "parse", "sink"):
            server = NotifySocket(f"@edge-mdwe-{uuid.uuid4().hex}")
            servers.append(server)
            env = dict(edge_env, NOTIFY_SOCKET=server.address, WATCHDOG_USEC="2000000",
                       EDGE_PARSER__GROUP_ID=f"{names['prefix']}.parser", EDGE_SINK__GROUP_ID=f"{names['prefix']}.sink")
            procs.append(_MdweProcess([stage], env, tmp_path / f"{stage}.log").start())
        for server, proc in zip(servers, procs):
            server.receive_until(_has("READY"), 30, proc)
            server.receive_until(_has("WATCHDOG", 2), 10, proc)
        for proc in procs:
            assert proc.terminate(timeout=15) == 0, proc.log()
        # The archiver's libraries (pyarrow, zstd, boto3) too: a dry run plans and exits
        # (on an existing database: a missing one is an operator error, exit 5).
        influx.execute(local_services["influxdb"].url, f'CREATE DATABASE "{names["database"]}"')
        archive = _MdweProcess(["archive", "--dry-run", "--older-than", "1"], edge_env, tmp_path / "archive.log").start()
        assert archive.proc.wait(60) == 0, archive.log()
    finally:
        for proc in procs:
            proc.kill()
        for server in servers:
            server.close()
        delete_queue(AmqpSettings(queue=names["queue"]))


def test_systemd_analyze_is_installed():
    assert shutil.which("systemd-analyze"), "devtools/bootstrap.sh installs the systemd package"
