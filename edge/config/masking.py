"""Secrets out of what is shown: settings printed by ``edge config check`` and the
values quoted in configuration errors. Pure.

A value is a secret when it is a ``SecretStr``, when its key's name says so
(password, secret, token, key: e.g. ``sasl.password`` in ``[kafka.client]``), or
when it is the password part of a URL. File locations (``*_file``,
``*.location``) are shown: they are not secrets.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from pydantic import SecretStr

MASK = "**********"
_SECRET_WORDS = re.compile(r"password|passwd|secret|token|key|credential", re.IGNORECASE)
_NOT_SECRET_SUFFIXES = ("_file", "_files", ".location", "_location", "_dir")


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
            return dict(value)
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
