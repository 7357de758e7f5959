"""(a) InfluxDB's own ingest rate: the lines written straight from memory with
``edge.influx.client`` in 5,000-line requests, 1, 2 and 4 at a time; the best is
the ceiling on this machine."""

from __future__ import annotations

import threading
import time
import uuid

from bench.harness import CpuMeter, Influx, named_processes, say
from edge.influx.client import InfluxClient


def bench_ceiling(lines: list[bytes], batch: int = 5000) -> dict:
    bodies = [b"\n".join(lines[i : i + batch]) for i in range(0, len(lines), batch)]
    results = {}
    for writers in (1, 2, 4):
        influx = Influx(f"bench_a_{uuid.uuid4().hex[:8]}")
        todo = list(reversed(bodies))
        lock = threading.Lock()
        errors = []

        def work():
            writer = InfluxClient(influx.settings)
            while True:
                with lock:
                    if not todo:
                        return
                    body = todo.pop()
                result = writer.write(body)
                if not result.ok:
                    errors.append(result)

        cpu = CpuMeter(named_processes()).start()
        t0 = time.perf_counter()
        threads = [threading.Thread(target=work) for _ in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        cpu.stop()
        assert not errors, errors[:3]
        results[writers] = len(lines) / elapsed
        say(f"  (a) {writers} writer(s): {results[writers]:,.0f} points/s   {cpu.line()}")
        influx.drop()
    best = max(results, key=results.get)
    return {"points_per_s": results[best], "writers": best, "by_writers": results}
