"""InfluxDB 1.x over plain HTTP: ``/write`` of line-protocol bodies, database setup.

Plain HTTP (``requests`` with one keep-alive session) rather than the ``influxdb``
client: the sink already holds each line as UTF-8 bytes and writes the joined bytes
as they are (the client wants ``str`` lines and re-encodes them), and it needs the
raw status and message of every answer to tell "retry later" from "these lines are
refused" (the client turns both into exceptions and retries on its own, blocking).

Never raises for a server or network problem: every call returns a ``WriteResult``
(``edge.influx_errors``) for the caller to act on.
"""

from __future__ import annotations

import requests

from edge.influx_errors import Outcome, WriteResult, classify, error_message
from edge.settings import InfluxSettings


def _quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxWriter:
    def __init__(self, influx: InfluxSettings, *, connect_timeout_s: float = 3.0):
        self.settings = influx
        self.base_url = influx.url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Content-Type"] = "text/plain; charset=utf-8"
        if influx.username:
            password = influx.password.get_secret_value() if influx.password else ""
            self.session.auth = (influx.username, password)
        if self.base_url.startswith("https"):
            self.session.verify = influx.ca_file or influx.verify_tls
        self.connect_timeout_s = connect_timeout_s
        self.write_params = {"db": influx.database, "precision": "ns"}
        if influx.retention_policy:
            self.write_params["rp"] = influx.retention_policy

    # ------------------------------------------------------------ HTTP

    def _post(self, path: str, *, params: dict, data: bytes | None, timeout_s: float | None) -> WriteResult:
        read_timeout = self.settings.timeout_s if timeout_s is None else max(0.1, timeout_s)
        try:
            resp = self.session.post(
                f"{self.base_url}{path}",
                params=params,
                data=data,
                timeout=(min(self.connect_timeout_s, read_timeout), read_timeout),
            )
        except requests.RequestException as exc:
            return WriteResult(Outcome.RETRY, None, f"{type(exc).__name__}: {exc}")
        if 200 <= resp.status_code < 300:
            return WriteResult(Outcome.OK, resp.status_code)
        message = error_message(resp.content, resp.headers.get("X-Influxdb-Error"))
        return classify(resp.status_code, message)

    def write(self, body: bytes, timeout_s: float | None = None) -> WriteResult:
        """Write newline-joined line-protocol lines (ns precision) in one request."""
        return self._post("/write", params=self.write_params, data=body, timeout_s=timeout_s)

    def query(self, q: str, timeout_s: float | None = None) -> WriteResult:
        """Run a statement that changes something (POST /query).

        InfluxDB answers 200 even when the statement failed, with the error inside
        ``results``: that counts as a failure (RETRY) carrying InfluxDB's message.
        """
        read_timeout = self.settings.timeout_s if timeout_s is None else max(0.1, timeout_s)
        try:
            resp = self.session.post(
                f"{self.base_url}/query",
                params={"q": q},
                timeout=(min(self.connect_timeout_s, read_timeout), read_timeout),
            )
        except requests.RequestException as exc:
            return WriteResult(Outcome.RETRY, None, f"{type(exc).__name__}: {exc}")
        message = error_message(resp.content, resp.headers.get("X-Influxdb-Error"))
        if 200 <= resp.status_code < 300:
            try:
                errors = [r["error"] for r in resp.json().get("results", []) if "error" in r]
            except ValueError:
                errors = []
            if not errors:
                return WriteResult(Outcome.OK, resp.status_code)
            message = "; ".join(errors)
        return WriteResult(Outcome.RETRY, resp.status_code, message)

    def ping(self, timeout_s: float = 2.0) -> bool:
        try:
            resp = self.session.get(f"{self.base_url}/ping", timeout=timeout_s)
        except requests.RequestException:
            return False
        return resp.status_code == 204

    # ------------------------------------------------------------ setup

    def ensure_database(self, retention_duration: str = "INF", timeout_s: float | None = None) -> WriteResult:
        """Create the database (and the named retention policy) when configured to.

        Both statements are idempotent in InfluxDB 1.x. With ``create_database`` off
        nothing is created: a missing database shows as 404s and the sink waits.
        """
        if not self.settings.create_database:
            return WriteResult(Outcome.OK)
        db = _quote_ident(self.settings.database)
        result = self.query(f"CREATE DATABASE {db}", timeout_s)
        if not result.ok:
            return result
        rp = self.settings.retention_policy
        if rp:
            result = self.query(
                f"CREATE RETENTION POLICY {_quote_ident(rp)} ON {db} "
                f"DURATION {retention_duration} REPLICATION 1",
                timeout_s,
            )
            # An existing policy with other settings is the operator's: keep it.
            if not result.ok and "already exists" in result.error:
                return WriteResult(Outcome.OK, result.status)
        return result

    def close(self) -> None:
        self.session.close()
