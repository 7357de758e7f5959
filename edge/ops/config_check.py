"""``edge config check``: validate a settings file, print what each service would use.

Every service's settings class (``edge.settings.SERVICE_SETTINGS``) loads the file
exactly as the service itself would (TOML, then ``EDGE_*`` environment on top), so
a file that passes here starts every service. On top of the classes' own checks
(types, unknown keys inside a section) this finds what they silently ignore: a
top-level section no service reads (a typo such as ``[influx]`` would otherwise
leave the defaults in place).

The effective configuration is printed as TOML, one table per service
(``[bridge.amqp]``, ...), with secrets masked: every ``SecretStr``, every key whose
name looks secret (password, secret, token, key: e.g. ``sasl.password`` in
``[kafka.client]``), and the password part of a URL. File locations (``*_file``,
``*.location``) are shown: they are not secrets.

Secret files named relative (``password_file = "amqp_password"``) are read from
``$CREDENTIALS_DIRECTORY``, which systemd sets for ``LoadCredential=``; outside a
unit ``--credentials-dir`` (default ``/etc/edge/credentials`` when it exists)
stands in for it, so an operator can check the production file as root.

Exit status: 0 valid, 1 invalid (each problem on stderr, one line each), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tomllib
import urllib.parse
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from edge.settings import SERVICE_SETTINGS, resolve_config_path

MASK = "**********"
DEFAULT_CREDENTIALS_DIR = Path("/etc/edge/credentials")
# Command names that differ from the settings names.
ALIASES = {"parse": "parser", "simulator": "simulate"}
_SECRET_WORDS = re.compile(r"password|passwd|secret|token|key|credential", re.IGNORECASE)
_NOT_SECRET_SUFFIXES = ("_file", "_files", ".location", "_location", "_dir")


# ------------------------------------------------------------------ masking (pure)


def looks_secret(name: str) -> bool:
    """A key whose value is a secret by its name (file locations are not)."""
    lowered = name.lower()
    if lowered.endswith(_NOT_SECRET_SUFFIXES):
        return False
    return bool(_SECRET_WORDS.search(lowered))


def mask_url(value: str) -> str:
    """``scheme://user:pass@host`` -> ``scheme://user:**********@host``."""
    if "://" not in value or "@" not in value:
        return value
    parts = urllib.parse.urlsplit(value)
    if parts.password is None:
        return value
    netloc = f"{parts.username or ''}:{MASK}@{parts.hostname or ''}"
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def masked(value: Any, name: str = "") -> Any:
    """A plain copy of a settings value with every secret replaced by ``MASK``."""
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, dict):
        if name.endswith("_files"):  # key -> file location: locations are not secrets
            return {k: v for k, v in value.items()}
        return {k: masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [masked(v, name) for v in value]
    if isinstance(value, str):
        if value and looks_secret(name):
            return MASK
        return mask_url(value)
    if value is not None and not isinstance(value, bool) and looks_secret(name):
        return MASK
    return value


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


def to_toml(table: dict[str, Any], path: tuple[str, ...] = ()) -> list[str]:
    """Nested dicts as TOML tables; ``None`` (unset) as a comment line."""
    lines: list[str] = []
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if path and (scalars or not tables):
        lines.append("[" + ".".join(_toml_key(p) for p in path) + "]")
    for key, value in scalars.items():
        if value is None:
            lines.append(f"# {_toml_key(key)} = (unset)")
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    if path and (scalars or not tables):
        lines.append("")
    for key, value in tables.items():
        lines.extend(to_toml(value, path + (key,)))
    return lines


# ------------------------------------------------------------------ checking (I/O)


def known_sections() -> set[str]:
    return {name for cls in SERVICE_SETTINGS.values() for name in cls.model_fields}


def _format_validation_error(service: str, exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(file)"
        got = err.get("input")
        shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {masked(got, where)!r})"
        out.append(f"{service}: {where}: {err['msg']}{shown}")
    return out


def check(config_path: str | None, services: list[str]) -> tuple[dict[str, dict], list[str]]:
    """Load ``config_path`` for each service; returns (effective settings, problems)."""
    problems: list[str] = []
    try:
        path = resolve_config_path(config_path)
    except FileNotFoundError as exc:
        return {}, [str(exc)]
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            return {}, [f"{path}: not valid TOML: {exc}"]
        except OSError as exc:
            return {}, [f"{path}: cannot read: {exc}"]
        unknown = sorted(set(raw) - known_sections())
        for name in unknown:
            problems.append(
                f"{path}: section or key [{name}] is read by no service "
                f"(known: {', '.join(sorted(known_sections()))})"
            )
    results: dict[str, dict] = {}
    for service in services:
        cls = SERVICE_SETTINGS[service]
        try:
            settings = cls.load(config_path)
        except ValidationError as exc:
            problems.extend(_format_validation_error(service, exc))
            continue
        except (OSError, ValueError) as exc:  # e.g. a secret file that cannot be read
            problems.append(f"{service}: {type(exc).__name__}: {exc}")
            continue
        problems.extend(f"{service}: {p}" for p in semantic_problems(service, settings))
        results[service] = effective(settings)
    return results, problems


def semantic_problems(service: str, settings) -> list[str]:
    """Checks a type cannot express: values a service would fail on at start."""
    out: list[str] = []
    metrics = getattr(settings, "metrics", None)
    if metrics is not None and not 0 <= metrics.port <= 65535:
        out.append(f"metrics.port: {metrics.port} is not a TCP port (0 = off)")
    parser = getattr(settings, "parser", None)
    if parser is not None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        zones = {"parser.default_timezone": parser.default_timezone}
        zones.update({f"parser.site_timezones.{k}": v for k, v in parser.site_timezones.items()})
        for where, zone in zones.items():
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                out.append(f"{where}: unknown time zone {zone!r}")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["check"], help="check: validate and print the effective settings")
    parser.add_argument(
        "--service",
        action="append",
        metavar="NAME",
        help=f"only this service (repeatable): {', '.join(SERVICE_SETTINGS)}",
    )
    parser.add_argument(
        "--credentials-dir",
        metavar="DIR",
        help="where relative secret files are read from when $CREDENTIALS_DIRECTORY is unset "
        f"(default: {DEFAULT_CREDENTIALS_DIR} when it exists)",
    )
    parser.add_argument("--format", choices=["toml", "json"], default="toml", help="output format")


def run(args: argparse.Namespace) -> int:
    services = [ALIASES.get(s, s) for s in (args.service or list(SERVICE_SETTINGS))]
    unknown = [s for s in services if s not in SERVICE_SETTINGS]
    if unknown:
        print(f"edge config check: unknown service {', '.join(unknown)} "
              f"(one of {', '.join(SERVICE_SETTINGS)})", file=sys.stderr)
        return 2
    if not os.environ.get("CREDENTIALS_DIRECTORY"):
        credentials = args.credentials_dir or (str(DEFAULT_CREDENTIALS_DIR) if DEFAULT_CREDENTIALS_DIR.is_dir() else None)
        if credentials:
            os.environ["CREDENTIALS_DIRECTORY"] = credentials
    config = getattr(args, "config", None)
    results, problems = check(config, services)
    if problems:
        for problem in problems:
            print(f"invalid: {problem}", file=sys.stderr)
        print(f"edge config check: {len(problems)} problem(s); nothing printed for the services that failed",
              file=sys.stderr)
        return 1
    try:
        source = resolve_config_path(config)
    except FileNotFoundError:  # checked above
        source = None
    env_keys = sorted(k for k in os.environ if k.startswith("EDGE_") and k != "EDGE_CONFIG")
    if args.format == "json":
        print(json.dumps({"config": str(source) if source else None, "environment": env_keys,
                          "services": results}, indent=2, default=str))
        return 0
    print(f"# edge config check: valid for {', '.join(services)}")
    print(f"# file: {source or '(none: defaults)'}")
    print(f"# environment overrides: {', '.join(env_keys) if env_keys else '(none)'}")
    print()
    print("\n".join(to_toml(results)).rstrip())
    return 0
