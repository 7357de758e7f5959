"""Metrics of a oneshot command in a file, for node_exporter's textfile collector.

``edge archive`` runs from a timer and exits: its endpoint is gone before
Prometheus can see how the run ended. So the run also leaves its metrics in a
``.prom`` file (``[archive] metrics_textfile``) that node_exporter's
``--collector.textfile.directory`` serves between runs. Only the command's own
families (by name prefix) are written, never the process/python collectors, which
would collide with node_exporter's own; the file is replaced atomically.

A gauge that must outlive a failed run (the last successful run's time) is read
back from the previous file before the run (``load_gauge``), so a failed run does
not reset it to 0.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families


class _Prefixed:
    """A collector showing only ``REGISTRY``'s families whose name starts with prefix
    (or one of a tuple of prefixes: exact family names work too)."""

    def __init__(self, prefix: str | tuple[str, ...], source=REGISTRY):
        self.prefix = prefix
        self.source = source

    def collect(self):
        return [f for f in self.source.collect() if f.name.startswith(self.prefix)]


def write_textfile(path: str | Path, prefix: str | tuple[str, ...], source=REGISTRY) -> None:
    """Write the families named ``prefix*`` to ``path`` atomically, readable by all
    (node_exporter runs as another user; the units' UMask is 0077)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Prefixed(prefix, source))
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(generate_latest(registry))
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)


def previous_value(path: str | Path, sample_name: str) -> float | None:
    """The value of an unlabelled sample in an earlier textfile, if there is one."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == sample_name and not sample.labels:
                    return sample.value
    except ValueError:  # a damaged file: start afresh rather than fail the run
        return None
    return None


def load_gauge(path: str | Path, gauge) -> None:
    """Set an unlabelled ``gauge`` from the previous file (left alone if absent)."""
    value = previous_value(path, gauge._name)
    if value is not None:
        gauge.set(value)
