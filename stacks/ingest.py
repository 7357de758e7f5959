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

from aws_cdk import CfnOutput, CfnResource, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from lambdas.upload.layout import MANIFEST_NAME
from stacks.checkov import skip_check
from stacks.config import AppConfig
from stacks.log_groups import encrypted_log_group, logs_key
from stacks.nag import acknowledge, resource_finding
from stacks.storage import StorageStack

LAMBDA_DIR = Path(__file__).resolve().parent.parent / "lambdas"
LAMBDA_HANDLER = "upload.handler.handler"
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_14


def no_vpc_reason(services: str) -> str:
    return (
        f"It calls only AWS service APIs ({services}) over TLS with its role's credentials and "
        "has nothing in a VPC to reach. Inside one it would need a NAT gateway or interface "
        "endpoints for each of those services: cost, without protecting any data."
    )

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
        archive_objects = storage.archive_objects_arn()
        # The Lambda reads the archive's manifests only, never its data.
        manifests = f"{storage.bucket_arn}/{config.archive_prefix}*/{MANIFEST_NAME}"
        tables_arn = self.format_arn(service="glue", resource="table", resource_name=f"{config.database_name}/*")

        self.failed_events = self._failed_events_queue()
        self._log_groups(config)
        self.function_role = iam.Role(
            self,
            "UploadFunctionRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Upload Lambda: read archive manifests, add tables/partitions to the catalog",
        )
        self.function_policy = self._function_policy(config, manifests, tables_arn)
        self.function = self._function(config)

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
        self._harden_notifications_handler()

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

    def _failed_events_queue(self) -> sqs.Queue:
        # SSE with SQS's AWS managed KMS key: the Lambda (its role, as a destination and
        # when it parks a manifest) and whoever reads the queue in this account may use
        # it through SQS without key grants.
        queue = sqs.Queue(
            self,
            "UploadFailedEvents",
            encryption=sqs.QueueEncryption.KMS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            queue,
            "AwsSolutions-SQS3",
            "This queue is itself the dead-letter destination of the upload Lambda's failed events; "
            "a dead-letter queue of a dead-letter queue would have no reader.",
        )
        return queue

    def _log_groups(self, config: AppConfig) -> None:
        """The upload Lambda's log group and CDK's notifications handler's, with their key."""
        names = {
            "function": f"/{config.project_name}/ingest/upload-function",
            "notifications": f"/{config.project_name}/ingest/bucket-notifications-handler",
        }
        self.key = logs_key(
            self, "LogsKey", description="Microgrid ingest: the upload Lambda's logs", log_group_names=list(names.values())
        )
        self.log_group = encrypted_log_group(
            self, "UploadFunctionLogs", name=names["function"], key=self.key, retention_days=config.log_retention_days
        )
        self.notifications_log_group = encrypted_log_group(
            self, "BucketNotificationsLogs", name=names["notifications"], key=self.key,
            retention_days=config.log_retention_days,
        )

    def _function_policy(self, config: AppConfig, manifests: str, tables_arn: str) -> iam.Policy:
        policy = iam.Policy(
            self,
            "UploadFunctionPolicy",
            statements=[
                iam.PolicyStatement(sid="ReadArchiveManifests", actions=["s3:GetObject"], resources=[manifests]),
                iam.PolicyStatement(
                    sid="ParkRejectedManifests", actions=["sqs:SendMessage"], resources=[self.failed_events.queue_arn]
                ),
                iam.PolicyStatement(
                    sid="CatalogAddAndUpdate",
                    actions=[
                        "glue:GetDatabase", "glue:GetTable", "glue:CreateTable", "glue:UpdateTable",
                        "glue:GetPartition", "glue:CreatePartition", "glue:UpdatePartition",
                    ],
                    resources=[
                        self.format_arn(service="glue", resource="catalog"),
                        self.format_arn(service="glue", resource="database", resource_name=config.database_name),
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
        policy.attach_to_role(self.function_role)
        return policy

    def _function(self, config: AppConfig) -> lambda_.Function:
        function = lambda_.Function(
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
            # A bound on concurrent Glue writers; events beyond it wait in Lambda's
            # asynchronous queue (retried up to max_event_age), none is lost.
            reserved_concurrent_executions=config.upload_reserved_concurrency,
            environment={
                "DATABASE_NAME": config.database_name,
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
        function.node.add_dependency(self.function_policy)
        skip_check(
            function,
            "CKV_AWS_116",
            "Failed asynchronous events go to the UploadFailedEvents queue through the function's "
            "on-failure destination (AWS::Lambda::EventInvokeConfig), which carries the error and "
            "the event; a DeadLetterConfig as well would deliver every failure twice. checkov "
            "recognises only DeadLetterConfig.",
        )
        skip_check(function, "CKV_AWS_117", no_vpc_reason("S3, Glue, SQS, CloudWatch Logs"))
        skip_check(
            function,
            "CKV_AWS_173",
            "Its environment holds no secret: the Glue database name, the archive prefix and the "
            "failure queue's URL, all three also in this template and its outputs. Lambda encrypts "
            "them at rest with its AWS managed key; a customer key would protect nothing more.",
        )
        return function

    def _harden_notifications_handler(self) -> None:
        """CDK applies a bucket's notification configuration with its own singleton
        custom-resource Lambda (run by CloudFormation at deploy time only). Its role
        uses the AWS managed basic-execution policy; its logs go to a log group of
        this stack (key, retention) and it may run once at a time."""
        handler = next(
            (c for c in self.node.children if c.node.id.startswith("BucketNotificationsHandler")), None
        )
        if handler is None:
            raise RuntimeError("CDK's bucket notifications handler not found; check the settings below")
        acknowledge(
            handler.node.find_child("Role"),
            "AwsSolutions-IAM4",
            "CDK's own BucketNotificationsHandler (a custom resource that only runs at deploy time "
            "to call PutBucketNotificationConfiguration) uses AWSLambdaBasicExecutionRole for its "
            "logs; CDK does not let the app replace that role's policy.",
            ["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
        )
        function = handler.node.find_child("Resource")
        assert isinstance(function, CfnResource)
        function.add_property_override("ReservedConcurrentExecutions", 1)
        function.add_property_override("LoggingConfig", {"LogGroup": self.notifications_log_group.log_group_name})
        skip_check(
            function,
            "CKV_AWS_116",
            "CDK's deploy-time custom resource: CloudFormation invokes it during a deployment and "
            "waits for its response; a failure fails (and rolls back) the deployment and shows in "
            "the stack's events. A dead-letter queue would only hold a request whose response URL "
            "has expired.",
        )
        skip_check(function, "CKV_AWS_117", no_vpc_reason("S3 PutBucketNotificationConfiguration, CloudWatch Logs"))

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
