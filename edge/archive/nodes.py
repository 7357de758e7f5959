"""The archive's InfluxDB when sites live on several nodes (``[influxdb.nodes]``,
docs/scaling.md): one ``InfluxArchiveSource`` per node behind the interface of one.

- A window's reads, counts and its DELETE go to the node of its site
  (``edge.core.site_routes``): nothing of one site is ever asked of, or deleted
  from, another node.
- What there is to archive (measurements, the first point, the plan's site-days)
  is asked of every node and merged. A site-day found on a node the map does not
  give it (what a move leaves behind on the old node) is not archived from there:
  it is reported (``strays``), and ``edge archive --node OLD --site S`` archives it.
- Schema questions (retention policies, SHOW FIELD KEYS, SHOW TAG KEYS) are asked
  of every node and merged: the union, in the order the nodes answer. A node
  without the database holds nothing (when no node has it, the run says so as
  with one node). Nodes that answer differently are reported (``differences``:
  what, and each node's answer); the archiver logs them, counts them in the run's
  summary and in ``edge_archive_schema_differences``.

``only``: every question goes to that one node, and every site-day found there is
archived from there, whatever the map says (``edge archive --node``).

With one node (no ``[influxdb.nodes]``) this is exactly one ``InfluxArchiveSource``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from edge.archive import influxql
from edge.archive.export import InfluxArchiveSource
from edge.archive.windows import Window, day_of_ns
from edge.config.settings import InfluxSettings
from edge.core.errors import NotFoundError, UsageError


class NodeArchiveSource:
    def __init__(self, settings: InfluxSettings, only: str | None = None):
        if only is not None and only not in settings.node_names:
            raise UsageError(f"--node {only}: no InfluxDB node of that name (nodes: {', '.join(settings.node_names)})")
        self.settings = settings
        self.database = settings.database
        self.routes = settings.routes()
        self.only = only
        self.names = [only] if only else settings.node_names
        self.sources = {name: InfluxArchiveSource(settings.node_settings(name)) for name in self.names}
        self.differences: dict[str, dict[str, str]] = {}  # what -> node -> its answer
        self.strays: dict[tuple[str, str], set] = {}  # (node, site) -> days found there
        self.missing: set[str] = set()  # nodes without the database
        self._keys: dict[tuple, list] = {}

    def close(self) -> None:
        for source in self.sources.values():
            source.close()

    def node_of(self, site_id: str) -> str:
        """The node a window of ``site_id`` is read from and deleted on."""
        return self.only or self.routes.node_for(site_id or None)

    def _for(self, window: Window) -> InfluxArchiveSource:
        return self.sources[self.node_of(window.site_id)]

    # -------------------------------------------------------------- merged questions

    def _ask(self, question: Callable[[InfluxArchiveSource], object]) -> dict[str, object]:
        """Node -> its answer, from the nodes holding the database; NotFoundError
        (the first node's) when none holds it."""
        answers: dict[str, object] = {}
        first_missing: NotFoundError | None = None
        for name in self.names:
            if name in self.missing:
                continue
            try:
                answers[name] = question(self.sources[name])
            except NotFoundError as exc:
                if "database not found" not in str(exc):
                    raise
                self.missing.add(name)
                first_missing = first_missing or exc
        if not answers and first_missing is not None:
            raise first_missing
        return answers

    def _compare(self, what: str, answers: dict[str, object], shown: Callable[[object], str]) -> None:
        texts = {node: shown(answer) for node, answer in answers.items()}
        if len(set(texts.values())) > 1:
            self.differences[what] = texts

    def retention_policies(self) -> list[tuple[str, bool]]:
        """Every policy of any node; the default is the first answering node's
        (the default node's when it holds the database)."""
        answers = self._ask(lambda s: s.retention_policies())
        self._compare(f"retention policies of {influxql.quote_ident(self.database)}", answers,
                      lambda a: ", ".join(f"{n}{' (default)' if d else ''}" for n, d in sorted(a)) or "(none)")
        for name in self.missing:
            self.differences[f"database {influxql.quote_ident(self.database)}"] = {
                **{n: "present" for n in answers}, **{n: "missing" for n in sorted(self.missing)}}
        merged = list(next(iter(answers.values())))
        names = [n for n, _ in merged]
        for answer in answers.values():
            for name, _default in answer:
                if name not in names:
                    names.append(name)
                    merged.append((name, False))
        return merged

    def measurements(self) -> list[str]:
        return _union(self._ask(lambda s: s.measurements()).values())

    def field_keys(self, policy: str, measurement: str) -> list[tuple[str, str]]:
        return self._schema("field keys", policy, measurement, lambda s: s.field_keys(policy, measurement))

    def tag_keys(self, policy: str, measurement: str) -> list[str]:
        return self._schema("tag keys", policy, measurement, lambda s: s.tag_keys(policy, measurement))

    def _schema(self, kind: str, policy: str, measurement: str, question) -> list:
        key = (kind, policy, measurement)
        if key not in self._keys:
            answers = {n: a for n, a in self._ask(question).items() if a}  # a node without it: nothing to say
            what = f"{kind} of {influxql.qualified(self.database, policy, measurement)}"
            self._compare(what, answers, lambda a: ", ".join(" ".join(k) if isinstance(k, tuple) else k
                                                            for k in sorted(a)))
            self._keys[key] = _union(answers.values())
        return self._keys[key]

    def check_schema(self, policies: list[str], measurements: list[str]) -> dict[str, dict[str, str]]:
        """Ask every node the schema of each archived table; the differences found."""
        for policy in policies:
            for m in measurements:
                self.field_keys(policy, m)
                self.tag_keys(policy, m)
        return self.differences

    def first_time_ns(self, policy: str, measurement: str) -> int | None:
        found = [t for t in self._ask(lambda s: s.first_time_ns(policy, measurement)).values() if t is not None]
        return min(found) if found else None

    def plan_days(self, policy: str, measurement: str, start_ns: int, end_ns: int,
                  parts: int = 1) -> list[tuple[str, int]]:
        """Every node's site-days that the node holds by the map (or all, ``only``);
        ``parts``: queries at once on each node (``InfluxArchiveSource``)."""
        out = []
        answers = self._ask(lambda s: s.plan_days(policy, measurement, start_ns, end_ns, parts))
        for node, rows in answers.items():
            for site, day in rows:
                if self.node_of(site) == node:
                    out.append((site, day))
                else:
                    self.strays.setdefault((node, site), set()).add(day_of_ns(day))
        return out

    def counter(self) -> NodeArchiveSource:
        """Another source on connections of its own: to count a window while this one exports it."""
        return NodeArchiveSource(self.settings, self.only)

    # -------------------------------------------------------------- one window, on its node

    def window_counts(self, window: Window, policy: str | None = None) -> dict[str, int]:
        return self._for(window).window_counts(window, policy)

    def delete(self, window: Window) -> None:
        self._for(window).delete(window)

    def export(self, window: Window, chunk_rows: int, expected: dict | None = None) -> Iterator:
        return self._for(window).export(window, chunk_rows, expected)

    # -------------------------------------------------------------- what to report

    def stray_lines(self) -> list[dict]:
        """One entry per (node, site) found where the map does not put it."""
        return [{"node": node, "site": site, "owner": self.routes.node_for(site or None), "days": len(days),
                 "first_day": min(days).isoformat(), "last_day": max(days).isoformat()}
                for (node, site), days in sorted(self.strays.items())]


def _union(answers) -> list:
    out: list = []
    seen: set = set()
    for answer in answers:
        for item in answer:
            if item not in seen:
                seen.add(item)
                out.append(item)
    return out
