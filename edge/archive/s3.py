"""The archive on S3 (or any S3-compatible endpoint: moto_server for the demo).

- Upload with boto3's managed transfer: multipart above
  ``multipart_threshold_mb`` in parts of ``multipart_chunk_mb``; every request
  carries an ``x-amz-checksum-sha256`` that S3 checks before it stores the bytes.
- The whole file's SHA-256 also travels as object metadata (``sha256``), because a
  multipart object's S3 checksum is a checksum of part checksums.
- ``verify`` = HEAD with checksum mode: the object exists, its size, its metadata
  SHA-256 and S3's own checksum (single part: the file's SHA-256; multipart: the
  composite recomputed from the local file) all match.
- Reading: ``keys`` lists with ListObjectsV2 pages; ``open_read`` downloads with
  the same managed transfer into a spooled temporary file (in memory up to
  ``SPOOL_BYTES``, on disk beyond), seekable as Parquet needs.
- A missing key is S3's error code (``missing_key``), never the exception's name.
- Credentials: the standard boto3 chain (environment, profile, instance role).
  Transient errors are retried by botocore's "standard" retry mode.
"""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from edge.archive.store import FileDigest, manifest_bytes
from edge.config.settings import S3Settings

MB = 1024 * 1024
SPOOL_BYTES = 64 * MB
# What S3 (and S3-compatible servers) answer for a key that is not there: GetObject
# says NoSuchKey, HeadObject (no body) only its status.
MISSING_KEY_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def missing_key(exc: ClientError) -> bool:
    """S3 answered that the key does not exist (not: no bucket, no access)."""
    return exc.response.get("Error", {}).get("Code") in MISSING_KEY_CODES


def composite_sha256(path: Path, part_size: int) -> str:
    """S3's checksum of a multipart object: SHA-256 of the parts' SHA-256s, ``-N``."""
    digests = []
    with open(path, "rb") as f:
        while chunk := f.read(part_size):
            digests.append(hashlib.sha256(chunk).digest())
    return base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode() + f"-{len(digests)}"


def make_client(settings: S3Settings):
    session = boto3.session.Session(profile_name=settings.profile, region_name=settings.region)
    return session.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        config=Config(retries={"max_attempts": 5, "mode": "standard"}),
    )


class S3Store:
    name = "s3"

    def __init__(self, settings: S3Settings, client=None):
        if not settings.bucket:
            raise ValueError("S3Store needs s3.bucket")
        self.settings = settings
        self.bucket = settings.bucket
        self.prefix = settings.key_prefix
        self.client = client or make_client(settings)
        self.transfer = TransferConfig(
            multipart_threshold=settings.multipart_threshold_mb * MB,
            multipart_chunksize=settings.multipart_chunk_mb * MB,
        )

    def key(self, key: str) -> str:
        return self.prefix + key

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.key(key)}"

    def put_file(self, key: str, path: Path, digest: FileDigest) -> None:
        self.client.upload_file(
            str(path),
            self.bucket,
            self.key(key),
            ExtraArgs={
                "ChecksumAlgorithm": "SHA256",
                "Metadata": {"sha256": digest.sha256},
                "ContentType": "application/vnd.apache.parquet",
            },
            Config=self.transfer,
        )

    def _head(self, key: str) -> dict | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.key(key), ChecksumMode="ENABLED")
        except ClientError as exc:
            if missing_key(exc):
                return None
            raise

    def verify(self, key: str, digest: FileDigest, local_path: Path | None = None) -> bool:
        head = self._head(key)
        if head is None:
            return False
        if head.get("ContentLength") != digest.size:
            return False
        if head.get("Metadata", {}).get("sha256") != digest.sha256:
            return False
        remote = head.get("ChecksumSHA256")
        if remote is None:
            return True  # endpoint without checksums: size + metadata digest
        if remote == base64.b64encode(bytes.fromhex(digest.sha256)).decode():
            return True
        if local_path is None or not Path(local_path).is_file():
            # Multipart, local file gone: size + metadata digest still hold.
            return remote.endswith(f"-{head.get('PartsCount', '')}") or "-" in remote
        # Some S3-compatible servers drop the "-N" suffix of a composite checksum.
        composite = composite_sha256(Path(local_path), self.transfer.multipart_chunksize)
        return remote.split("-")[0] == composite.split("-")[0]

    def keys(self, prefix: str) -> Iterator[str]:
        """Every object whose key starts with ``prefix``, in key order."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.key(prefix))
        for page in pages:
            for obj in page.get("Contents", []):
                yield obj["Key"][len(self.prefix):]

    def open_read(self, key: str) -> BinaryIO:
        """The object's bytes as a seekable file; ClientError (``missing_key``) when absent."""
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
        try:
            self.client.download_fileobj(self.bucket, self.key(key), spool, Config=self.transfer)
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return spool

    def get_json(self, key: str) -> dict | None:
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self.key(key))
        except ClientError as exc:
            if missing_key(exc):
                return None
            raise
        return json.loads(obj["Body"].read())

    def put_json(self, key: str, data: dict) -> None:
        self.client.put_object(
            Bucket=self.bucket,
            Key=self.key(key),
            Body=manifest_bytes(data),
            ContentType="application/json",
            ChecksumAlgorithm="SHA256",
        )

    def remove(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(key))
