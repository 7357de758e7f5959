"""``edge config``: validate a config file and print the effective settings.

The command's arguments and what it prints; what is checked and how is
``edge.ops.config_check``."""

from __future__ import annotations

import argparse
import json
import os
import sys

from edge.config import services as service_table
from edge.config.problems import Problem
from edge.config.settings import SERVICE_SETTINGS, resolve_config_path
from edge.core.errors import ConfigError, UsageError
from edge.ops.config_check import Report, check, to_toml


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
        "(default: the credentials directory next to the config file, e.g. /etc/edge/credentials)",
    )
    parser.add_argument("--format", choices=["toml", "json"], default="toml", help="output format")


def _credentials_dir(args: argparse.Namespace, config: str | None) -> str | None:
    if args.credentials_dir:
        return args.credentials_dir
    path = resolve_config_path(config)
    beside = path.parent / "credentials" if path is not None else None
    return str(beside) if beside is not None and beside.is_dir() else None


def run(args: argparse.Namespace) -> int:
    named = args.service or list(SERVICE_SETTINGS)
    found = {s: service_table.lookup(s) for s in named}  # a command name (parse) names its service too
    unknown = [s for s, service in found.items() if service is None]
    services = [found[s].name for s in named if found[s] is not None]
    if unknown:
        raise UsageError(f"unknown service {', '.join(unknown)} (one of {', '.join(SERVICE_SETTINGS)})")
    config = getattr(args, "config", None)
    if not os.environ.get("CREDENTIALS_DIRECTORY"):
        credentials = _credentials_dir(args, config)
        if credentials:
            os.environ["CREDENTIALS_DIRECTORY"] = credentials
    report = check(config, services)
    env_keys = sorted(k for k in os.environ if k.startswith("EDGE_") and k != "EDGE_CONFIG")
    if report.path is None and not env_keys:
        print("edge config: warning: no config file (--config, $EDGE_CONFIG, /etc/edge/edge.toml) and no EDGE_* "
              "variable: these are the built-in development defaults only", file=sys.stderr)
    if report.results:
        _print(report, services, env_keys, args.format)
    for problem in sorted(report.problems, key=Problem.order):
        print(f"invalid: {problem.line()}", file=sys.stderr)
    if report.problems:
        valid = [s for s in services if s in report.results]
        raise ConfigError(
            f"{len(report.problems)} problem(s) in {report.path or 'the settings'}; "
            + (f"valid: {', '.join(valid)} (printed)" if valid else "no service can start")
        )
    return 0


def _print(report: Report, services: list[str], env_keys: list[str], format_: str) -> None:
    source = str(report.path) if report.path else None
    if format_ == "json":
        print(json.dumps({
            "config": source, "environment": env_keys,
            "credentials_directory": os.environ.get("CREDENTIALS_DIRECTORY"),
            "secrets": {s.key: {"source": s.kind, "detail": s.detail} for s in report.secrets},
            "services": report.results, "invalid": report.failed,
        }, indent=2, default=str))
        return
    valid = [s for s in services if s in report.results]
    print(f"# edge config check: valid for {', '.join(valid)}"
          + (f"; NOT valid for {', '.join(report.failed)} (see stderr)" if report.failed else ""))
    print(f"# file: {source or '(none: built-in defaults)'}")
    print(f"# environment overrides: {', '.join(env_keys) if env_keys else '(none)'}")
    print(f"# credentials directory: {os.environ.get('CREDENTIALS_DIRECTORY') or '(none)'}")
    print("# secrets:")
    for secret in report.secrets:
        print(f"#   {secret.key}: {secret.describe()}")
    print()
    print("\n".join(to_toml(report.results, notes=report.notes)).rstrip())
