"""Typed settings for every edge service: TOML file, then ``EDGE_*`` environment.

One settings class per service (``BridgeSettings``, ``ParserSettings``, ...), each
made of the shared sections it needs. All of them read the same TOML file, so an
operator keeps one ``/etc/edge/edge.toml``; a section a service does not use is
ignored by it.

Precedence (highest first): ``EDGE_*`` environment variables (nested with ``__``,
e.g. ``EDGE_KAFKA__BOOTSTRAP_SERVERS``), the TOML file (``--config``, else
``$EDGE_CONFIG``, else ``/etc/edge/edge.toml`` when present), the defaults here.
The defaults point at the local development services (``make services-up``), so the
demo runs with no configuration at all.

Secrets are ``SecretStr`` (masked in ``repr`` and in ``edge config check``), and
each can come from a file (``password_file``) instead of the value itself, for
systemd's ``LoadCredential=``. A secret file that is named must exist, be readable
and hold the secret: a missing or empty one is refused at load, not at first use.

Values a service would fail on later are refused at load too (log levels, sizes
and timeouts that must be positive, ports, URL schemes, time zones), and so is a
top-level section no service reads. ``load()`` raises ``SettingsError`` (a
``ConfigError``: exit code 3, one line naming the file and line, or the
environment variable, of the first problem); ``edge config check`` lists them all.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from edge.core.errors import ConfigError
from edge.config import problems as config_problems

DEFAULT_CONFIG_PATH = Path("/etc/edge/edge.toml")
# Where `edge install` puts the secret files the units load with LoadCredential=.
DEFAULT_CREDENTIALS_DIR = Path("/etc/edge/credentials")


def secret_file_path(path: str) -> Path:
    """A secret file's location: a relative name is looked up in
    ``$CREDENTIALS_DIRECTORY`` when set (systemd's ``LoadCredential=``), so one
    TOML file serves every unit (``password_file = "amqp_password"``); outside a
    unit, in ``/etc/edge/credentials`` when that exists (a command run by hand as
    root finds what the units are given)."""
    p = Path(path)
    if p.is_absolute():
        return p
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials:
        return Path(credentials) / p
    if DEFAULT_CREDENTIALS_DIR.is_dir():
        return DEFAULT_CREDENTIALS_DIR / p
    return p


def read_secret_file(path: str | None) -> SecretStr | None:
    """The first line of a secret file, or None when no file is named. A file that
    cannot be read or holds nothing is a ``ValueError`` naming it (never its text)."""
    if not path:
        return None
    where = secret_file_path(path)
    try:
        text = where.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ValueError(f"secret file {where} cannot be read: {why}") from None
    first = text.splitlines()[0].strip() if text.strip() else ""
    if not first:
        raise ValueError(f"secret file {where} is empty: write the secret into it, or remove the setting")
    return SecretStr(text.splitlines()[0])


def _readable_secret_file(path: str | None) -> str | None:
    read_secret_file(path)
    return path


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _http_url(value: str | None) -> str | None:
    """An http(s) URL with a host (``127.0.0.1:8086`` alone would be read as a
    path by the HTTP client: a request to ``/8086/query`` on the local host)."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL with a host, e.g. http://influx.example:8086 (got {value!r})")
    try:
        parts.port
    except ValueError:
        raise ValueError(f"has an invalid port (got {value!r})") from None
    return value


def _time_zone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (an IANA name such as 'Asia/Seoul')") from None
    return value


# Types for values a service would otherwise fail on only once it runs.
SecretFile = Annotated[str | None, AfterValidator(_readable_secret_file)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
OptionalHttpUrl = Annotated[str | None, AfterValidator(_http_url)]
TimeZone = Annotated[str, AfterValidator(_time_zone)]
Port = Annotated[int, Field(ge=1, le=65535)]
Positive = Annotated[int, Field(gt=0)]
PositiveSeconds = Annotated[float, Field(gt=0)]
NonNegativeSeconds = Annotated[float, Field(ge=0)]


class _Section(BaseModel):
    model_config = {"extra": "forbid"}


class AmqpSettings(_Section):
    host: str = "127.0.0.1"
    port: Port = 5672
    vhost: str = "/"
    # RabbitMQ's development account: fine on a laptop, refused by RabbitMQ from
    # anywhere but localhost; `edge config check` names it as a default.
    username: str = "guest"
    password: SecretStr = SecretStr("guest")
    password_file: SecretFile = None
    queue: str = "microgrid.telemetry"
    # Where the bridge puts a message Kafka refuses for good (e.g. larger than the
    # broker accepts), with the reason in its headers; default "<queue>.dlq".
    dead_letter_queue: str | None = None
    # Declared durable (and quorum when asked) if missing; the gateway owns it in
    # production, so declaring is passive there.
    declare_queue: bool = True
    queue_type: Literal["classic", "quorum"] = "classic"
    heartbeat_s: Annotated[int, Field(ge=0)] = 30
    # TLS (AMQPS, usually port 5671): TLS 1.2+, the server certificate verified
    # against ca_file (else the system trust store) and, unless verify_hostname is
    # false, its name against server_hostname (else host). cert_file/key_file: a
    # client certificate, when the broker asks for one.
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_hostname: str | None = None
    verify_hostname: bool = True

    @model_validator(mode="after")
    def _password_from_file(self) -> "AmqpSettings":
        secret = read_secret_file(self.password_file)
        if secret is not None:
            self.password = secret
        return self


class KafkaSettings(_Section):
    bootstrap_servers: str = "127.0.0.1:19092"
    topic_prefix: str = "microgrid"
    partitions: Positive = 6
    replication_factor: Positive = 1
    # retention.ms of each topic (``edge topics`` creates and checks them; -1 keeps
    # records forever). The raw topic's retention is how far back ``edge replay``
    # can reach; the DLQ keeps its records long enough to be looked at and redriven.
    raw_retention_ms: int = Field(default=7 * 24 * 3600 * 1000, ge=-1)
    parsed_retention_ms: int = Field(default=7 * 24 * 3600 * 1000, ge=-1)
    dlq_retention_ms: int = Field(default=30 * 24 * 3600 * 1000, ge=-1)
    # librdkafka properties passed through verbatim to every client (SASL, SSL...).
    client: dict[str, str | int | float | bool] = Field(default_factory=dict)
    # Secret librdkafka properties (e.g. sasl.password) read from files.
    client_secret_files: dict[str, SecretFile] = Field(default_factory=dict)
    # The SASL password as a secret of its own (EDGE_KAFKA__SASL_PASSWORD, or a
    # file): masked wherever settings are shown; becomes sasl.password.
    sasl_password: SecretStr | None = None
    sasl_password_file: SecretFile = None
    # Consumer groups. Static membership (group.instance.id, KIP-345): a member
    # that restarts under the same id gets its partitions back in one join, instead
    # of after the dead member's session timed out. "{host}" and "{service}" are
    # filled in; "" turns static membership off. Ids are per group: two instances
    # of one service on one host need different ids (set
    # EDGE_KAFKA__GROUP_INSTANCE_ID="{host}-{service}-2" for the second), else the
    # newer one fences the older, which stops with group_instance_fenced.
    group_instance_id: str = "{host}-{service}"
    # How long a silent member keeps its partitions (a host that died and does not
    # come back), and how often members heartbeat (about a third of it).
    session_timeout_ms: Positive = 6000
    heartbeat_interval_ms: Positive = 1500

    @property
    def raw_topic(self) -> str:
        return f"{self.topic_prefix}.raw"

    @property
    def parsed_topic(self) -> str:
        return f"{self.topic_prefix}.parsed"

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic_prefix}.dlq"

    def client_config(self) -> dict[str, Any]:
        """librdkafka configuration common to every client of this project."""
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers}
        conf.update(self.client)
        password = read_secret_file(self.sasl_password_file) or self.sasl_password
        if password is not None:
            conf["sasl.password"] = password.get_secret_value()
        for key, path in self.client_secret_files.items():
            secret = read_secret_file(path)
            if secret is not None:
                conf[key] = secret.get_secret_value()
        return conf


class InfluxSettings(_Section):
    url: HttpUrl = "http://127.0.0.1:18086"
    database: Annotated[str, Field(min_length=1)] = "microgrid"
    username: str | None = None
    password: SecretStr | None = None
    password_file: SecretFile = None
    retention_policy: str | None = None
    create_database: bool = True
    ca_file: str | None = None
    verify_tls: bool = True
    timeout_s: PositiveSeconds = 30.0

    @model_validator(mode="after")
    def _password_from_file(self) -> "InfluxSettings":
        secret = read_secret_file(self.password_file)
        if secret is not None:
            self.password = secret
        return self

    @model_validator(mode="after")
    def _credentials_out_of_url(self) -> "InfluxSettings":
        """``http://user:pass@host`` -> username/password fields and a URL without
        them, so the URL can be logged and shown."""
        parts = urlsplit(self.url)
        if parts.username is None and parts.password is None:
            return self
        if parts.username and not self.username:
            self.username = unquote(parts.username)
        if parts.password is not None and self.password is None and not self.password_file:
            self.password = SecretStr(unquote(parts.password))
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
        self.url = urlunsplit(parts._replace(netloc=netloc))
        return self


class MetricsSettings(_Section):
    # Prometheus endpoint; port 0 or enabled=false turns it off.
    enabled: bool = False
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 0


class LogSettings(_Section):
    level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_upper)] = "INFO"
    # auto: readable console lines when stderr is a terminal (and not the
    # journal), JSON otherwise (systemd, pipes, files).
    format: Literal["auto", "json", "console"] = "auto"


class _ServiceSettings(BaseSettings):
    """Base: TOML file + EDGE_* environment, nested with ``__``."""

    model_config = SettingsConfigDict(
        env_prefix="EDGE_",
        env_nested_delimiter="__",
        extra="ignore",
    )
    _config_path: ClassVar[Path | None] = None

    log: LogSettings = Field(default_factory=LogSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = cls._config_path
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @classmethod
    def load(cls, config_path: str | Path | None = None, **overrides: Any):
        """Settings from ``config_path`` (or $EDGE_CONFIG, or /etc/edge/edge.toml).

        Raises ``SettingsError`` (every problem, located) instead of pydantic's error.
        """
        path = resolve_config_path(config_path)
        text, raw = read_config(path)
        # ClassVar on a throwaway subclass keeps load() re-entrant per class.
        bound = type(cls.__name__, (cls,), {"_config_path": path})
        problems: list[config_problems.Problem] = []
        settings = None
        try:
            settings = bound(**overrides)
        except ValidationError as exc:
            problems = config_problems.from_validation_error(exc, cls, path, text, os.environ)
        if path is not None:
            problems += config_problems.unknown_sections(raw, known_sections(), path, text)
        if problems:
            raise SettingsError(problems)
        return settings


class SettingsError(ConfigError):
    """Settings that cannot be used; ``problems`` lists each, located. The message
    is the first one (the CLI prints one line); ``edge config check`` shows all."""

    def __init__(self, problems: list["config_problems.Problem"]):
        self.problems = problems = sorted(problems, key=lambda p: p.order())
        more = f" (and {len(problems) - 1} more: run `edge config check`)" if len(problems) > 1 else ""
        super().__init__(problems[0].line() + more)


def resolve_config_path(config_path: str | Path | None) -> Path | None:
    """The settings file: ``config_path``, else ``$EDGE_CONFIG``, else
    /etc/edge/edge.toml when it exists; None means built-in defaults only."""
    env = os.environ.get("EDGE_CONFIG")
    named, origin = (config_path, "") if config_path else (env, " (from $EDGE_CONFIG)")
    if named:
        path = Path(named)
        if not path.is_file():
            what = "is not a file" if path.exists() else "does not exist"
            raise SettingsError([config_problems.Problem(str(path), "", f"config file {what}{origin}")])
        return path
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


def read_config(path: Path | None) -> tuple[str, dict[str, Any]]:
    """The file's text and its TOML tables; a syntax error names the file and line."""
    if path is None:
        return "", {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SettingsError([config_problems.Problem(str(path), "", f"cannot be read: {why}")]) from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError([config_problems.toml_syntax_problem(exc, path)]) from None


def known_sections() -> set[str]:
    """Every top-level table some service reads."""
    return {name for cls in SERVICE_SETTINGS.values() for name in cls.model_fields}


class BridgeOptions(_Section):
    # AMQP prefetch: the most deliveries not yet acked, i.e. waiting for Kafka.
    prefetch: Positive = 1000
    # Most records in the producer's local queue (also bounds the leftovers of a
    # lost channel still awaiting their delivery report).
    max_in_flight: Positive = 5000
    # Backoff after a lost RabbitMQ connection or a failed Kafka delivery:
    # doubles from reconnect_initial_backoff_s up to reconnect_max_backoff_s.
    reconnect_initial_backoff_s: PositiveSeconds = 0.5
    reconnect_max_backoff_s: PositiveSeconds = 30.0
    # Largest AMQP body the producer accepts (librdkafka message.max.bytes); the
    # Kafka broker's own limit (message.max.bytes / max.message.bytes) applies too.
    max_message_bytes: Positive = 16 * 1024 * 1024
    # On SIGTERM: how long to wait for outstanding delivery reports before the
    # rest is handed back to RabbitMQ (must stay well under systemd's stop timeout).
    shutdown_flush_s: NonNegativeSeconds = 5.0


class ParserOptions(_Section):
    group_id: str = "edge-parser"
    # Site id -> IANA time zone for header.timestamp; others use default_timezone.
    default_timezone: TimeZone = "UTC"
    site_timezones: dict[str, TimeZone] = Field(default_factory=dict)
    max_in_flight: Positive = 20000
    # Per-site metrics (last seen, messages): a site unheard of for this long leaves
    # them, and so do the least recently seen beyond site_metrics_max_sites.
    site_metrics_forget_after_s: float = 86_400.0
    site_metrics_max_sites: Positive = 1000


class SinkOptions(_Section):
    group_id: str = "edge-sink"
    # One /write request holds at most this many lines and bytes; a batch is also
    # written once its oldest line has waited batch_max_age_s.
    batch_max_lines: Positive = 5000
    batch_max_bytes: Positive = 4_000_000
    # At field rates (a few hundred points/s per partition) age decides: it is the
    # sink's share of publish-to-queryable latency.
    batch_max_age_s: PositiveSeconds = 0.2
    # Capped exponential backoff (jittered) while InfluxDB is unavailable.
    retry_initial_s: PositiveSeconds = 0.5
    retry_max_s: PositiveSeconds = 30.0
    # Records held across all partitions before fetching is paused (memory bound).
    max_buffered_lines: Positive = 50_000
    max_buffered_bytes: Positive = 64_000_000
    # /write requests in flight at once (one per partition at most, so each
    # partition's commits stay in order); 2 keeps InfluxDB busy on a small server.
    write_concurrency: Positive = 2
    connect_timeout_s: PositiveSeconds = 3.0
    # Duration of influxdb.retention_policy when the sink creates it (with
    # influxdb.create_database); an existing policy is left as it is.
    retention_duration: str = "INF"
    # Wait for the DLQ to acknowledge records before their offsets are committed.
    dlq_timeout_s: PositiveSeconds = 10.0
    # On SIGTERM/SIGINT: time to write what is held before committing and exiting.
    shutdown_flush_s: NonNegativeSeconds = 5.0


class ArchiveOptions(_Section):
    # Local archive: the hive layout lives here whether or not S3 is configured;
    # ``edge query --local`` reads it.
    directory: str = "var/archive"
    # Points older than this are archived (``--older-than`` overrides it).
    older_than_days: Annotated[float, Field(ge=0)] = 30.0
    # Rows per InfluxDB response chunk (decoded as Python objects: bounds memory)
    # and rows per Parquet row group (columnar, buffered until written).
    chunk_rows: Positive = 10_000
    row_group_rows: Positive = 131_072
    # zstd level for the Parquet pages (1..22).
    zstd_level: Annotated[int, Field(ge=1, le=22)] = 9
    # With S3 configured: delete each verified window from InfluxDB (``--keep``
    # overrides). Without S3 the local archive alone never leads to a delete unless
    # ``delete_without_s3`` is true (or ``--delete`` is given).
    delete_after_verify: bool = True
    delete_without_s3: bool = False
    # A .prom file for node_exporter's textfile collector: the run's metrics
    # (last success time included) outlive the oneshot process. None: not written.
    metrics_textfile: str | None = None
    # A window (one UTC day) is archived once its end is this many minutes in the
    # past, so late points of a day land before it is archived (``--include-today``
    # overrides it, and with it the current day is archived and deleted too).
    settle_minutes: float = Field(default=60.0, ge=0)
    # Archive every retention policy of the database, not only the one the sink
    # writes (``influxdb.retention_policy`` or the database's default); the others
    # go to ``<measurement>__<policy>/`` beside the measurement (``--all-policies``).
    all_retention_policies: bool = False


class S3Settings(_Section):
    # No bucket: the archive stays on local disk only.
    bucket: str | None = None
    prefix: str = "archive/"
    region: str = "us-east-1"
    # Set for a local moto_server or another S3-compatible endpoint; None = AWS.
    endpoint_url: OptionalHttpUrl = None
    # Files above this size are uploaded in parts of ``multipart_chunk_mb``
    # (S3 refuses parts under 5 MB, except the last).
    multipart_threshold_mb: Positive = 64
    multipart_chunk_mb: Annotated[int, Field(ge=5)] = 16
    # Credentials come from the standard boto3 chain (env, profile, instance role).
    profile: str | None = None

    @property
    def key_prefix(self) -> str:
        """The prefix as a key fragment: no leading slash, one trailing slash."""
        p = self.prefix.strip("/")
        return f"{p}/" if p else ""


class AthenaSettings(_Section):
    # The workgroup and Glue database the CDK app creates (its stack outputs).
    workgroup: str = "microgrid"
    database: str = "microgrid"
    region: str = "us-east-1"
    # Set for a local moto_server; None = AWS. Credentials: the standard boto3 chain.
    endpoint_url: OptionalHttpUrl = None
    profile: str | None = None
    # Seconds a query may run before ``edge query`` stops it (``--timeout``).
    timeout_s: PositiveSeconds = 300.0
    # Status polling: first wait, doubling up to the longest wait.
    poll_initial_s: PositiveSeconds = 0.25
    poll_max_s: PositiveSeconds = 5.0
    # Result location sent with each query. Leave unset for the CDK workgroup: it
    # enforces its own (s3://<bucket>/athena-results/); needed only for a workgroup
    # without one.
    output_location: str | None = None


class BridgeSettings(_ServiceSettings):
    amqp: AmqpSettings = Field(default_factory=AmqpSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    bridge: BridgeOptions = Field(default_factory=BridgeOptions)


class ParserSettings(_ServiceSettings):
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    parser: ParserOptions = Field(default_factory=ParserOptions)


class SinkSettings(_ServiceSettings):
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    influxdb: InfluxSettings = Field(default_factory=InfluxSettings)
    sink: SinkOptions = Field(default_factory=SinkOptions)


class ArchiveSettings(_ServiceSettings):
    influxdb: InfluxSettings = Field(default_factory=InfluxSettings)
    archive: ArchiveOptions = Field(default_factory=ArchiveOptions)
    s3: S3Settings = Field(default_factory=S3Settings)


class QuerySettings(_ServiceSettings):
    athena: AthenaSettings = Field(default_factory=AthenaSettings)
    archive: ArchiveOptions = Field(default_factory=ArchiveOptions)
    s3: S3Settings = Field(default_factory=S3Settings)


class SimulatorSettings(_ServiceSettings):
    amqp: AmqpSettings = Field(default_factory=AmqpSettings)


class TopicsSettings(_ServiceSettings):
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)


class StatusSettings(_ServiceSettings):
    """``edge status``: the metrics host and the archive directory; no secrets, so
    any user can run it."""

    archive: ArchiveOptions = Field(default_factory=ArchiveOptions)


SERVICE_SETTINGS: dict[str, type[_ServiceSettings]] = {
    "bridge": BridgeSettings,
    "parser": ParserSettings,
    "sink": SinkSettings,
    "archive": ArchiveSettings,
    "query": QuerySettings,
    "simulate": SimulatorSettings,
    "topics": TopicsSettings,
}
