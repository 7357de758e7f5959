"""InfluxDB 1.x over HTTP: the one client the sink, the archiver and restore share.

Plain HTTP (``requests`` with one keep-alive session) rather than the ``influxdb``
client: the sink already holds each line as UTF-8 bytes and writes the joined bytes
as they are (the client wants ``str`` lines and re-encodes them), it needs the raw
status and message of every answer to tell "retry later" from "these lines are
refused" (the client turns both into exceptions and retries on its own, blocking),
and the archive streams chunked MessagePack, which the client would buffer whole.

- ``write`` and ``query`` (statements that change something) never raise for a
  server or network problem: they return a ``WriteResult`` (``edge.influx.answers``)
  for the caller to act on.
- ``statement`` and ``stream`` (reads) return the HTTP answer for the caller to
  read and raise ``requests``' exceptions: the archive turns them into operator
  errors.

Security, once for every caller: HTTP basic authentication (``username``/
``password``) on every request; for ``https://`` URLs the server certificate is
verified against ``ca_file`` (else the system trust store; ``verify_tls = false``
only for a lab), passed with every request so ``$REQUESTS_CA_BUNDLE`` cannot
replace it. Refusals say so: ``influxdb: 401 authorization failed for user sink
at https://...``, never the password. With least privilege (WRITE on the database
only) the user may not ``CREATE DATABASE``; that refusal is not an error: the
database is expected to exist, and a missing one shows as ``database not found``
on the next write.
"""

from __future__ import annotations

import requests

from edge.influx.answers import Outcome, WriteResult, classify, error_message
from edge.config.settings import InfluxSettings


def _quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxClient:
    def __init__(self, influx: InfluxSettings, *, connect_timeout_s: float = 3.0):
        self.settings = influx
        self.base_url = influx.url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Content-Type"] = "text/plain; charset=utf-8"
        if influx.username:
            password = influx.password.get_secret_value() if influx.password else ""
            self.session.auth = (influx.username, password)
        # Passed with every request: requests lets $REQUESTS_CA_BUNDLE replace a
        # session-level setting, and the configured CA must win.
        self.verify: bool | str = (influx.ca_file or influx.verify_tls) if self.base_url.startswith("https") else True
        self.connect_timeout_s = connect_timeout_s
        self.write_params = {"db": influx.database, "precision": "ns"}
        if influx.retention_policy:
            self.write_params["rp"] = influx.retention_policy
        if influx.consistency:
            # Enterprise: a 500 at "all"/"quorum" may still have landed (answers.py).
            self.write_params["consistency"] = influx.consistency

    # ------------------------------------------------------------ HTTP

    def _post(self, path: str, *, params: dict, data: bytes | None, timeout_s: float | None) -> WriteResult:
        read_timeout = self.settings.timeout_s if timeout_s is None else max(0.1, timeout_s)
        try:
            resp = self.session.post(
                f"{self.base_url}{path}",
                params=params,
                data=data,
                timeout=(min(self.connect_timeout_s, read_timeout), read_timeout),
                verify=self.verify,
            )
        except requests.RequestException as exc:
            return WriteResult(Outcome.RETRY, None, self._describe(exc))
        if 200 <= resp.status_code < 300:
            return WriteResult(Outcome.OK, resp.status_code)
        message = self._refusal(resp.status_code, error_message(resp.content, resp.headers.get("X-Influxdb-Error")))
        if message.startswith("influxdb: plain HTTP"):
            return WriteResult(Outcome.RETRY, resp.status_code, message)
        return classify(resp.status_code, message)

    def _refusal(self, status: int, message: str) -> str:
        if status == 400 and "HTTP request to an HTTPS server" in message:
            # Go's answer on a TLS port, not a verdict on the lines.
            return f"influxdb: plain HTTP sent to the HTTPS port at {self.base_url} (use https:// in influxdb.url)"
        if status in (401, 403):
            user = self.settings.username or "(none)"
            return f"influxdb: {status} {message} (user {user} at {self.base_url})"
        return message

    def _describe(self, exc: requests.RequestException) -> str:
        """A network failure in one line, naming TLS trouble as such."""
        if isinstance(exc, requests.exceptions.SSLError):
            text = str(exc)
            for marker in ("certificate verify failed: ", "SSL: "):
                if marker in text:
                    text = text.split(marker, 1)[1].split(" (_ssl")[0]
                    break
            return f"influxdb: TLS failure at {self.base_url}: {text} (ca_file={self.settings.ca_file or 'system trust store'})"
        if self.base_url.startswith("http://") and self._speaks_tls():
            # A TLS port answers a plain request with a 400 and closes; with a body
            # in flight that close often reaches us first, as a reset.
            return f"influxdb: plain HTTP sent to the HTTPS port at {self.base_url} (use https:// in influxdb.url)"
        return f"{type(exc).__name__}: {exc}"

    def _speaks_tls(self) -> bool:
        """Whether the server at our http:// URL is in fact a TLS port (one bodiless probe)."""
        try:
            resp = self.session.get(f"{self.base_url}/ping", timeout=self.connect_timeout_s)
        except requests.RequestException:
            return False
        return resp.status_code == 400 and "HTTP request to an HTTPS server" in resp.text

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
                verify=self.verify,
            )
        except requests.RequestException as exc:
            return WriteResult(Outcome.RETRY, None, self._describe(exc))
        message = self._refusal(resp.status_code, error_message(resp.content, resp.headers.get("X-Influxdb-Error")))
        if 200 <= resp.status_code < 300:
            try:
                errors = [r["error"] for r in resp.json().get("results", []) if "error" in r]
            except ValueError:
                errors = []
            if not errors:
                return WriteResult(Outcome.OK, resp.status_code)
            message = "; ".join(errors)
        return WriteResult(Outcome.RETRY, resp.status_code, message)

    def statement(self, q: str, *, method: str = "GET", epoch: str = "ns",
                  timeout_s: float | None = None) -> requests.Response:
        """One InfluxQL statement on the database (reads; DELETE as POST)."""
        read_timeout = self.settings.timeout_s if timeout_s is None else max(0.1, timeout_s)
        return self.session.request(
            method, f"{self.base_url}/query", params={"db": self.settings.database, "q": q, "epoch": epoch},
            timeout=(min(self.connect_timeout_s, read_timeout), read_timeout), verify=self.verify,
        )

    def stream(self, q: str, chunk_rows: int, gzip: bool = True) -> requests.Response:
        """``q`` answered as chunked MessagePack, streamed (read it chunk by chunk);
        ``gzip=False`` asks InfluxDB not to compress it."""
        params = {"db": self.settings.database, "q": q, "epoch": "ns", "chunked": "true",
                  "chunk_size": str(chunk_rows)}
        headers = {"Accept": "application/x-msgpack"} | ({} if gzip else {"Accept-Encoding": "identity"})
        return self.session.get(
            f"{self.base_url}/query", params=params, headers=headers, stream=True,
            timeout=(self.connect_timeout_s, self.settings.timeout_s), verify=self.verify,
        )

    def ping(self, timeout_s: float = 2.0) -> bool:
        try:
            resp = self.session.get(f"{self.base_url}/ping", timeout=timeout_s, verify=self.verify)
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
        if not result.ok and "requires admin privilege" in result.error:
            # A least-privilege user (WRITE on the database): the operator made it.
            return WriteResult(Outcome.OK, result.status, result.error)
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
