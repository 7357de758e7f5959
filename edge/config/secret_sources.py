"""Where each secret of the effective settings comes from, for ``edge config check``.

A masked value alone cannot tell a real secret from RabbitMQ's development
``guest`` account, so every secret is reported with its source:

- ``file``: a ``*_file`` setting (resolved in ``$CREDENTIALS_DIRECTORY``, as the
  units resolve it);
- ``environment``: an ``EDGE_*`` variable;
- ``config file``: written into the TOML file itself (which every local user can
  read: a secret belongs in a file of its own);
- ``url``: the user and password part of ``[influxdb] url``;
- ``default``: a built-in development default, shown as it is: it is no secret;
- ``unset``: none (no authentication on that hop).

AWS credentials are not settings: their source is the shared-credentials file the
archive unit names (``AWS_SHARED_CREDENTIALS_FILE`` -> ``aws_credentials`` in the
credentials directory), the environment, a profile, or else the instance role.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.config.problems import env_source, key_lines, line_of
from edge.config.masking import looks_secret
from edge.config.settings import AmqpSettings, secret_file_path

AWS_CREDENTIALS_SLOT = "aws_credentials"


@dataclass(frozen=True)
class SecretSource:
    key: str  # dotted settings key, or "aws.credentials"
    kind: str  # file | environment | config file | url | default | unset | aws chain
    detail: str = ""

    def describe(self) -> str:
        return {
            "file": f"from file {self.detail}",
            "environment": f"from environment {self.detail}",
            "config file": f"written in {self.detail} (readable by every local user: use a *_file setting)",
            "url": f"from the URL in {self.detail}",
            "default": f"built-in development default {self.detail!r}, not a secret",
            "unset": "unset (no authentication)",
            "aws chain": f"not configured here: {self.detail}",
        }[self.kind]


@dataclass(frozen=True)
class _Context:
    path: Path | None
    lines: Mapping[tuple[str, ...], int]
    environ: Mapping[str, str]

    def origin(self, loc: tuple[str, ...]) -> SecretSource | None:
        """The environment variable or file line that set ``loc``, if any."""
        env = env_source(loc, self.environ)
        if env:
            return SecretSource(".".join(loc), "environment", env)
        if self.path is not None and loc in self.lines:
            return SecretSource(".".join(loc), "config file", f"{self.path}:{line_of(loc, self.lines)}")
        return None


def secret_sources(settings: Mapping[str, Any], path: Path | None, text: str,
                   environ: Mapping[str, str] | None = None) -> list[SecretSource]:
    """Sources of the secrets in ``settings`` (section name -> section object)."""
    ctx = _Context(path, key_lines(text), os.environ if environ is None else environ)
    out: list[SecretSource] = []
    if "amqp" in settings:
        out.extend(_amqp(settings["amqp"], ctx))
    if "kafka" in settings:
        out.extend(_kafka(settings["kafka"], ctx))
    if "influxdb" in settings:
        out.append(_influx(settings["influxdb"], ctx))
    aws = [settings[name] for name in ("s3", "athena") if settings.get(name) is not None]
    if aws:
        out.append(aws_credentials(next((a.profile for a in aws if a.profile), None), ctx.environ))
    return out


def _password(section: str, password_file: str | None, ctx: _Context) -> SecretSource | None:
    key = f"{section}.password"
    if password_file:
        return SecretSource(key, "file", str(secret_file_path(password_file)))
    return ctx.origin((section, "password"))


def _amqp(amqp, ctx: _Context) -> list[SecretSource]:
    default = AmqpSettings()
    found = _password("amqp", amqp.password_file, ctx)
    out = [found or SecretSource("amqp.password", "default", default.password.get_secret_value())]
    if amqp.username == default.username and ctx.origin(("amqp", "username")) is None:
        out.append(SecretSource("amqp.username", "default", default.username))
    return out


def _kafka(kafka, ctx: _Context) -> list[SecretSource]:
    out = []
    if kafka.sasl_password_file:
        out.append(SecretSource("kafka.sasl_password", "file", str(secret_file_path(kafka.sasl_password_file))))
    elif kafka.sasl_password is not None:
        out.append(ctx.origin(("kafka", "sasl_password")) or SecretSource("kafka.sasl_password", "environment", "?"))
    for name, file in kafka.client_secret_files.items():
        out.append(SecretSource(f"kafka.client_secret_files.{name}", "file", str(secret_file_path(file))))
    for name in kafka.client:
        if looks_secret(name):
            origin = ctx.origin(("kafka", "client", name))
            out.append(origin or SecretSource(f"kafka.client.{name}", "config file", str(ctx.path)))
    return out or [SecretSource("kafka.sasl_password", "unset")]


def _influx(influx, ctx: _Context) -> SecretSource:
    found = _password("influxdb", influx.password_file, ctx)
    if found is not None:
        return found
    if influx.password is not None:  # only the URL is left: user:password@host
        origin = ctx.origin(("influxdb", "url"))
        return SecretSource("influxdb.password", "url", origin.detail if origin else "the settings")
    return SecretSource("influxdb.password", "unset")


def aws_credentials(profile: str | None, environ: Mapping[str, str]) -> SecretSource:
    """Where boto3 will find credentials, as far as files and variables tell."""
    key = "aws.credentials"
    shared = environ.get("AWS_SHARED_CREDENTIALS_FILE")
    if shared:
        return SecretSource(key, "file", f"{shared} (AWS_SHARED_CREDENTIALS_FILE)")
    if environ.get("AWS_ACCESS_KEY_ID"):
        return SecretSource(key, "environment", "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    slot = secret_file_path(AWS_CREDENTIALS_SLOT)
    try:
        filled = slot.is_absolute() and slot.is_file() and slot.stat().st_size > 0
    except OSError:  # not ours to read (run config check as root to see it)
        filled = False
    if filled:
        return SecretSource(key, "file", f"{slot} (the archive unit's AWS_SHARED_CREDENTIALS_FILE)")
    if profile:
        return SecretSource(key, "aws chain", f"profile {profile!r} of ~/.aws (unreadable by the units)")
    return SecretSource(key, "aws chain", "the instance role, if any (no aws_credentials file)")
