"""Storage: the archive bucket (Parquet under ``archive/``, Athena results under
``athena-results/``) and the bucket receiving its server access logs."""

from __future__ import annotations

from aws_cdk import Aws, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.checkov import skip_check
from stacks.config import AppConfig

INCOMPLETE_UPLOAD_DAYS = 7


class StorageStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: AppConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.access_logs_bucket = self._access_logs_bucket(config)
        self.bucket = self._archive_bucket(config)

        CfnOutput(self, "BucketName", value=self.bucket.bucket_name, description="Archive bucket ([s3] bucket on the edge)")
        CfnOutput(self, "AccessLogsBucketName", value=self.access_logs_bucket.bucket_name)

    def _access_logs_bucket(self, config: AppConfig) -> s3.Bucket:
        # Server access logs must go to a bucket with SSE-S3 (S3 log delivery cannot
        # use KMS keys); logs expire after a configurable age. Versioned, so a log
        # deleted or overwritten by mistake (or on purpose) is kept as a noncurrent
        # version for noncurrentVersionExpirationDays. The log bucket is not logged
        # itself (cdk-nag's S1 recognises a log destination; checkov is told why).
        bucket = s3.Bucket(
            self,
            "AccessLogsBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    enabled=True,
                    expiration=Duration.days(config.access_logs_expiration_days),
                    noncurrent_version_expiration=Duration.days(config.noncurrent_version_expiration_days),
                    abort_incomplete_multipart_upload_after=Duration.days(INCOMPLETE_UPLOAD_DAYS),
                ),
                s3.LifecycleRule(
                    id="remove-expired-delete-markers",
                    enabled=True,
                    expired_object_delete_marker=True,
                ),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        skip_check(
            bucket,
            "CKV_AWS_18",
            "This bucket is where the archive bucket's server access logs go. Logging it into "
            "itself would log its own log deliveries without end (AWS advises against it), and a "
            "further log bucket would only move the question; only S3's log delivery writes here.",
        )
        return bucket

    def _archive_bucket(self, config: AppConfig) -> s3.Bucket:
        # The archive bucket. SSE-S3: every reader (Athena, Glue crawler, the upload
        # Lambda, the edge) needs no key grants, and S3 encrypts every object.
        # Versioning keeps what a re-archived day replaced, for a configurable time.
        transition_class = getattr(s3.StorageClass, config.archive_transition_storage_class)
        return s3.Bucket(
            self,
            "ArchiveBucket",
            bucket_name=config.archive_bucket_name,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=True,
            server_access_logs_bucket=self.access_logs_bucket,
            server_access_logs_prefix="archive-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="archive-to-colder-storage",
                    enabled=True,
                    prefix=config.archive_prefix,
                    transitions=[
                        s3.Transition(
                            storage_class=transition_class,
                            transition_after=Duration.days(config.archive_transition_days),
                        )
                    ],
                ),
                s3.LifecycleRule(
                    id="expire-athena-results",
                    enabled=True,
                    prefix=config.athena_results_prefix,
                    expiration=Duration.days(config.athena_results_expiration_days),
                    noncurrent_version_expiration=Duration.days(1),
                ),
                s3.LifecycleRule(
                    id="expire-replaced-versions",
                    enabled=True,
                    noncurrent_version_expiration=Duration.days(config.noncurrent_version_expiration_days),
                    abort_incomplete_multipart_upload_after=Duration.days(INCOMPLETE_UPLOAD_DAYS),
                ),
                s3.LifecycleRule(
                    id="remove-expired-delete-markers",
                    enabled=True,
                    expired_object_delete_marker=True,
                ),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )

    # Other stacks refer to the bucket through these: its name is known without a
    # cross-stack reference (see AppConfig.archive_bucket_name).
    @property
    def bucket_name(self) -> str:
        return self.config.archive_bucket_name

    @property
    def bucket_arn(self) -> str:
        return f"arn:{Aws.PARTITION}:s3:::{self.bucket_name}"

    def archive_objects_arn(self) -> str:
        return f"{self.bucket_arn}/{self.config.archive_prefix}*"

    def objects_arn(self, prefix: str) -> str:
        return f"{self.bucket_arn}/{prefix}*"

    def results_location(self) -> str:
        return f"s3://{self.bucket_name}/{self.config.athena_results_prefix}"
