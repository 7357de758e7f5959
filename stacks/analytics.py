"""Analytics: the Athena workgroup, and a managed policy for whoever runs queries.

The workgroup's configuration is enforced, so a client cannot send results
elsewhere, unencrypted, or on another engine: results are CSV under
``s3://<bucket>/athena-results/`` (SSE-S3), engine version 3, and a query stops once
it has scanned ``bytesScannedCutoffPerQuery`` bytes.
"""

from __future__ import annotations

from aws_cdk import Aws, CfnOutput, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.config import AppConfig
from stacks.nag import acknowledge, resource_finding
from stacks.storage import StorageStack

ENGINE_VERSION = "Athena engine version 3"


class AnalyticsStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        storage: StorageStack,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.add_stack_dependency(storage)
        self.workgroup_name = config.workgroup_name
        self.workgroup = self._workgroup(config, storage)
        self.query_policy = self._query_policy(config, storage)

        CfnOutput(self, "WorkGroupName", value=self.workgroup.ref, description="Athena workgroup ([athena] workgroup on the edge)")
        CfnOutput(self, "QueryPolicyArn", value=self.query_policy.managed_policy_arn)

    def _workgroup(self, config: AppConfig, storage: StorageStack) -> athena.CfnWorkGroup:
        return athena.CfnWorkGroup(
            self,
            "WorkGroup",
            name=config.workgroup_name,
            description="Microgrid telemetry archive queries",
            state="ENABLED",
            recursive_delete_option=False,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(selected_engine_version=ENGINE_VERSION),
                publish_cloud_watch_metrics_enabled=True,
                requester_pays_enabled=False,
                bytes_scanned_cutoff_per_query=config.bytes_scanned_cutoff_per_query,
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=storage.results_location(),
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_S3"
                    ),
                    expected_bucket_owner=Aws.ACCOUNT_ID,
                ),
            ),
        )

    def _query_policy(self, config: AppConfig, storage: StorageStack) -> iam.ManagedPolicy:
        results_objects = storage.objects_arn(config.athena_results_prefix)
        archive_objects = storage.archive_objects_arn()
        tables_arn = self.format_arn(service="glue", resource="table", resource_name=f"{config.database_name}/*")
        policy = iam.ManagedPolicy(
            self,
            "QueryPolicy",
            description="Run Athena queries over the microgrid archive in its workgroup (edge query)",
            statements=self._query_statements(config, storage, results_objects, archive_objects, tables_arn),
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5",
            "Queries read any object under the archive prefix and any table of this one database "
            "(new files and measurements appear over time), and Athena writes each result under a "
            "fresh name below the results prefix.",
            [resource_finding(self, arn) for arn in (archive_objects, results_objects, tables_arn)],
        )
        return policy

    def _query_statements(
        self, config: AppConfig, storage: StorageStack, results_objects: str, archive_objects: str, tables_arn: str
    ) -> list[iam.PolicyStatement]:
        db = config.database_name
        workgroup_arn = self.format_arn(service="athena", resource="workgroup", resource_name=config.workgroup_name)
        return [
            iam.PolicyStatement(
                sid="RunQueriesInTheWorkgroup",
                actions=[
                    "athena:StartQueryExecution",
                    "athena:GetQueryExecution",
                    "athena:GetQueryResults",
                    "athena:StopQueryExecution",
                    "athena:GetWorkGroup",
                ],
                resources=[workgroup_arn],
            ),
            iam.PolicyStatement(
                sid="ReadTheCatalog",
                actions=[
                    "glue:GetDatabase",
                    "glue:GetTable",
                    "glue:GetTables",
                    "glue:GetPartition",
                    "glue:GetPartitions",
                    "glue:BatchGetPartition",
                ],
                resources=[
                    self.format_arn(service="glue", resource="catalog"),
                    self.format_arn(service="glue", resource="database", resource_name=db),
                    tables_arn,
                ],
            ),
            iam.PolicyStatement(
                sid="ReadArchiveObjects",
                actions=["s3:GetObject"],
                resources=[archive_objects],
            ),
            iam.PolicyStatement(
                sid="WriteAndReadQueryResults",
                actions=["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                resources=[results_objects],
            ),
            iam.PolicyStatement(
                sid="ListArchiveAndResults",
                actions=["s3:ListBucket"],
                resources=[storage.bucket_arn],
                conditions={
                    "StringLike": {"s3:prefix": [f"{config.archive_prefix}*", f"{config.athena_results_prefix}*"]}
                },
            ),
            iam.PolicyStatement(
                sid="BucketLocation",
                actions=["s3:GetBucketLocation", "s3:ListBucketMultipartUploads"],
                resources=[storage.bucket_arn],
            ),
        ]
