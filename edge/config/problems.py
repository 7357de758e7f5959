"""What is wrong with a configuration, said so an operator can fix it. Pure.

A ``Problem`` names where the value came from (``file:line`` of the key in the TOML
file, else the ``EDGE_*`` environment variable that set it), the dotted key, what
is wrong, and for an unknown key the closest known one ("did you mean"). Settings
loading (``edge.config.settings``) raises them; ``edge config check`` lists them all,
each once.

TOML keeps no positions, so ``key_lines`` finds them by reading the file line by
line: table headers and ``key =`` lines, which is how configuration files are
written (a key inside an inline table is placed on its table's line).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from edge.config.masking import looks_secret, masked

ENV_PREFIX = "EDGE_"
ENV_DELIMITER = "__"

_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r"\"(?:[^\"\\]|\\.)*\"|'[^']*'"
_KEY_PART = rf"(?:{_QUOTED}|{_BARE})"
_DOTTED = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_TABLE_LINE = re.compile(rf"^\s*\[\[?\s*({_DOTTED})\s*\]\]?\s*(?:#.*)?$")
_KEY_LINE = re.compile(rf"^\s*({_DOTTED})\s*=")
_PART = re.compile(_KEY_PART)
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


@dataclass(frozen=True)
class Problem:
    where: str  # "path:line", "path", "environment EDGE_X__Y", or "" (built-in)
    key: str  # dotted settings key, "" for the file itself
    message: str

    def line(self) -> str:
        parts = [p for p in (self.where, self.key, self.message) if p]
        return ": ".join(parts)

    def order(self) -> tuple:
        """File problems by line, then environment variables, then the rest."""
        path, _, line = self.where.rpartition(":")
        if line.isdigit():
            return (0, path, int(line), self.key)
        return (1 if self.where.startswith("environment ") else 2, self.where, 0, self.key)


# ------------------------------------------------------------------ positions


def _split_dotted(text: str) -> tuple[str, ...]:
    parts = []
    for m in _PART.finditer(text):
        token = m.group(0)
        if token[0] in "\"'":
            token = token[1:-1]
        parts.append(token)
    return tuple(parts)


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Dotted key (and every table) -> the 1-based line where it is first set."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), 1):
        header = _TABLE_LINE.match(line)
        if header:
            table = _split_dotted(header.group(1))
            lines.setdefault(table, number)
            continue
        key = _KEY_LINE.match(line)
        if key:
            full = table + _split_dotted(key.group(1))
            for i in range(len(table) + 1, len(full) + 1):
                lines.setdefault(full[:i], number)
    return lines


def line_of(loc: tuple[str, ...], lines: Mapping[tuple[str, ...], int]) -> int | None:
    """The line of ``loc``, else of the closest enclosing key or table."""
    for i in range(len(loc), 0, -1):
        if loc[:i] in lines:
            return lines[loc[:i]]
    return None


def dotted(loc: Iterable[str]) -> str:
    """A key path as TOML writes it: ``kafka.client."sasl.mechanism"``."""
    return ".".join(p if re.fullmatch(_BARE, p) else '"' + p.replace('"', '\\"') + '"' for p in map(str, loc))


def env_name(loc: Iterable[str]) -> str:
    return ENV_PREFIX + ENV_DELIMITER.join(str(p) for p in loc).upper()


def env_source(loc: tuple[str, ...], environ: Mapping[str, str]) -> str | None:
    """The ``EDGE_*`` variable that set ``loc`` (or a table holding it, as JSON)."""
    present = {k.upper(): k for k in environ if k.upper().startswith(ENV_PREFIX)}
    for i in range(len(loc), 0, -1):
        name = env_name(loc[:i])
        if name in present:
            return present[name]
    return None


def toml_syntax_problem(exc: Exception, path: Path) -> Problem:
    """``tomllib``'s error with the file and line in front, as compilers say it."""
    message = str(exc)
    m = _TOML_POSITION.search(message)
    if m:
        return Problem(f"{path}:{m.group(1)}", "", f"not valid TOML: {message[: m.start()]} (column {m.group(2)})")
    return Problem(str(path), "", f"not valid TOML: {message}")


# ------------------------------------------------------------------ validation errors


def _model_at(cls: type[BaseModel], loc: tuple[str, ...]) -> type[BaseModel] | None:
    for part in loc:
        field = cls.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        cls = annotation
    return cls


def did_you_mean(name: str, known: Iterable[str]) -> str | None:
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return match[0] if match else None


# Keys operators write from other tools' vocabularies, with the key meant; the
# one place such names are kept (difflib finds the near-misses on its own).
KEY_ALIASES = {
    "amqp.prefetch_count": "bridge.prefetch",
    "amqp.prefetch": "bridge.prefetch",
    "amqp.user": "amqp.username",
    "amqp.queue_name": "amqp.queue",
    "amqp.dlq": "amqp.dead_letter_queue",
    "kafka.brokers": "kafka.bootstrap_servers",
    "kafka.group_id": "parser.group_id",
    "kafka.topic": "kafka.topic_prefix",
    "influxdb.db": "influxdb.database",
    "influxdb.user": "influxdb.username",
    "influxdb.host": "influxdb.url",
    "sink.batch_size": "sink.batch_max_lines",
    "s3.bucket_name": "s3.bucket",
    "metrics.enable": "metrics.enabled",
    "log.log_level": "log.level",
}


def guess_key(loc: tuple[str, ...], siblings: Iterable[str], known_keys: Iterable[str]) -> tuple[str, ...] | None:
    """The key an unknown ``loc`` most likely meant: an alias, else a near-miss in
    its own table, else a key of that name in another section (the setting may
    live in another service's section: ``amqp.prefetch_count`` -> bridge.prefetch)."""
    alias = KEY_ALIASES.get(".".join(loc))
    if alias:
        return tuple(alias.split("."))
    near = did_you_mean(loc[-1], siblings)
    if near is not None:
        return loc[:-1] + (near,)
    elsewhere = [key for key in known_keys if not key.startswith(f"{loc[0]}.")]
    by_name = {key.rpartition(".")[2]: key for key in sorted(elsewhere, reverse=True)}
    near = did_you_mean(loc[-1], by_name)
    return tuple(by_name[near].split(".")) if near else None


def _message(err: Mapping[str, Any], key: str, from_env: bool = False) -> str:
    text = err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    if got is None or isinstance(got, (dict, list)):
        return text
    if isinstance(got, str) and (repr(got) in text or (len(got) > 3 and got in text)):
        return text  # already said (a time zone, a secret file's name in its path)
    if looks_secret(key):
        return text
    shown = masked(got, key)
    return f"{text} (got {shown if from_env else repr(shown)})"  # a variable's value is text: no quotes


def locate(loc: tuple[str, ...], path: Path | None, lines, environ) -> str:
    """Where ``loc`` was set: its ``EDGE_*`` variable, else ``file:line``, else the file."""
    exact_in_file = loc in lines
    env = env_source(loc, environ)
    if env and (not exact_in_file or env_name(loc) == env.upper()):
        return f"environment {env}"
    line = line_of(loc, lines)
    if path is not None and line is not None:
        return f"{path}:{line}"
    return str(path) if path is not None else ""


def from_validation_error(
    exc: ValidationError,
    settings_cls: type[BaseModel],
    path: Path | None,
    text: str,
    environ: Mapping[str, str],
    known_keys: Iterable[str] = (),
) -> list[Problem]:
    """One ``Problem`` per error pydantic found, located in the file or environment;
    an unknown key gets a guess among ``known_keys`` (``section.key``)."""
    lines = key_lines(text)
    problems = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        key = dotted(loc)
        where = locate(loc, path, lines, environ)
        if err["type"] == "extra_forbidden":
            message = "unknown key"
            parent = _model_at(settings_cls, loc[:-1])
            guess = guess_key(loc, parent.model_fields if parent is not None else (), known_keys)
            if guess is not None:
                if where.startswith("environment "):
                    shown = env_name(guess)
                else:  # a key of the same table by its name, another table's in full
                    shown = guess[-1] if guess[:-1] == loc[:-1] else dotted(guess)
                message += f"; did you mean {shown!r}?"
        else:
            message = _message(err, loc[-1] if loc else "", where.startswith("environment "))
        problems.append(Problem(where, key, message))
    return problems


def unknown_sections(raw: Mapping[str, Any], known: Iterable[str], path: Path, text: str) -> list[Problem]:
    """Top-level tables (or keys) of the file that no service reads: a typo such as
    ``[influx]`` would otherwise leave every default in place, silently."""
    known = sorted(known)
    lines = key_lines(text)
    problems = []
    for name in sorted(set(raw) - set(known)):
        guess = did_you_mean(name, known)
        hint = f"did you mean [{guess}]?" if guess else f"known: {', '.join(known)}"
        line = lines.get((name,))
        where = f"{path}:{line}" if line else str(path)
        problems.append(Problem(where, f"[{name}]", f"read by no service; {hint}"))
    return problems
