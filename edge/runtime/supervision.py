"""What every edge service does for its supervisor: metrics endpoint and sd_notify.

- ``start_metrics``: the Prometheus endpoint (prometheus_client's own HTTP server,
  a daemon thread) on ``[metrics] host`` and the service's port (``[metrics]
  ports``: bridge 9641, parser 9642, sink 9643, archive 9644; ``[metrics] port``
  overrides it, 0 = any free port); off with ``enabled = false``. A port already
  taken stops the service with exit 3 (``metrics_port_in_use``): a second
  instance on one host needs a port of its own, and ``edge status`` must not
  read another process's numbers.
- ``systemd_running``: whether this host runs systemd (and ``systemctl`` is there).
- ``ServiceRuntime.ready()``: ``READY=1`` once the service has connected to what
  it needs (systemd's ``Type=notify`` holds dependent units and ``systemctl
  start`` until then).
- ``ServiceRuntime.alive()``: called on every main-loop iteration; sends
  ``WATCHDOG=1`` at most every quarter of ``WATCHDOG_USEC``, so a loop that
  hangs stops the pings and systemd restarts the service (``WatchdogSec=``).
- ``ServiceRuntime.status(text)``: ``STATUS=`` on state changes (shown by
  ``systemctl status``); ``stopping()``: ``STOPPING=1`` when shutdown begins.

Outside systemd (no ``NOTIFY_SOCKET``) every call is a no-op.

sd_notify is written here (the protocol is one datagram per message on the
``AF_UNIX`` socket named by ``$NOTIFY_SOCKET``; a leading ``@`` means the abstract
namespace; sd_notify(3) documents it as a stable interface) rather than taken from
a library: ``sdnotify`` has had no release since 2017, and ``systemd-python`` /
``cysystemd`` build against libsystemd's C headers, which an edge host need not
carry, for what is a dozen lines.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import time
from collections.abc import Mapping
from pathlib import Path

from edge.config.sections import MetricsSettings
from edge.core.errors import ConfigError

# A watchdog ping at most every WATCHDOG_USEC * this fraction (systemd recommends
# pinging at least every half interval; a quarter leaves room for a slow loop).
WATCHDOG_FRACTION = 0.25


def start_metrics(metrics: MetricsSettings, service: str, log=None) -> int | None:
    """Start ``service``'s Prometheus endpoint; returns the port it listens on, or
    None when it serves none. A port in use is a ``ConfigError`` (exit 3)."""
    port = metrics.port_for(service)
    if port is None:
        return None
    from prometheus_client import start_http_server

    try:
        server, _thread = start_http_server(port, addr=metrics.host)
    except OSError as exc:
        setting = metrics.setting_for(service)
        if exc.errno == errno.EADDRINUSE:
            if log is not None:
                log.error("metrics_port_in_use", host=metrics.host, port=port, setting=setting)
            raise ConfigError(f"metrics port {port} on {metrics.host} is in use (another edge {service}, or another "
                              f"program): set {setting} to a free port (0: any), or metrics.enabled = false") from None
        raise ConfigError(f"metrics endpoint {metrics.host}:{port} ({setting}): {exc.strerror or exc}") from None
    port = server.server_address[1]
    if log is not None:
        log.info("metrics_endpoint", host=metrics.host, port=port)
    return port


def systemd_running() -> bool:
    """systemd is this host's init (sd_booted(3): /run/systemd/system exists) and
    ``systemctl`` is there to ask it."""
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def notify_address(value: str | None) -> str | bytes | None:
    """``$NOTIFY_SOCKET`` as a socket address: ``@name`` is the abstract namespace."""
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # vsock:... and other forms: not used for services on this host


def watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Seconds between pings, or None when no watchdog is armed for this process."""
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None  # the watchdog belongs to another process (e.g. our parent)
    try:
        return int(usec) / 1e6 * WATCHDOG_FRACTION
    except ValueError:
        return None


class Notifier:
    """Sends sd_notify messages; silent when there is no supervisor to tell."""

    def __init__(self, env: Mapping[str, str] | None = None):
        env = os.environ if env is None else env
        self.address = notify_address(env.get("NOTIFY_SOCKET"))
        self._sock: socket.socket | None = None
        if self.address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *fields: str) -> bool:
        if self._sock is None:
            return False
        try:
            self._sock.sendto("\n".join(fields).encode(), self.address)
            return True
        except OSError:  # the supervisor went away: nothing to tell any more
            return False

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class ServiceRuntime:
    """One per service process: metrics endpoint, readiness, watchdog, status."""

    def __init__(self, name: str, metrics: MetricsSettings, log, env: Mapping[str, str] | None = None):
        env = os.environ if env is None else env
        self.name = name
        self.metrics = metrics
        self.log = log
        self.notifier = Notifier(env)
        self.watchdog_every = watchdog_interval(env)
        self._next_ping = 0.0
        self._status: str | None = None
        self.is_ready = False

    def start_metrics(self) -> int | None:
        return start_metrics(self.metrics, self.name, self.log)

    def ready(self, status: str | None = None) -> None:
        """READY=1, once; later calls only update the status."""
        if self.is_ready:
            if status:
                self.status(status)
            return
        self.is_ready = True
        self._status = status or self._status
        fields = ["READY=1", f"MAINPID={os.getpid()}"]
        if self._status:
            fields.append(f"STATUS={self._status}")
        self.notifier.send(*fields)
        self.alive(force=True)

    def status(self, text: str) -> None:
        """STATUS= when it changed (callers may call it every iteration)."""
        if text == self._status:
            return
        self._status = text
        self.notifier.send(f"STATUS={text}")

    def alive(self, force: bool = False) -> None:
        """WATCHDOG=1, rate-limited: cheap enough to call on every loop iteration."""
        if self.watchdog_every is None:
            return
        now = time.monotonic()
        if force or now >= self._next_ping:
            self._next_ping = now + self.watchdog_every
            self.notifier.send("WATCHDOG=1")

    def stopping(self, status: str = "stopping") -> None:
        self._status = status
        self.notifier.send("STOPPING=1", f"STATUS={status}")

    def close(self) -> None:
        self.notifier.close()


def start_service(name: str, settings) -> tuple[object, "StopSignal", ServiceRuntime]:
    """What every long-running service does first: structured logs, stop on
    SIGTERM/SIGINT, the metrics endpoint. Returns (log, stop, runtime)."""
    from edge.runtime import logs
    from edge.core.lifecycle import StopSignal

    log = logs.configure(settings.log, name)
    stop = StopSignal().install()
    runtime = ServiceRuntime(name, settings.metrics, log)
    runtime.start_metrics()
    return log, stop, runtime
