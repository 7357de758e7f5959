"""InfluxDB 1.x side of the archive: plan, export, count, delete. Thin I/O.

Every request goes through the shared ``edge.influx.client.InfluxClient`` (auth,
TLS, timeouts in one place). Small statements (SHOW ..., count, DELETE) are read
as JSON. The bulk export streams ``SELECT *`` as chunked MessagePack (``Accept:
application/x-msgpack``, supported since InfluxDB 1.4): measured on a 1.6 server it
is about 1.5x faster to decode than chunked JSON, and InfluxDB serves it faster than
CSV or JSON (measured on 1.6: 4.6 M values/s against 3.3 and 2.7), keeps
float/integer/boolean types exact (CSV would not tell a null from an empty string),
and the response is consumed chunk by chunk, so memory depends on ``chunk_rows``,
never on the window. ``edge.archive.columnar`` decodes it into Arrow buffers.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
import requests
import structlog
from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_never, wait_exponential

from edge.archive import columnar, influxql
from edge.archive.columnar import Decoded
from edge.archive.windows import NS_PER_DAY, Window
from edge.core.errors import NotFoundError, UnreachableError
from edge.influx.client import InfluxClient
from edge.influx.answers import delete_incomplete, error_message
from edge.core.failures import socket_reason
from edge.config.settings import InfluxSettings

# The export asks for the answer uncompressed: gzip cost InfluxDB more CPU than
# the whole read otherwise (measured on 1.6, same host: 2.2 against 3.2 M values/s).
# Across a slow link to InfluxDB, True trades that CPU for about 3x fewer bytes.
GZIP = False

# Least privilege for the archiver (InfluxDB 1.x): READ on the database to plan,
# count and export, and WRITE on it for the bounded DELETE (InfluxDB asks for
# WRITE, not admin, for DELETE): ``GRANT ALL ON <db> TO archiver``.


class InfluxError(RuntimeError):
    """A statement InfluxDB answered with an error."""


class InfluxUnreachable(UnreachableError):
    """No answer from InfluxDB (connection refused, timeout, TLS failure)."""


class InfluxRefused(UnreachableError):
    """InfluxDB refuses our credentials or privileges (401/403)."""


def _refused(settings: InfluxSettings, status: int | None, message: str) -> Exception:
    """InfluxDB's refusal in one line naming the hop and the user, never the password."""
    if status in (401, 403):
        return InfluxRefused(f"influxdb: {status} {message} (user {settings.username or '(none)'} at {settings.url})")
    if message.startswith(("database not found", "retention policy not found")):
        return NotFoundError(f"influxdb: {message} (at {settings.url})")
    return InfluxError(f"influxdb: {status} {message}" if status else f"influxdb: {message}")


def _unreachable(settings: InfluxSettings, exc: requests.RequestException) -> InfluxUnreachable:
    if isinstance(exc, requests.exceptions.SSLError):
        return InfluxUnreachable(f"influxdb: TLS failure at {settings.url}: {exc}")
    reason = socket_reason(exc) or ("timed out" if isinstance(exc, requests.exceptions.Timeout)
                                    else type(exc).__name__)
    return InfluxUnreachable(f"influxdb: cannot reach {settings.url}: {reason}")


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, InfluxError) and "engine is closed" in str(exc)


def _partial_delete(exc: BaseException) -> bool:
    return isinstance(exc, InfluxError) and delete_incomplete(str(exc))


def _field_counts(columns: list[str], values: list) -> dict[str, int]:
    """One row of ``count(*)``: values per field, fields with none left out."""
    return {col.removeprefix("count_"): int(n) for col, n in zip(columns[1:], values[1:]) if n}


class InfluxArchiveSource:
    # A DELETE that reached only some Enterprise data nodes is sent again until it
    # succeeds: waits of 1 s, 2 s, 4 s ... up to this ceiling.
    delete_retry_initial_s = 1.0
    delete_retry_max_s = 60.0

    def __init__(self, settings: InfluxSettings):
        self.settings = settings
        self.client = InfluxClient(settings)
        self.database = settings.database

    def close(self) -> None:
        self.client.close()

    # -------------------------------------------------------------- small queries

    def _rows(self, statement: str, method: str = "GET") -> list[dict]:
        """Series of a one-statement query: ``[{name, tags, columns, values}]``.

        ``engine is closed`` (a shard opening or closing, e.g. while another
        database is dropped) is transient: the statement (every one here is
        idempotent, DELETE included) is tried again, a few times.
        """
        retrying = Retrying(
            retry=retry_if_exception(_transient), stop=stop_after_attempt(4),
            wait=wait_exponential(multiplier=0.25, max=2), reraise=True,
        )
        return retrying(self._statement, statement, method)

    def _statement(self, statement: str, method: str) -> list[dict]:
        try:
            resp = self.client.statement(statement, method=method)
        except requests.RequestException as exc:
            raise _unreachable(self.settings, exc) from None
        if resp.status_code >= 300:
            message = error_message(resp.content, resp.headers.get("X-Influxdb-Error"))
            raise _refused(self.settings, resp.status_code, message)
        try:
            raw = (resp.json().get("results") or [{}])[0]
        except ValueError:
            raise InfluxError(f"influxdb: not a JSON answer to {statement[:80]!r}") from None
        if raw.get("error"):
            raise _refused(self.settings, None, raw["error"])
        return raw.get("series", [])

    def retention_policies(self) -> list[tuple[str, bool]]:
        """``(name, is_default)`` of every policy; NotFoundError without the database."""
        rows = self._rows(f"SHOW RETENTION POLICIES ON {influxql.quote_ident(self.database)}")
        out = []
        for s in rows:
            at = {c: i for i, c in enumerate(s["columns"])}
            out += [(v[at["name"]], bool(v[at["default"]])) for v in s["values"]]
        return out

    def measurements(self) -> list[str]:
        return [v[0] for s in self._rows("SHOW MEASUREMENTS") for v in s["values"]]

    def _source(self, policy: str, measurement: str) -> str:
        return influxql.qualified(self.database, policy, measurement)

    def field_keys(self, policy: str, measurement: str) -> list[tuple[str, str]]:
        rows = self._rows(f"SHOW FIELD KEYS FROM {self._source(policy, measurement)}")
        return [(v[0], v[1]) for s in rows for v in s["values"]]

    def tag_keys(self, policy: str, measurement: str) -> list[str]:
        rows = self._rows(f"SHOW TAG KEYS FROM {self._source(policy, measurement)}")
        return [v[0] for s in rows for v in s["values"]]

    def first_time_ns(self, policy: str, measurement: str) -> int | None:
        rows = self._rows(f"SELECT * FROM {self._source(policy, measurement)} LIMIT 1")
        for s in rows:
            for v in s["values"]:
                return int(v[0])
        return None

    def plan_days(self, policy: str, measurement: str, start_ns: int, end_ns: int,
                  parts: int = 1) -> list[tuple[str, int]]:
        """``(site_id, day_start_ns)`` of every site-day holding points: a query per
        day for the first point of each site (``influxql.first_points``), in ``parts``
        runs of consecutive days at once."""
        days = max(0, -(-(end_ns - start_ns) // NS_PER_DAY))
        runs = max(1, min(parts, days))
        cuts = [start_ns + NS_PER_DAY * (days * k // runs) for k in range(runs)] + [end_ns]
        if runs == 1:
            return self._plan_run(policy, measurement, start_ns, end_ns)
        with ThreadPoolExecutor(runs) as pool:
            found = pool.map(lambda k: self._run_apart(policy, measurement, cuts[k], cuts[k + 1]), range(runs))
            return [row for rows in found for row in rows]

    def _run_apart(self, policy: str, measurement: str, start_ns: int, end_ns: int) -> list[tuple[str, int]]:
        source = InfluxArchiveSource(self.settings)  # its own connection, for its thread
        try:
            return source._plan_run(policy, measurement, start_ns, end_ns)
        finally:
            source.close()

    def _plan_run(self, policy: str, measurement: str, start_ns: int, end_ns: int) -> list[tuple[str, int]]:
        out = []
        for day in range(start_ns, end_ns, NS_PER_DAY):
            statement = influxql.first_points(self.database, policy, measurement, day, min(day + NS_PER_DAY, end_ns))
            for s in self._rows(statement):
                if s.get("values"):
                    out.append(((s.get("tags") or {}).get("site_id", ""), day))
        return out

    def counter(self) -> InfluxArchiveSource:
        """Another source on its own connection: to count a window while this one exports it."""
        return InfluxArchiveSource(self.settings)

    def window_counts(self, window: Window, policy: str | None = None) -> dict[str, int]:
        """Values per field in the window (``count(*)``), fields with none left out;
        in the window's own policy, or in ``policy``."""
        counts: dict[str, int] = {}
        for s in self._rows(influxql.count_window(self.database, window, policy)):
            for v in s["values"]:
                counts.update(_field_counts(s["columns"], v))
        return counts

    def delete(self, window: Window) -> None:
        """Remove the window from every policy (InfluxQL DELETE takes no policy).

        On InfluxDB Enterprise a DELETE while a data node is down answers "partial
        success" and is not handed off to that node: it is sent again, with capped
        backoff and an ``influx_delete_partial`` warning each time, until every node
        took it (a stopped run leaves the part sealed, and the next run deletes it).
        """
        log = structlog.get_logger().bind(service="archive")
        retrying = Retrying(
            retry=retry_if_exception(_partial_delete), stop=stop_never, reraise=True,
            wait=wait_exponential(multiplier=self.delete_retry_initial_s, max=self.delete_retry_max_s),
            before_sleep=lambda state: log.warning(
                "influx_delete_partial", window=window.label(), attempt=state.attempt_number,
                retry_in_s=round(state.upcoming_sleep, 3), error=str(state.outcome.exception()),
            ),
        )
        retrying(self._rows, influxql.delete_window(window), "POST")

    # -------------------------------------------------------------- bulk export

    def export(self, window: Window, chunk_rows: int,
               expected: dict[str, int] | None = None) -> Iterator[tuple[list[str], list[list] | Decoded]]:
        """``(columns, rows)`` per chunk of ``SELECT *`` over the window, streamed;
        with ``expected`` (``columnar.kinds``), a chunk the compiled decoder takes
        comes as ``(columns, Decoded)`` column buffers instead of rows."""
        try:
            resp = self.client.stream(influxql.select_window(self.database, window), chunk_rows, gzip=GZIP)
        except requests.RequestException as exc:
            raise _unreachable(self.settings, exc) from None
        with resp:
            if resp.status_code in (401, 403):
                raise _refused(self.settings, resp.status_code, resp.text[:300].strip())
            if resp.status_code != 200:
                raise InfluxError(f"export {window.label()}: HTTP {resp.status_code} {resp.text[:300]}")
            for doc in columnar.documents(resp.raw.stream(1 << 20, decode_content=True), expected or {}):
                if isinstance(doc, list):
                    yield from doc
                    continue
                if doc.get("error"):
                    raise InfluxError(doc["error"])
                for result in doc.get("results", []):
                    if result.get("error"):
                        raise InfluxError(result["error"])
                    for series in result.get("series", []):
                        yield series["columns"], series["values"]
