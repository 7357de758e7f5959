"""Every bench runs at tiny sizes, so none can break unseen (``make bench`` runs them
at full size). Each test asserts the bench exited 0 and printed its figures.

The benches needed by the selected tests start together when the first of them
runs (they wait on services and group joins more than they compute), each as
``python -m bench.<name>`` in its own process group; each test then waits for its
own. Their output is kept under pytest's tmp directory and shown on failure.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 240

# bench -> tiny-size arguments
ARGS = {
    "parser": ["--messages", "20", "--rounds", "1"],
    "systemd_security": [],
    "replay": ["--messages", "50"],
    "archive": ["--rows", "2000"],
    "restore": ["--rows", "2000"],
    "recovery": ["--rate", "10", "--steady-s", "1", "--assignment", "all"],
    # (e) is not run: see QUIX below.
    "pipeline": ["--messages", "30", "--sites", "3", "--whole-path-s", "2", "--preload", "200",
                 "--latency-s", "2", "--latency-rate", "20", "--skip", "e"],
}
# Slowest first, so they start first.
ORDER = ["recovery", "pipeline", "archive", "replay", "restore", "parser", "systemd_security"]

NUMBER = r"[\d,.]+"
FIGURES = {
    "parser": [rf"to_lines\s+{NUMBER} msgs/s\s+{NUMBER} points/s", rf"orjson decode\s+{NUMBER} msgs/s",
               rf"BMS document with lists .*\n\s+to_lines\s+{NUMBER} msgs/s\s+{NUMBER} fields/s", r"targets: "],
    "systemd_security": [r"edge-sink\.service\s+exposure=\d", r"worst long-running exposure=\d"],
    "replay": [rf"to_lines alone\s+{NUMBER} msgs/s", rf"edge replay\s+{NUMBER} msgs/s\s+{NUMBER} points/s",
               rf"broker floor\s+{NUMBER} msgs/s\s+{NUMBER} records/s", rf"ratio\s+{NUMBER} of the parser's rate",
               rf"ratio\s+{NUMBER} of the broker floor"],
    "archive": [rf"archive all days: .* = {NUMBER} field values/s", r"peak RSS: 1 day .* MB; all days .* MB",
                r"durability \(all days\): fsync", r"ok\s+every value archived",
                rf"4 worker\(s\): archive {NUMBER} values/s; InfluxDB read {NUMBER} values/s .*; ratio {NUMBER};"
                r" peak RSS per worker \[", rf"DELETE one window at 10 sites .* median {NUMBER} ms"],
    "restore": [rf"restore: {NUMBER} points, {NUMBER} values in {NUMBER}s = {NUMBER} values/s",
                r"read back: .* \(equal to the original\)"],
    "recovery": [r"first start ready in [\d.]+ s"]
    + [rf"kill -9 {name}\s+\+ restart: delivers again after\s+[\d.]+ s" for name in ("sink", "parse", "bridge")]
    + [r"end: .* expected: exact"]
    + [rf"bare consumer, {kind}: first join [\d.]+ s; kill -9 \+ restart to partitions back: .*\(median [\d.]+\)"
       for kind in (r"static, 6 s session \(the services\)", "static, 1 s session", "dynamic, 6 s session")],
    "pipeline a": [rf"\(a\) 4 writer\(s\): {NUMBER} points/s", rf"\(a\) InfluxDB ceiling\s+{NUMBER} points/s"],
    "pipeline b": [rf"\(b\) sink: {NUMBER} points/s .*InfluxDB holds ([\d,]+) of \1\b", r"\(k\) Kafka fetch ceiling",
                   rf"\(b\) sink stage\s+{NUMBER} points/s"],
    "pipeline c": [rf"\(c\) whole path: {NUMBER} msgs/s, {NUMBER} points/s sustained",
                   rf"\(c\) whole path\s+{NUMBER} points/s"],
    "pipeline d": [rf"\(d\) latency at .* p50 {NUMBER} ms, p99 {NUMBER} ms \(\d+ messages, 0 not queryable",
                   r"start to ready: [\d.]+ s", r"idle, before publishing: .*sink [\d.]+ cores",
                   rf"by hop, p50 / p99: bridge {NUMBER} / {NUMBER} ms, parser {NUMBER} / {NUMBER} ms, sink",
                   rf"the bench's own poll: \d+ queries, p50 {NUMBER} ms, p99 {NUMBER} ms each; .* lower bound\):"
                   rf" p50 {NUMBER} ms, p99 {NUMBER} ms",
                   rf"the broker's floor, one bare hop .*: p50 {NUMBER} ms, p99 {NUMBER} ms"],
}
QUIX = pytest.param(
    "pipeline e", marks=pytest.mark.skip(
        reason="(e) runs Quix Streams' InfluxDB1Sink in its own venv (bench/requirements-quix.txt, pins that "
               "conflict with ours), built by pip on first use: too slow and networked for the suite; "
               "`make bench` runs it"),
)


class Run:
    """One bench process, its output in a file."""

    def __init__(self, name: str, out: Path):
        self.name, self.out = name, out
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        with open(out, "wb") as sink:
            self.proc = subprocess.Popen([sys.executable, "-m", f"bench.{name}", *ARGS[name]], cwd=ROOT, env=env,
                                         stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def finish(self) -> tuple[int | None, str]:
        """(exit code, output); None when it had to be killed after TIMEOUT_S."""
        try:
            code = self.proc.wait(TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the bench and the services it started
            self.proc.wait(30)
            code = None
        return code, self.out.read_text(errors="replace")


def _bench_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params["figures"].split()[0] if callspec and "figures" in callspec.params else None


@pytest.fixture(scope="module")
def runs(request, local_services, tmp_path_factory):
    """The benches the selected tests of this module need, started together."""
    wanted = {_bench_of(item) for item in request.session.items
              if item.module is request.module and not item.get_closest_marker("skip")} - {None}
    out = tmp_path_factory.mktemp("benches")
    started = {name: Run(name, out / f"{name}.log") for name in ORDER if name in wanted}
    results: dict[str, tuple[int | None, str]] = {}

    def result(name: str) -> tuple[int | None, str]:
        if name not in results:
            results[name] = started[name].finish()
        return results[name]

    yield result
    for name in started:
        result(name)  # never leave a bench (or its services) running


@pytest.mark.parametrize("figures", [*FIGURES, QUIX])
def test_bench_runs_and_prints_its_figures(runs, figures):
    bench = figures.split()[0]
    code, output = runs(bench)
    assert code == 0, f"python -m bench.{bench} {' '.join(ARGS[bench])} exited {code}:\n{output[-4000:]}"
    missing = [pattern for pattern in FIGURES[figures] if not re.search(pattern, output)]
    assert not missing, f"bench.{bench} did not print {missing}:\n{output[-4000:]}"
