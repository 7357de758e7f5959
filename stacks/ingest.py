"""Ingest: the upload Lambda that registers each archive day in Glue from the
manifest the archiver writes beside the day's Parquet parts, and the managed policy
the edge archiver's credentials get.

S3 invokes the Lambda asynchronously on ObjectCreated for
``archive/**/_manifest.json`` (written after the day's parts were uploaded and
verified). A manifest the Lambda cannot use is parked in an SQS queue with the
reason; Lambda retries any other failed event twice, and an event that still fails
(Glue throttled or unavailable for hours, a permissions mistake) lands in the same
queue with its error. The scheduled crawler registers whatever was missed. The
objects themselves are never at risk: they are already in S3.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from lambdas.upload.layout import MANIFEST_NAME
from stacks.config import AppConfig
from stacks.nag import acknowledge, resource_finding
from stacks.storage import StorageStack

LAMBDA_DIR = Path(__file__).resolve().parent.parent / "lambdas"
LAMBDA_HANDLER = "upload.handler.handler"
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_14

# CloudWatch Logs accepts only these retention periods (days -> CDK's name for it).
_RETENTION = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS",
    30: "ONE_MONTH", 60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS",
    150: "FIVE_MONTHS", 180: "SIX_MONTHS", 365: "ONE_YEAR", 400: "THIRTEEN_MONTHS",
    545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS", 1827: "FIVE_YEARS",
    2192: "SIX_YEARS", 2557: "SEVEN_YEARS", 2922: "EIGHT_YEARS", 3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}


def log_retention(days: int) -> logs.RetentionDays:
    """The shortest CloudWatch retention that keeps logs at least ``days``."""
    for allowed in sorted(_RETENTION):
        if allowed >= days:
            return getattr(logs.RetentionDays, _RETENTION[allowed])
    return logs.RetentionDays.TEN_YEARS


def edge_archiver_statements(bucket_arn: str, archive_objects_arn: str, archive_prefix: str) -> list[iam.PolicyStatement]:
    """Put archive objects, and what verification before a retention delete needs:
    HEAD/GET of archive objects (size, checksum, manifest) and listing under the
    prefix (so a missing object is a 404, not a 403). No delete, no other prefix."""
    return [
        iam.PolicyStatement(
            sid="PutArchiveObjects",
            # AbortMultipartUpload only discards the parts of an upload that failed;
            # it cannot delete a stored object.
            actions=["s3:PutObject", "s3:AbortMultipartUpload"],
            resources=[archive_objects_arn],
        ),
        iam.PolicyStatement(
            sid="VerifyArchiveObjects",
            actions=["s3:GetObject"],  # HeadObject is authorised by s3:GetObject
            resources=[archive_objects_arn],
        ),
        iam.PolicyStatement(
            sid="ListArchivePrefix",
            actions=["s3:ListBucket"],
            resources=[bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{archive_prefix}*"]}},
        ),
    ]


class IngestStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: AppConfig, storage: StorageStack, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.add_stack_dependency(storage)
        db = config.database_name
        archive_objects = storage.archive_objects_arn()
        # The Lambda reads the archive's manifests only, never its data.
        manifests = f"{storage.bucket_arn}/{config.archive_prefix}*/{MANIFEST_NAME}"
        tables_arn = self.format_arn(service="glue", resource="table", resource_name=f"{db}/*")

        self.failed_events = sqs.Queue(
            self,
            "UploadFailedEvents",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            self.failed_events,
            "AwsSolutions-SQS3",
            "This queue is itself the dead-letter destination of the upload Lambda's failed events; "
            "a dead-letter queue of a dead-letter queue would have no reader.",
        )

        self.log_group = logs.LogGroup(
            self,
            "UploadFunctionLogs",
            retention=log_retention(config.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )

        self.function_role = iam.Role(
            self,
            "UploadFunctionRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Upload Lambda: read archive manifests, add tables/partitions to the catalog",
        )
        self.function_policy = function_policy = iam.Policy(
            self,
            "UploadFunctionPolicy",
            statements=[
                iam.PolicyStatement(
                    sid="ReadArchiveManifests",
                    actions=["s3:GetObject"],
                    resources=[manifests],
                ),
                iam.PolicyStatement(
                    sid="ParkRejectedManifests",
                    actions=["sqs:SendMessage"],
                    resources=[self.failed_events.queue_arn],
                ),
                iam.PolicyStatement(
                    sid="CatalogAddAndUpdate",
                    actions=[
                        "glue:GetDatabase",
                        "glue:GetTable",
                        "glue:CreateTable",
                        "glue:UpdateTable",
                        "glue:GetPartition",
                        "glue:CreatePartition",
                        "glue:UpdatePartition",
                    ],
                    resources=[
                        self.format_arn(service="glue", resource="catalog"),
                        self.format_arn(service="glue", resource="database", resource_name=db),
                        tables_arn,
                    ],
                ),
                iam.PolicyStatement(
                    sid="WriteOwnLogs",
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[self.log_group.log_group_arn],
                ),
            ],
        )
        function_policy.attach_to_role(self.function_role)

        self.function = lambda_.Function(
            self,
            "UploadFunction",
            description="Registers each archive day's partition in the Glue catalog from its _manifest.json",
            runtime=LAMBDA_RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            handler=LAMBDA_HANDLER,
            code=lambda_.Code.from_asset(str(LAMBDA_DIR), exclude=["**/__pycache__", "**/*.pyc"]),
            role=self.function_role,
            memory_size=256,
            timeout=Duration.seconds(60),
            environment={
                "DATABASE_NAME": db,
                "ARCHIVE_PREFIX": config.archive_prefix,
                "FAILED_EVENTS_QUEUE_URL": self.failed_events.queue_url,
            },
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            retry_attempts=2,
            max_event_age=Duration.hours(6),
            on_failure=destinations.SqsDestination(self.failed_events),
        )
        self.function.node.add_dependency(function_policy)

        # Imported by name, so the notification configuration lives in this stack and
        # the storage stack never depends on it (no cross-stack cycle).
        archive_bucket = s3.Bucket.from_bucket_attributes(
            self, "ArchiveBucket", bucket_name=storage.bucket_name, bucket_arn=storage.bucket_arn
        )
        archive_bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.LambdaDestination(self.function),
            s3.NotificationKeyFilter(prefix=config.archive_prefix, suffix=MANIFEST_NAME),
        )

        self._acknowledge_notifications_handler()

        self.edge_policy = iam.ManagedPolicy(
            self,
            "EdgeArchiverPolicy",
            description="Edge archiver: put Parquet under the archive prefix and verify it; no delete, no other prefix",
            statements=edge_archiver_statements(storage.bucket_arn, archive_objects, config.archive_prefix),
        )

        self._suppress_findings(
            resource_finding(self, archive_objects), resource_finding(self, manifests), resource_finding(self, tables_arn)
        )
        CfnOutput(self, "EdgePolicyArn", value=self.edge_policy.managed_policy_arn, description="Attach to the edge archiver's IAM user or role")
        CfnOutput(self, "UploadFunctionName", value=self.function.function_name)
        CfnOutput(self, "UploadFailedEventsQueueUrl", value=self.failed_events.queue_url)

    def _acknowledge_notifications_handler(self) -> None:
        """CDK applies a bucket's notification configuration with its own singleton
        custom-resource Lambda; its role uses the AWS managed basic-execution policy."""
        handler = next(
            (c for c in self.node.children if c.node.id.startswith("BucketNotificationsHandler")), None
        )
        if handler is None:
            raise RuntimeError("CDK's bucket notifications handler not found; check the acknowledgment below")
        acknowledge(
            handler.node.find_child("Role"),
            "AwsSolutions-IAM4",
            "CDK's own BucketNotificationsHandler (a custom resource that only runs at deploy time "
            "to call PutBucketNotificationConfiguration) uses AWSLambdaBasicExecutionRole for its "
            "logs; CDK does not let the app replace that role's policy.",
            ["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
        )

    def _suppress_findings(self, archive_objects: str, manifests: str, tables: str) -> None:
        acknowledge(
            self.edge_policy,
            "AwsSolutions-IAM5",
            "The archiver writes and verifies new objects under the archive prefix every day under "
            "new names; the wildcard is limited to that prefix.",
            [archive_objects],
        )
        acknowledge(
            self.function_policy,
            "AwsSolutions-IAM5",
            "The Lambda reads the manifest of any new archive day (one per measurement, site and "
            "day, under the archive prefix) and creates a table per measurement in this one "
            "database as measurements appear.",
            [manifests, tables],
        )
