"""sd_notify as systemd sees it: a test binds the NOTIFY_SOCKET (AF_UNIX datagram,
as systemd does) and runs the real services against the real broker."""

from __future__ import annotations

import os
import socket
import time
import uuid

import pytest

from edge.runtime.supervision import Notifier, ServiceRuntime, notify_address, watchdog_interval
from edge.config.settings import KafkaSettings, MetricsSettings
from edge.kafka.topics import ensure_topics
from tests.support.bridge_io import delete_queue
from tests.support.processes import EdgeProcess
from edge.config.settings import AmqpSettings


class NotifySocket:
    """The supervisor's end: collects every datagram a service sends."""

    def __init__(self, address: str):
        self.address = address  # as it goes into $NOTIFY_SOCKET
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(notify_address(address))
        self.sock.settimeout(0.2)
        self.messages: list[dict[str, str]] = []

    def receive_until(self, predicate, timeout: float, proc: EdgeProcess | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.messages):
                return
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                if proc is not None and not proc.alive():
                    break
                continue
            self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines()))
        if not predicate(self.messages):
            log = proc.log() if proc is not None else ""
            raise AssertionError(f"notify messages so far: {self.messages}\n{log}")

    def count(self, key: str) -> int:
        return sum(1 for m in self.messages if key in m)

    def close(self) -> None:
        self.sock.close()
        if not self.address.startswith("@"):
            os.unlink(self.address)


def _has(key: str, at_least: int = 1):
    return lambda messages: sum(1 for m in messages if key in m) >= at_least


def test_notify_address_forms():
    assert notify_address("@edge/notify") == b"\0edge/notify"
    assert notify_address("/run/systemd/notify") == "/run/systemd/notify"
    assert notify_address("") is None and notify_address(None) is None


def test_watchdog_interval_is_a_fraction_and_only_for_this_process():
    assert watchdog_interval({"WATCHDOG_USEC": "20000000"}) == pytest.approx(5.0)
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}) == pytest.approx(5.0)
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({}) is None


def test_runtime_pings_are_rate_limited_and_silent_without_a_socket(tmp_path):
    server = NotifySocket(f"@edge-test-{uuid.uuid4().hex}")
    try:
        env = {"NOTIFY_SOCKET": server.address, "WATCHDOG_USEC": "400000"}  # ping every 0.1 s at most
        runtime = ServiceRuntime("t", MetricsSettings(), log=None, env=env)
        runtime.ready("working")
        began = time.monotonic()
        while time.monotonic() - began < 0.5:
            runtime.alive()  # a busy loop: thousands of calls
        runtime.status("working")  # unchanged: not sent again
        runtime.status("paused")
        runtime.stopping()
        server.receive_until(_has("STOPPING"), 2)
        assert server.messages[0]["READY"] == "1" and server.messages[0]["STATUS"] == "working"
        assert 3 <= server.count("WATCHDOG") <= 7
        assert [m["STATUS"] for m in server.messages if "STATUS" in m] == ["working", "paused", "stopping"]
    finally:
        server.close()
    assert not Notifier({}).enabled and Notifier({}).send("READY=1") is False


def test_parser_sends_ready_watchdog_and_stopping(local_services, names, edge_env, tmp_path):
    """The real parser against the real broker, abstract-namespace socket."""
    ensure_topics(KafkaSettings(topic_prefix=names["prefix"], partitions=1))
    server = NotifySocket(f"@edge-test-{uuid.uuid4().hex}")
    env = dict(edge_env, NOTIFY_SOCKET=server.address, WATCHDOG_USEC="1000000",
               EDGE_PARSER__GROUP_ID=f"{names['prefix']}.parser")
    proc = EdgeProcess(["parse"], env, tmp_path / "parse.log").start()
    try:
        server.receive_until(_has("READY"), 30, proc)
        ready = next(m for m in server.messages if "READY" in m)
        assert ready["MAINPID"] == str(proc.pid) and "parsing" in ready["STATUS"]
        server.receive_until(_has("WATCHDOG", 3), 10, proc)  # every 0.25 s at WATCHDOG_USEC=1 s
        assert proc.terminate(timeout=15) == 0
        server.receive_until(_has("STOPPING"), 2)
        stopping = next(i for i, m in enumerate(server.messages) if "STOPPING" in m)
        assert stopping > max(i for i, m in enumerate(server.messages) if "READY" in m)
    finally:
        proc.kill()
        server.close()


def test_bridge_sends_ready_after_connecting_path_socket(local_services, names, edge_env, tmp_path):
    """The real bridge with a filesystem socket, as systemd's /run/systemd/notify."""
    ensure_topics(KafkaSettings(topic_prefix=names["prefix"], partitions=1))
    path = f"/tmp/edge-notify-{uuid.uuid4().hex[:12]}"
    server = NotifySocket(path)
    env = dict(edge_env, NOTIFY_SOCKET=path, WATCHDOG_USEC="1000000")
    proc = EdgeProcess(["bridge"], env, tmp_path / "bridge.log").start()
    try:
        server.receive_until(_has("READY"), 30, proc)
        assert "amqp_connected" in proc.log()  # READY follows the connection, not the start
        server.receive_until(_has("WATCHDOG", 3), 10, proc)
        assert proc.terminate(timeout=15) == 0
        server.receive_until(_has("STOPPING"), 2)
    finally:
        proc.kill()
        server.close()
        delete_queue(AmqpSettings(queue=names["queue"]))
