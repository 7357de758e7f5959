"""Field types of the settings: values a service would otherwise fail on only once
it runs (URLs, time zones, ports, positive sizes, secret files) are refused at load.

Secret files: a relative name is looked up in ``$CREDENTIALS_DIRECTORY`` (systemd's
``LoadCredential=``), else in ``/etc/edge/credentials`` when that exists. A file
that is named must exist, be readable and hold the secret.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field, SecretStr

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


def upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _http_url(value: str | None) -> str | None:
    """An http(s) URL with a host (``127.0.0.1:8086`` alone would be read as a
    path by the HTTP client: a request to ``/8086/query`` on the local host)."""
    from urllib.parse import urlsplit

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


SecretFile = Annotated[str | None, AfterValidator(_readable_secret_file)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
OptionalHttpUrl = Annotated[str | None, AfterValidator(_http_url)]
TimeZone = Annotated[str, AfterValidator(_time_zone)]
Port = Annotated[int, Field(ge=1, le=65535)]
# A port to listen on: 0 asks the system for a free one (ephemeral).
ListenPort = Annotated[int, Field(ge=0, le=65535)]
Positive = Annotated[int, Field(gt=0)]
PositiveSeconds = Annotated[float, Field(gt=0)]
NonNegativeSeconds = Annotated[float, Field(ge=0)]
