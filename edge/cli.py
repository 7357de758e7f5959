"""The ``edge`` command: one subcommand per service or task.

Each subcommand lives in its own module under ``edge.commands``, which exposes ``add_arguments(parser)`` and
``run(args) -> int``. Modules are imported only when their command runs, so a
service's heavy imports never slow down another.

Mistakes an operator can make end in one line on stderr, ``edge <command>:
<message>``, and an exit code (README, "Exit codes"): a command raises an
``edge.core.errors.OperatorError``, and the library errors an operator can cause
(an unreachable broker, missing AWS credentials, a bad option) are translated
here by ``edge.core.failures``. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from edge.config.services import SERVICES
from edge.core.errors import OperatorError, UsageError

# name -> one-line help; the command itself is edge.commands.<name>. The services
# come from their one table; the tools that are no service are listed here.
TOOLS: dict[str, str] = {
    "config": "validate a config file and print the effective settings",
    "install": "install systemd units and a config skeleton",
    "replay": "parse the raw topic again from a moment on, into the parsed topic",
    "dlq": "list, show and redrive dead letters",
    "restore": "write archived points back into an InfluxDB database",
    "status": "one table: each service's state, lag, last success and why; the DLQ; the last archive run",
}
COMMANDS: dict[str, str] = {**{s.command: s.help for s in SERVICES}, **TOOLS}
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_BROKEN_PIPE = 1  # as Python itself exits on EPIPE (docs: "Note on SIGPIPE")


class _Parser(argparse.ArgumentParser):
    """argparse that raises ``UsageError`` (one line, exit 2) instead of printing
    the usage block and exiting."""

    def error(self, message: str):
        raise UsageError(f"{message} (see {self.prog} --help)")


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("microgrid-edge")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _command(name: str):
    """The module of ``edge <name>``: one module per subcommand under edge.commands."""
    return importlib.import_module(f"edge.commands.{name}")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(prog="edge", description="Campus microgrid telemetry pipeline")
    parser.add_argument("--version", action="version", version=f"edge {version()}")
    parser.add_argument("--config", help="TOML settings file (default: $EDGE_CONFIG or /etc/edge/edge.toml)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        if name == command:
            _command(name).add_arguments(p)
    return parser


def _run(argv: list[str], command: str | None) -> int:
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    from edge.runtime import logs
    from edge.config.sections import LogSettings

    # Until the command loads its own settings: anything logged goes to stderr.
    logs.configure(LogSettings(), args.command)
    module = _command(args.command)
    return int(module.run(args) or 0)


def _say(command: str | None, message: object) -> None:
    print(f"edge {command}: {message}" if command else f"edge: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in COMMANDS), None)
    try:
        return _run(argv, command)
    except OperatorError as exc:
        _say(command, exc)
        return exc.exit_code
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`edge config check | head -1`): stop quietly, and
        # keep the interpreter's final flush from failing again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        from edge.core.failures import operator_error

        translated = operator_error(exc)
        if translated is None:
            raise
        _say(command, translated)
        return translated.exit_code


if __name__ == "__main__":
    sys.exit(main())
