"""What an archive run did, counted as it goes: the closing line and the failures."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge.archive.windows import Window


@dataclass
class ArchiveSummary:
    windows: int = 0
    exported: int = 0  # windows written to Parquet in this run
    consolidated: int = 0  # of them, days whose earlier parts were merged with late points
    skipped: int = 0  # already archived and verified (kept in InfluxDB)
    deleted: int = 0  # windows deleted from InfluxDB in this run
    unchanged: int = 0  # nothing in InfluxDB for the window any more
    failed: int = 0
    refused: int = 0  # archived windows not deleted: another policy holds points there
    rows: int = 0  # rows exported in this run
    values: int = 0  # field values exported in this run
    bytes: int = 0  # Parquet bytes written in this run
    objects: int = 0  # objects uploaded (or written, local store) in this run
    schema_differences: int = 0  # schema questions the InfluxDB nodes answer differently
    misplaced_sites: int = 0  # (node, site) found on a node the site map does not give the site
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    worker_peak_rss: dict[int, int] = field(default_factory=dict)  # worker pid -> peak RSS bytes (a pool)

    _ADDED = ("exported", "consolidated", "skipped", "unchanged", "rows", "values", "bytes", "objects")

    def absorb(self, window: ArchiveSummary) -> None:
        """Add one window's figures (counted where it ran: here or in a worker)."""
        for name in self._ADDED:
            setattr(self, name, getattr(self, name) + getattr(window, name))

    def line(self) -> str:
        return (
            f"windows={self.windows} exported={self.exported} skipped={self.skipped}"
            f" deleted={self.deleted} refused={self.refused} failed={self.failed} rows={self.rows}"
            f" values={self.values} bytes={self.bytes} objects={self.objects}"
            f" consolidated={self.consolidated}"
            f"{f' schema_differences={self.schema_differences}' if self.schema_differences else ''}"
            f"{f' misplaced_sites={self.misplaced_sites}' if self.misplaced_sites else ''}"
            f" seconds={self.seconds:.1f}"
        )

    def counts(self) -> dict[str, int | float]:
        """The figures, for the closing log line."""
        figures = {k: v for k, v in vars(self).items() if k not in ("failures", "refusals", "worker_peak_rss")}
        if self.worker_peak_rss:
            figures["workers"] = len(self.worker_peak_rss)
            figures["worker_peak_rss_mb"] = round(max(self.worker_peak_rss.values()) / 1e6, 1)
        return figures

    def fail(self, window: Window, exc: Exception, log) -> None:
        """A window failed: counted, named once in the failures, logged."""
        self.failed += 1
        text = str(exc)  # most failures name their window already
        self.failures.append(text if text.startswith(window.label()) else f"{window.label()}: {text}")
        log.error("window_failed", window=window.label(), error=text, error_type=type(exc).__name__)
