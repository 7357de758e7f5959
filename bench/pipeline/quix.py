"""(e) the same points drained by Quix Streams' ``InfluxDB1Sink`` (JSON dicts, the
form it takes), in its own venv (``bench/requirements-quix.txt``: its pins conflict
with ours), same batch size. The child is ``bench/quix_influx1_sink.py``."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import psutil

from bench.harness import ROOT, CpuMeter, Influx, create_topic, fill_topic, named_processes, say
from devtools import services as dev_services
from edge.config.settings import KafkaSettings
from edge.core import lineproto

QUIX_VENV = ROOT / "var" / "bench-quix-venv"
QUIX_REQUIREMENTS = ROOT / "bench" / "requirements-quix.txt"


def quix_python() -> Path:
    python = QUIX_VENV / "bin" / "python"
    if not python.exists():
        say(f"  (e) creating {QUIX_VENV.relative_to(ROOT)} from {QUIX_REQUIREMENTS.relative_to(ROOT)} ...")
        subprocess.run([sys.executable, "-m", "venv", str(QUIX_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(QUIX_REQUIREMENTS)], check=True)
    return python


def as_quix_dict(line: bytes) -> bytes:
    point = lineproto.read(line)
    fields = {key: lineproto.value(raw) for key, raw in point.fields.items()}
    doc = {"_m": point.measurement, "_t": point.timestamp // 1_000_000, **point.tags, **fields}
    return orjson.dumps(doc)


def bench_quix(lines: list[bytes]) -> dict:
    python = quix_python()
    tag = uuid.uuid4().hex[:8]
    topic = f"bench_e_{tag}.points"
    influx = Influx(f"bench_e_{tag}")
    create_topic(topic)
    fill_topic(topic, [(lineproto.series_key(line), as_quix_dict(line)) for line in lines])
    cpu = CpuMeter(named_processes())
    proc = subprocess.Popen(
        [str(python), "-m", "bench.quix_influx1_sink", "--broker", KafkaSettings().bootstrap_servers,
         "--topic", topic, "--database", influx.settings.database, "--influx-port",
         str(dev_services.default_influx().port), "--expect", str(len(lines))],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    cpu.procs["quix sink"] = psutil.Process(proc.pid)
    cpu.start()
    try:
        out, err = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    cpu.stop()
    points = influx.points()
    influx.drop()
    if proc.returncode != 0 or not out.strip():
        raise RuntimeError(f"quix sink failed ({proc.returncode}): {err[-2000:]}")
    progress = json.loads(out.strip().splitlines()[-1])
    rate = (progress["written"] - progress["first_count"]) / (progress["last"] - progress["first"])
    say(f"  (e) Quix Streams InfluxDB1Sink: {rate:,.0f} points/s; InfluxDB holds {points:,} of {len(lines):,}")
    say(f"      {cpu.line()} (whole run, group join included)")
    return {"points_per_s": rate}
