"""Where archived files go: the local archive directory, or S3 (``edge.archive.s3``).

Both stores take the same relative keys (``<measurement>/site_id=.../date=.../...``)
and answer the same questions: is this object there with this size and SHA-256?
Writes are atomic (temp file + rename), so a killed run never leaves half a file
under a final name.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class FileDigest:
    size: int
    sha256: str  # hex


def file_digest(path: str | os.PathLike, block: int = 1 << 20) -> FileDigest:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
            size += len(chunk)
    return FileDigest(size, h.hexdigest())


class ArchiveStore(Protocol):
    name: str

    def put_file(self, key: str, path: Path, digest: FileDigest) -> None: ...

    def verify(self, key: str, digest: FileDigest, local_path: Path | None) -> bool: ...

    def get_json(self, key: str) -> dict | None: ...

    def put_json(self, key: str, data: dict) -> None: ...

    def url(self, key: str) -> str: ...


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def manifest_bytes(data: dict) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True).encode() + b"\n"


class LocalStore:
    """The archive directory itself. Files are written in place by the exporter."""

    name = "local"

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key

    def put_file(self, key: str, path: Path, digest: FileDigest) -> None:
        target = self.path(key)
        if Path(path).resolve() != target.resolve():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)

    def verify(self, key: str, digest: FileDigest, local_path: Path | None = None) -> bool:
        target = self.path(key)
        return target.is_file() and file_digest(target) == digest

    def get_json(self, key: str) -> dict | None:
        try:
            return json.loads(self.path(key).read_bytes())
        except FileNotFoundError:
            return None

    def put_json(self, key: str, data: dict) -> None:
        write_atomic(self.path(key), manifest_bytes(data))

    def url(self, key: str) -> str:
        return str(self.path(key))
