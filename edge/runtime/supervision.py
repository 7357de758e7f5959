"""What every edge service does for its supervisor: metrics endpoint and sd_notify.

- ``start_metrics``: the Prometheus endpoint (prometheus_client's own HTTP server,
  a daemon thread) on ``[metrics] host:port``; off when disabled or port 0.
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

import os
import socket
import time
from collections.abc import Mapping

from edge.config.settings import MetricsSettings

# A watchdog ping at most every WATCHDOG_USEC * this fraction (systemd recommends
# pinging at least every half interval; a quarter leaves room for a slow loop).
WATCHDOG_FRACTION = 0.25


def start_metrics(metrics: MetricsSettings, log=None) -> int | None:
    """Start the Prometheus endpoint; returns the port, or None when it is off."""
    if not metrics.enabled or not metrics.port:
        return None
    from prometheus_client import start_http_server

    start_http_server(metrics.port, addr=metrics.host)
    if log is not None:
        log.info("metrics_endpoint", host=metrics.host, port=metrics.port)
    return metrics.port


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
        return start_metrics(self.metrics, self.log)

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
