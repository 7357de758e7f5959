"""Typed settings for every edge service: TOML file, then ``EDGE_*`` environment.

One settings class per service (``BridgeSettings``, ``ParserSettings``, ...), each
made of the shared sections it needs (``edge.config.sections``, whose field types
are in ``edge.config.types``) and its own options; the services themselves are
listed once, in ``edge.config.services``. All of them read the same TOML file, so an
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
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from edge.core.errors import ConfigError
from edge.config import problems as config_problems
from edge.config.services import SERVICES
# The shared sections and field types, importable from here as before.
from edge.config.sections import (  # noqa: F401
    AmqpSettings,
    AthenaSettings,
    InfluxSettings,
    KafkaSettings,
    LogSettings,
    MetricsSettings,
    S3Settings,
    _Section,
)
from edge.config.types import (  # noqa: F401
    DEFAULT_CREDENTIALS_DIR,
    NonNegativeSeconds,
    Positive,
    PositiveSeconds,
    TimeZone,
    read_secret_file,
    secret_file_path,
)

DEFAULT_CONFIG_PATH = Path("/etc/edge/edge.toml")


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
            problems = config_problems.from_validation_error(exc, cls, path, text, os.environ, known_keys())
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


def known_keys() -> set[str]:
    """Every ``section.key`` some service reads (for "did you mean")."""
    keys = set()
    for cls in SERVICE_SETTINGS.values():
        for section, field in cls.model_fields.items():
            model = field.annotation
            if isinstance(model, type) and issubclass(model, BaseModel):
                keys.update(f"{section}.{name}" for name in model.model_fields)
    return keys


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
    # sink's share of publish-to-queryable latency. One request takes every
    # partition's records, so at 100 msgs/s 0.02 is about 50 requests a second.
    batch_max_age_s: PositiveSeconds = 0.02
    # Capped exponential backoff (jittered) while InfluxDB is unavailable.
    retry_initial_s: PositiveSeconds = 0.5
    retry_max_s: PositiveSeconds = 30.0
    # Records held across all partitions before fetching is paused (memory bound).
    max_buffered_lines: Positive = 50_000
    max_buffered_bytes: Positive = 64_000_000
    # /write requests in flight at once (a partition is in one at most, so each
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
    # A fleet: this archiver takes the sites whose stable hash falls to shard I of
    # N ("I/N", 1-based; ``--shard``). None: every site.
    shard: str | None = None
    # Worker processes exporting windows side by side (0: the machine's cores).
    workers: Annotated[int, Field(ge=0)] = 0


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
    """``edge status``: the metrics host and ports, and the archive directory; no
    secrets, so any user can run it (the DLQ count loads ``[kafka]`` on its own,
    and says so when its secret files cannot be read)."""

    archive: ArchiveOptions = Field(default_factory=ArchiveOptions)


# Service name -> its settings class, in the order of edge.config.services.
SERVICE_SETTINGS: dict[str, type[_ServiceSettings]] = {s.name: globals()[s.settings_class] for s in SERVICES}
