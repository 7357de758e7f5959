"""The archive's files: the local archive directory, or S3 (``edge.archive.s3``).

Both stores take the same relative keys (``<measurement>/site_id=.../date=.../...``,
``edge.archive.layout``) behind one interface, ``ArchiveStore``:

- write side (the archiver): ``put_file``, ``put_json``, ``verify`` (is this object
  there with this size and SHA-256?), ``remove`` (a part a consolidation replaced;
  a key already gone is no error);
- read side (restore, the archiver's manifests): ``keys(prefix)``, ``open_read(key)``,
  ``get_json(key)`` (None when the key is missing);
- ``url(key)`` names a key for people (``url("")``: the archive itself).

``archive_store(settings, source)`` picks the store. Writes are atomic (temp file + rename), so a killed run never leaves half a file
under a final name, and durable: the file and every directory entry leading to it
are fsynced before anything counts on them (a power cut after a DELETE must find
the archive on disk). ``read_from_disk`` drops a synced file's cached pages, so a
verification that follows reads the disk, not the page cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

from edge.config.settings import ArchiveSettings


class StoreFailed(RuntimeError):
    """The archive store (S3) failed: the run stops and deletes nothing."""


@contextmanager
def store_step(window, what: str) -> Iterator[None]:
    """A store call for a window: any failure becomes StoreFailed naming both."""
    try:
        yield
    except StoreFailed:
        raise
    except Exception as exc:
        raise StoreFailed(f"{window.label()}: {what}: {type(exc).__name__}: {exc}") from exc


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

    def put_json(self, key: str, data: dict) -> None: ...

    def remove(self, key: str) -> None: ...

    def keys(self, prefix: str) -> Iterator[str]: ...

    def open_read(self, key: str) -> BinaryIO: ...

    def get_json(self, key: str) -> dict | None: ...

    def url(self, key: str) -> str: ...


Source = Literal["auto", "local", "s3"]




def fsync_file(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """Make the directory's entries (a rename, a new file or subdirectory) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: Path) -> None:
    """``mkdir -p`` whose new directories survive a power cut (each parent synced)."""
    missing = []
    p = Path(path)
    while not p.is_dir():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
        fsync_dir(d.parent)


def replace_durably(tmp: Path, target: Path) -> None:
    """Rename a written file into place: the file, then the rename, on disk."""
    fsync_file(tmp)
    os.replace(tmp, target)
    fsync_dir(target.parent)


def read_from_disk(path: str | os.PathLike) -> None:
    """Drop the (synced, so clean) cached pages of ``path``: the next read of it
    comes from the disk. Advisory: where the kernel ignores it, reads stay correct."""
    if not hasattr(os, "posix_fadvise"):
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    make_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    replace_durably(tmp, path)


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
            make_dirs(target.parent)
            replace_durably(Path(path), target)

    def verify(self, key: str, digest: FileDigest, local_path: Path | None = None) -> bool:
        """The file on disk (not in the page cache) has this size and SHA-256."""
        target = self.path(key)
        if not target.is_file():
            return False
        read_from_disk(target)
        return file_digest(target) == digest

    def keys(self, prefix: str) -> Iterator[str]:
        """Every file whose key starts with ``prefix``, directory by directory, sorted."""
        folder, _, _ = prefix.rpartition("/")
        base = self.root / folder
        for directory, subdirs, files in os.walk(base):
            subdirs.sort()
            relative = Path(directory).relative_to(self.root).as_posix()
            for name in sorted(files):
                key = name if relative == "." else f"{relative}/{name}"
                if key.startswith(prefix):
                    yield key

    def open_read(self, key: str) -> BinaryIO:
        return open(self.path(key), "rb")

    def get_json(self, key: str) -> dict | None:
        try:
            return json.loads(self.path(key).read_bytes())
        except FileNotFoundError:
            return None

    def put_json(self, key: str, data: dict) -> None:
        write_atomic(self.path(key), manifest_bytes(data))

    def remove(self, key: str) -> None:
        target = self.path(key)
        if target.exists():
            target.unlink()
            fsync_dir(target.parent)

    def url(self, key: str) -> str:
        return str(self.path(key))
