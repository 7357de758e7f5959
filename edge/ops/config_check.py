"""``edge config check``: validate a settings file, print what each service would use.

Every service's settings class (``edge.config.settings.SERVICE_SETTINGS``) loads the file
exactly as the service itself would (TOML, then ``EDGE_*`` environment on top), so
a file that passes here starts every service: types, ranges, enums, URL schemes,
time zones, secret files that exist and are not empty, no unknown key or section
(``edge.config.settings``), and on top of that the ``[kafka.client]`` properties as
librdkafka itself judges them, without connecting (``edge.kafka.properties``).

Each problem is printed once (stderr), located: ``file:line`` of the key, or the
``EDGE_*`` variable that set it, with "did you mean" for an unknown key. The
services that loaded are printed anyway (stdout, TOML or JSON), one table per
service (``[bridge.amqp]``, ...), secrets masked (``edge.config.masking``), and where
each secret comes from (``edge.config.secret_sources``): a file, the environment, or
a built-in development default, which is shown as such and never masked.

Secret files named relative (``password_file = "amqp_password"``) are read from
``$CREDENTIALS_DIRECTORY``, which systemd sets for ``LoadCredential=``; outside a
unit ``--credentials-dir`` stands in for it, by default the ``credentials``
directory next to the config file (``/etc/edge/credentials`` for
``/etc/edge/edge.toml``), so an operator can check the production file as root.

Exit status: 0 valid; 3 a problem (the count on the last line); 2 usage.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edge.kafka import properties as kafka_properties
from edge.config.problems import Problem, dotted, key_lines, locate
from edge.config.masking import MASK, looks_secret, mask_url, masked  # noqa: F401 (public here too)
from edge.config.secret_sources import SecretSource, secret_sources
from edge.config.settings import (
    SERVICE_SETTINGS,
    KafkaSettings,
    SettingsError,
    _ServiceSettings,
    read_config,
    resolve_config_path,
)



# ------------------------------------------------------------------ effective settings (pure)


def effective(settings) -> dict[str, Any]:
    """The settings object as nested plain data, secrets masked."""
    data = {name: getattr(settings, name) for name in type(settings).model_fields}
    return {name: masked(_plain(value), name) for name, value in data.items()}


def _plain(value: Any) -> Any:
    """Pydantic models -> dicts, keeping SecretStr objects so ``masked`` sees them."""
    fields = getattr(type(value), "model_fields", None)
    if fields is not None:
        return {name: _plain(getattr(value, name)) for name in fields}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def show_defaults_plainly(table: dict[str, Any], sources: list[SecretSource]) -> dict[tuple[str, ...], str]:
    """A secret that is a built-in default is shown as it is, never masked; returns
    a note per secret key (``section.key`` -> where it comes from)."""
    notes = {}
    for source in sources:
        section, _, key = source.key.partition(".")
        if section not in table or key not in table[section]:
            continue
        if source.kind == "default":
            table[section][key] = source.detail
        notes[(section, key)] = source.describe()
    return notes


# ------------------------------------------------------------------ TOML output (pure)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def to_toml(table: dict[str, Any], path: tuple[str, ...] = (), notes: dict | None = None) -> list[str]:
    """Nested dicts as TOML tables; ``None`` (unset) as a comment line; ``notes``
    (key path below the service -> text) as trailing comments."""
    notes = notes or {}
    lines: list[str] = []
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if path and (scalars or not tables):
        lines.append("[" + ".".join(_toml_key(p) for p in path) + "]")
    for key, value in scalars.items():
        note = notes.get(path[1:] + (key,))
        suffix = f"  # {note}" if note else ""
        if value is None:
            lines.append(f"# {_toml_key(key)} = (unset){suffix}")
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}{suffix}")
    if path and (scalars or not tables):
        lines.append("")
    for key, value in tables.items():
        lines.extend(to_toml(value, path + (key,), notes))
    return lines


# ------------------------------------------------------------------ checking (I/O)


@dataclass
class Report:
    path: Path | None
    results: dict[str, dict] = field(default_factory=dict)  # service -> effective settings
    notes: dict[tuple[str, ...], str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    secrets: list[SecretSource] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def add(self, problems: list[Problem]) -> None:
        self.problems.extend(p for p in problems if p not in self.problems)


def check(config_path: str | None, services: list[str]) -> Report:
    """Load ``config_path`` for each service as it would; every problem once."""
    path = resolve_config_path(config_path)  # a missing file: SettingsError, one line
    text, _ = read_config(path)  # a syntax error: the same
    report = Report(path)
    loaded: dict[str, Any] = {}
    for service in services:
        try:
            loaded[service] = SERVICE_SETTINGS[service].load(config_path)
        except SettingsError as exc:
            report.add(exc.problems)
            report.failed.append(service)
    kafka_problems = _librdkafka_problems(config_path, services, path, text)
    report.add(kafka_problems)
    sections: dict[str, Any] = {}
    for service, settings in loaded.items():
        if kafka_problems and "kafka" in type(settings).model_fields:
            report.failed.append(service)
            continue
        report.results[service] = effective(settings)
        sections.update({name: getattr(settings, name) for name in type(settings).model_fields})
    report.secrets = secret_sources(sections, path, text)
    for table in report.results.values():
        report.notes.update(show_defaults_plainly(table, report.secrets))
    return report


class _KafkaOnly(_ServiceSettings):
    """The ``[kafka]`` section alone, loaded as the services load it: its client
    properties are checked even when another section keeps every service down."""

    log: Any = None
    metrics: Any = None
    kafka: KafkaSettings = KafkaSettings()


def _librdkafka_problems(config_path: str | None, services: list[str], path: Path | None,
                         text: str) -> list[Problem]:
    if not any("kafka" in SERVICE_SETTINGS[s].model_fields for s in services):
        return []
    # Only the section's own validity matters here (not unknown sections elsewhere).
    bound = type("KafkaOnly", (_KafkaOnly,), {"_config_path": path})
    try:
        kafka = bound().kafka
    except ValidationError:  # the section's own problems are reported by the services
        return []
    lines = key_lines(text)
    problems = []
    for prop, message in kafka_properties.refusals(kafka):
        loc = _property_loc(prop, kafka)
        where = locate(loc, path, lines, os.environ)
        hint = ""
        if prop and message.lower().startswith("no such configuration property"):
            guess = kafka_properties.suggestion(prop)
            hint = f"; did you mean {guess!r}?" if guess else ""
        problems.append(Problem(where, dotted(loc), f"librdkafka refuses it: {message}{hint}"))
    return problems


def _property_loc(prop: str | None, kafka) -> tuple[str, ...]:
    if prop in kafka.client:
        return ("kafka", "client", prop)
    if prop in kafka.client_secret_files:
        return ("kafka", "client_secret_files", prop)
    if prop == "bootstrap.servers":
        return ("kafka", "bootstrap_servers")
    return ("kafka", "client") + ((prop,) if prop else ())
