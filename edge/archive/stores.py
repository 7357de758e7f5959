"""Which archive store a run uses: the local directory or S3, chosen from the
settings. Apart from both stores so that neither imports the other (``s3.py``
takes the shared digest and manifest helpers from ``store.py``)."""

from __future__ import annotations

from edge.archive.store import ArchiveStore, LocalStore, Source
from edge.config.settings import ArchiveSettings
from edge.core.errors import UsageError


def archive_store(settings: ArchiveSettings, source: Source = "auto") -> ArchiveStore:
    """The archive to use: S3 when ``[s3] bucket`` is set (``auto``), else the
    ``[archive] directory``; ``local`` or ``s3`` choose one."""
    if source == "s3" and not settings.s3.bucket:
        raise UsageError("--source s3 needs [s3] bucket")
    if source == "local" or not settings.s3.bucket:
        return LocalStore(settings.archive.directory)
    from edge.archive.s3 import S3Store  # boto3 only when S3 is used

    return S3Store(settings.s3)
