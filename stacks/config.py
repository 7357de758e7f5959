"""Deployment settings of the AWS side, from CDK context.

``cdk.json``'s ``context`` block holds every value and its default; override one at
deploy time with ``cdk deploy -c archiveTransitionDays=180`` (values given with
``-c`` arrive as strings and are converted here). ``python app.py`` run without the
CDK CLI reads the same ``cdk.json``, so there is one source of defaults.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import Aws
from constructs import Construct

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"

# Storage classes Athena reads without a restore (GLACIER and DEEP_ARCHIVE objects
# are skipped by queries), so archive objects stay queryable after the transition.
QUERYABLE_STORAGE_CLASSES = ("INFREQUENT_ACCESS", "INTELLIGENT_TIERING", "GLACIER_INSTANT_RETRIEVAL")
MIN_BYTES_SCANNED_CUTOFF = 10_000_000  # Athena's lower limit (10 MB)
_NAME = re.compile(r"^[a-z0-9_]{1,128}$")


class ConfigError(ValueError):
    pass


def cdk_json_context(path: Path = CDK_JSON) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")).get("context", {}))


@dataclass(frozen=True)
class AppConfig:
    project_name: str
    account: str | None
    region: str | None
    bucket_name: str | None  # None: CloudFormation picks a unique name
    database_name: str
    workgroup_name: str
    archive_prefix: str
    athena_results_prefix: str
    archive_transition_days: int
    archive_transition_storage_class: str
    noncurrent_version_expiration_days: int
    athena_results_expiration_days: int
    access_logs_expiration_days: int
    bytes_scanned_cutoff_per_query: int
    crawler_schedule: str
    log_retention_days: int
    upload_reserved_concurrency: int

    @classmethod
    def from_context(cls, scope: Construct) -> "AppConfig":
        def raw(key: str) -> Any:
            value = scope.node.try_get_context(key)
            return None if value in (None, "", "null") else value

        def required(key: str) -> Any:
            value = raw(key)
            if value is None:
                raise ConfigError(f"context value {key!r} is missing (cdk.json or -c {key}=...)")
            return value

        def count(key: str, unit: str = "") -> int:
            try:
                value = int(required(key))
            except (TypeError, ValueError):
                raise ConfigError(f"context value {key!r} must be a whole number{unit and ' of ' + unit}") from None
            if value < 1:
                raise ConfigError(f"context value {key!r} must be at least 1{unit and ' ' + unit.rstrip('s')}")
            return value

        def days(key: str) -> int:
            return count(key, "days")

        def prefix(key: str) -> str:
            value = str(required(key)).strip("/")
            if not value:
                raise ConfigError(f"context value {key!r} must not be empty")
            return value + "/"

        config = cls(
            project_name=str(required("projectName")),
            account=_opt_str(raw("account")),
            region=_opt_str(raw("region")),
            bucket_name=_opt_str(raw("bucketName")),
            database_name=str(required("databaseName")),
            workgroup_name=str(required("workgroupName")),
            archive_prefix=prefix("archivePrefix"),
            athena_results_prefix=prefix("athenaResultsPrefix"),
            archive_transition_days=days("archiveTransitionDays"),
            archive_transition_storage_class=str(required("archiveTransitionStorageClass")).upper(),
            noncurrent_version_expiration_days=days("noncurrentVersionExpirationDays"),
            athena_results_expiration_days=days("athenaResultsExpirationDays"),
            access_logs_expiration_days=days("accessLogsExpirationDays"),
            bytes_scanned_cutoff_per_query=int(required("bytesScannedCutoffPerQuery")),
            crawler_schedule=str(required("crawlerSchedule")),
            log_retention_days=days("logRetentionDays"),
            upload_reserved_concurrency=count("uploadReservedConcurrency"),
        )
        config.validate()
        return config

    def validate(self) -> None:
        if not _NAME.match(self.database_name):
            raise ConfigError("databaseName: lower-case letters, digits and underscore only (Athena)")
        if self.archive_transition_storage_class not in QUERYABLE_STORAGE_CLASSES:
            raise ConfigError(
                f"archiveTransitionStorageClass must be one of {', '.join(QUERYABLE_STORAGE_CLASSES)}: "
                "Athena cannot read GLACIER or DEEP_ARCHIVE objects without a restore"
            )
        if self.archive_transition_storage_class == "INFREQUENT_ACCESS" and self.archive_transition_days < 30:
            raise ConfigError("S3 moves objects to INFREQUENT_ACCESS no earlier than 30 days")
        if self.bytes_scanned_cutoff_per_query < MIN_BYTES_SCANNED_CUTOFF:
            raise ConfigError(f"bytesScannedCutoffPerQuery must be at least {MIN_BYTES_SCANNED_CUTOFF} (Athena's minimum)")
        if self.archive_prefix == self.athena_results_prefix:
            raise ConfigError("archivePrefix and athenaResultsPrefix must differ")
        if not re.match(r"^[a-z0-9][a-z0-9-]{0,20}$", self.project_name):
            raise ConfigError("projectName: 1-21 lower-case letters, digits or '-' (it starts bucket and resource names)")
        if not self.crawler_schedule.startswith("cron("):
            raise ConfigError("crawlerSchedule must be a Glue cron(...) expression")

    @property
    def archive_bucket_name(self) -> str:
        """The bucket's name: ``bucketName`` if set, else ``<project>-archive-<account>-<region>``.

        The default is unique per account and region, typo-proof, and computable in
        every stack from pseudo parameters, so no stack imports another's export.
        """
        if self.bucket_name:
            return self.bucket_name
        return f"{self.project_name}-archive-{Aws.ACCOUNT_ID}-{Aws.REGION}"

    @property
    def stack_prefix(self) -> str:
        return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", self.project_name) if part)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
