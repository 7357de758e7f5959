"""The settings sections several services share: ``[amqp]``, ``[kafka]``,
``[influxdb]``, ``[s3]``, ``[athena]``, ``[metrics]``, ``[log]``.

Each is a pydantic model that refuses unknown keys; the services' settings
(``edge.config.settings``) are made of them. Secrets are ``SecretStr`` and each can
come from a file (``password_file``, ``edge.config.types``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import BaseModel, BeforeValidator, Field, SecretStr, field_validator, model_validator

from edge.config.services import default_metrics_ports
from edge.core.site_routes import DEFAULT_NODE, SiteRoutes
from edge.config.types import (
    HttpUrl,
    ListenPort,
    OptionalHttpUrl,
    Port,
    Positive,
    PositiveSeconds,
    SecretFile,
    read_secret_file,
    upper,
)


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
    # "group": the stages' consumers share partitions through their consumer group
    # (several instances, failover). "all": each stage instance reads every
    # partition itself, no membership (edge.kafka.assignment): one instance per
    # service, as the systemd units run them; a restart reads again at once
    # instead of after a group join (about 6 s on tansu).
    assignment: Literal["group", "all"] = "group"

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


def _site_pattern(value: str) -> str:
    if not value or value != value.strip():
        raise ValueError(f"a site name or glob must be non-empty without surrounding spaces: {value!r}")
    return value


SitePattern = Annotated[str, BeforeValidator(_site_pattern)]
NodeName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]


def _node_url_key(url: str) -> str:
    return url.rstrip("/").lower()


class InfluxNode(_Section):
    """One more InfluxDB node: where it is, and the sites it holds."""

    url: HttpUrl
    sites: list[SitePattern] = Field(default_factory=list)


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
    # InfluxDB Enterprise: how many replicas must take a write before /write says
    # so (``consistency=`` on every write; docs/scaling.md). Unset: not sent, the
    # server's default applies (``one`` on Enterprise); OSS accepts and ignores it.
    consistency: Literal["any", "one", "quorum", "all"] | None = None
    # More nodes, each owning whole sites (docs/scaling.md): name -> its URL and the
    # sites it holds (exact names or globs). ``url`` above is the node named
    # "default": it holds every site no node names, and ``sites`` here (optional)
    # keeps sites on it that another node's glob would take. Credentials, database
    # and timeouts are the same on every node. Bump ``site_map_version`` on every
    # change of the map: the services log it and export it as a metric.
    nodes: dict[NodeName, InfluxNode] = Field(default_factory=dict)
    sites: list[SitePattern] = Field(default_factory=list)
    site_map_version: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _site_map_sound(self) -> "InfluxSettings":
        if self.nodes and not self.site_map_version:
            raise ValueError("influxdb.nodes is set: set influxdb.site_map_version too (1, then +1 on every "
                             "change of the map), so every service can say which map it runs with")
        if DEFAULT_NODE in self.nodes:
            raise ValueError(f"{DEFAULT_NODE!r} is the node of influxdb.url; name the other nodes differently")
        urls: dict[str, str] = {_node_url_key(self.url): DEFAULT_NODE}
        for name, node in self.nodes.items():
            other = urls.setdefault(_node_url_key(node.url), name)
            if other != name:
                raise ValueError(f"nodes {other!r} and {name!r} have the same URL {node.url}")
        problems = self.routes().problems(self.node_names)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def routes(self) -> SiteRoutes:
        """The site -> node map (``edge.core.site_routes``)."""
        rules = {DEFAULT_NODE: list(self.sites)} if self.sites else {}
        rules.update({name: list(node.sites) for name, node in self.nodes.items()})
        return SiteRoutes(rules, DEFAULT_NODE)

    @property
    def node_names(self) -> list[str]:
        """Every node, the default first."""
        return [DEFAULT_NODE, *self.nodes]

    def node_settings(self, name: str) -> "InfluxSettings":
        """These settings for one node alone: its URL, no map (what a client of that
        node is built from)."""
        if name == DEFAULT_NODE:
            url = self.url
        elif name in self.nodes:
            url = self.nodes[name].url
        else:
            raise KeyError(f"no InfluxDB node named {name!r} (nodes: {', '.join(self.node_names)})")
        return self.model_copy(update={"url": url, "nodes": {}, "sites": [], "site_map_version": 0})

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
    """Each service's Prometheus endpoint: on by default, on its fixed port
    (``edge.config.services``: bridge 9641, parser 9642, sink 9643, archive 9644).
    ``port`` overrides the port of the service that reads it (a unit's
    ``EDGE_METRICS__PORT``); 0 asks the system for a free port (tests, a second
    instance on one host). ``enabled = false`` turns the endpoint off, and with it
    what ``edge status`` and Prometheus can see."""

    enabled: bool = True
    host: str = "127.0.0.1"
    ports: dict[str, ListenPort] = Field(default_factory=default_metrics_ports)
    port: ListenPort | None = None

    @field_validator("ports")
    @classmethod
    def _known_services(cls, value: dict[str, int]) -> dict[str, int]:
        """A partial table changes only the services it names; a name no service
        has is refused (a typo would leave the default port in place, silently)."""
        defaults = default_metrics_ports()
        unknown = sorted(set(value) - set(defaults))
        if unknown:
            raise ValueError(f"no service named {', '.join(map(repr, unknown))} has a metrics port "
                             f"(one of {', '.join(defaults)})")
        return {**defaults, **value}

    def port_for(self, service: str) -> int | None:
        """The port ``service`` listens on (0: any free one), None when it serves none."""
        if not self.enabled:
            return None
        return self.port if self.port is not None else self.ports.get(service)

    def setting_for(self, service: str) -> str:
        """The setting that chose ``service``'s port, as an operator would change it."""
        if self.port is not None:
            return "metrics.port (EDGE_METRICS__PORT)"
        return f"metrics.ports.{service} (EDGE_METRICS__PORTS)"


class LogSettings(_Section):
    level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(upper)] = "INFO"
    # auto: readable console lines when stderr is a terminal (and not the
    # journal), JSON otherwise (systemd, pipes, files).
    format: Literal["auto", "json", "console"] = "auto"


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
