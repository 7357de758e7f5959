"""Logs: JSON for the journal and pipes, readable lines on a terminal, and
librdkafka's own lines through the same logger, one per state change."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from edge.runtime.logs import LibrdkafkaLog, librdkafka_line, same_state, use_console
from tests.support import influx

ROOT = Path(__file__).resolve().parent.parent
REFUSED = ("[thrd:127.0.0.1:1/bootstrap]: 127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: "
           "Connection refused (after 0ms in state CONNECT{})")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _collecting(repeat_after_s: float = 300.0):
    clock, lines = Clock(), []
    log = LibrdkafkaLog(repeat_after_s, clock, emit=lambda level, fields: lines.append((level, fields)))
    return log, clock, lines


def test_a_broker_that_stays_down_is_one_line_until_its_state_changes():
    log, clock, lines = _collecting()
    for i in range(200):  # ~20 a second for 10 s, as librdkafka reports a refused connect
        clock.now = i * 0.05
        suffix = "" if i % 2 else f", {i} identical error(s) suppressed"
        log.log(40, "%s [%s] %s", "FAIL", "edge-parser#consumer-1", REFUSED.format(suffix))
    assert len(lines) == 1
    level, fields = lines[0]
    assert level == 40 and fields["facility"] == "FAIL" and fields["thread"] == "127.0.0.1:1/bootstrap"
    assert fields["client"] == "edge-parser#consumer-1" and "Connection refused" in fields["message"]

    # Another state of the same broker is a new line; another broker has its own.
    log.log(40, "%s [%s] %s", "FAIL", "c", "[thrd:127.0.0.1:1/bootstrap]: 127.0.0.1:1/bootstrap: Connect to "
            "ipv4#127.0.0.1:1 failed: Connection timed out (after 3000ms in state CONNECT)")
    log.log(40, "%s [%s] %s", "FAIL", "c", "[thrd:127.0.0.2:1/bootstrap]: " + REFUSED.format("")[30:])
    assert len(lines) == 3

    # Still down after the reminder interval: one line again, counting what it held back.
    log.log(40, "%s [%s] %s", "FAIL", "c", REFUSED.format(""))
    clock.now += 400
    log.log(40, "%s [%s] %s", "FAIL", "c", REFUSED.format(""))
    assert len(lines) == 5 and "repeated" not in lines[3][1]
    log.log(40, "%s [%s] %s", "FAIL", "c", REFUSED.format(""))
    clock.now += 400
    log.log(40, "%s [%s] %s", "FAIL", "c", REFUSED.format(""))
    assert len(lines) == 6 and lines[5][1]["repeated"] == 1


def test_librdkafka_line_parts():
    assert librdkafka_line("[thrd:main]: Group state changed") == ("main", "Group state changed")
    assert librdkafka_line("no thread") == ("", "no thread")
    assert same_state("x failed (after 12ms in state CONNECT, 5 identical error(s) suppressed)") == "x failed"


def test_auto_format_is_console_on_a_terminal_and_json_under_systemd_or_in_a_pipe():
    class Tty:
        def isatty(self) -> bool:
            return True

    class Pipe:
        def isatty(self) -> bool:
            return False

    assert use_console("auto", Tty(), {})
    assert not use_console("auto", Tty(), {"JOURNAL_STREAM": "8:1234"})
    assert not use_console("auto", Pipe(), {})
    assert use_console("console", Pipe(), {}) and not use_console("json", Tty(), {})


def _run_on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run ``edge`` with stderr (and stdout) on a pseudo-terminal; its output."""
    main, secondary = pty.openpty()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_") and k != "JOURNAL_STREAM"}
    clean["EDGE_METRICS__PORT"] = "0"  # any free port: never another run's fixed one
    proc = subprocess.Popen([sys.executable, "-m", "edge", *args], cwd=ROOT, env={**clean, **env},
                            stdin=subprocess.DEVNULL, stdout=secondary, stderr=secondary)
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(main, 4096)
        except OSError:  # EIO: the terminal's other end closed
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(60)
    os.close(main)
    return b"".join(chunks).decode("utf-8", "replace")


def test_interactive_logs_are_readable_and_the_journal_gets_json(edge_env, local_services, names):
    # An existing (empty) database: a missing one is an operator error (exit 5).
    influx.execute(local_services["influxdb"].url, f'CREATE DATABASE "{names["database"]}"')
    env = {**edge_env, "EDGE_LOG__FORMAT": "auto"}
    on_terminal = _run_on_a_terminal(["archive", "--dry-run"], env)
    planned = [line for line in on_terminal.splitlines() if "archive_planned" in line]
    assert planned and not planned[0].lstrip().startswith("{"), on_terminal
    assert "windows=0" in planned[0]  # structlog's console rendering: key=value

    under_systemd = _run_on_a_terminal(["archive", "--dry-run"], {**env, "JOURNAL_STREAM": "8:12345"})
    planned = [line for line in under_systemd.splitlines() if "archive_planned" in line]
    assert planned and json.loads(planned[0])["windows"] == 0, under_systemd
