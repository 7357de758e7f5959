"""Catalog: the Glue database and a scheduled crawler over the archive prefix.

The upload Lambda registers every new object as it arrives; the crawler is the
safety net for schema drift and for anything the Lambda missed. Both produce the
same tables (one per measurement, partitions ``site_id``/``date``), and neither ever
removes a column, a table or a partition:

- SchemaChangePolicy: UpdateBehavior UPDATE_IN_DATABASE (new columns reach the
  catalog), DeleteBehavior LOG (an object that disappears, e.g. a lifecycle
  expiry, never drops a table or partition; it is only logged).
- CrawlerOutput: tables MergeNewColumns (add, never change or remove), partitions
  InheritFromTable (partitions follow the table schema, so Athena sees one schema).
- Grouping: TableLevelConfiguration at the measurement folder, so each measurement
  is one table even when sites' schemas differ (CombineCompatibleSchemas).

The crawler runs under a Glue security configuration: its CloudWatch logs and any
job bookmarks are encrypted with this stack's KMS key, anything Glue writes to S3
with SSE-S3 (as the bucket does). With a security configuration Glue logs to
``/aws-glue/crawlers-role/<role name>-<configuration name>``; the stack creates that
log group itself, with the key and ``logRetentionDays``.
"""

from __future__ import annotations

import json

from aws_cdk import Aws, CfnOutput, Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.config import AppConfig
from stacks.log_groups import encrypted_log_group, log_group_arn, logs_key
from stacks.nag import acknowledge, resource_finding
from stacks.storage import StorageStack

# With a security configuration, a crawler logs to this log group (Glue's naming).
CRAWLER_LOG_GROUP_PREFIX = "/aws-glue/crawlers-role/"
# Crawler exclusions, relative to the archive prefix: the archiver's manifests.
CRAWLER_EXCLUSIONS = ["**.json", "**/_*"]


def table_level(archive_prefix: str) -> int:
    """Glue's absolute table level for ``<bucket>/<prefix>/<measurement>/``: the
    bucket is level 1, each prefix segment one more, the measurement folder the next."""
    return 1 + len([p for p in archive_prefix.split("/") if p]) + 1


def crawler_configuration(archive_prefix: str) -> dict:
    return {
        "Version": 1.0,
        "CrawlerOutput": {
            "Tables": {"AddOrUpdateBehavior": "MergeNewColumns"},
            "Partitions": {"AddOrUpdateBehavior": "InheritFromTable"},
        },
        "Grouping": {
            "TableGroupingPolicy": "CombineCompatibleSchemas",
            "TableLevelConfiguration": table_level(archive_prefix),
        },
    }


class CatalogStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: AppConfig, storage: StorageStack, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.add_stack_dependency(storage)
        self.database_name = config.database_name

        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=config.database_name,
                description="Microgrid telemetry archive: one table per measurement, partitioned by site_id and date",
            ),
        )
        self.crawler_role = iam.Role(
            self,
            "CrawlerRole",
            assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
            description="Glue crawler over the archive prefix: read archive objects, add/update catalog tables",
        )
        self.security_configuration_name = f"{config.project_name}-crawler"
        log_group_name = f"{CRAWLER_LOG_GROUP_PREFIX}{self.crawler_role.role_name}-{self.security_configuration_name}"
        self.key = logs_key(
            self,
            "CrawlerKey",
            description="Microgrid catalog: the crawler's CloudWatch logs and Glue job bookmarks",
            log_group_names=[log_group_name],
        )
        self.log_group = encrypted_log_group(
            self, "CrawlerLogs", name=log_group_name, key=self.key, retention_days=config.log_retention_days
        )
        self.security_configuration = glue.SecurityConfiguration(
            self,
            "CrawlerSecurity",
            security_configuration_name=self.security_configuration_name,
            cloud_watch_encryption=glue.CloudWatchEncryption.kms(self.key),
            job_bookmarks_encryption=glue.JobBookmarksEncryption.client_side_kms(self.key),
            s3_encryption=glue.S3Encryption.s3_managed(),
        )
        crawler_policy = self._crawler_policy(config, storage, log_group_name, self.key)
        self.crawler = self._crawler(config, storage)
        self.crawler.node.add_dependency(crawler_policy, self.log_group)

        CfnOutput(self, "DatabaseName", value=config.database_name, description="Glue database ([athena] database on the edge)")
        CfnOutput(self, "CrawlerName", value=self.crawler.ref)

    def _crawler_policy(self, config: AppConfig, storage: StorageStack, log_group_name: str, key: kms.IKey) -> iam.Policy:
        archive_objects = storage.archive_objects_arn()
        tables_arn = self.format_arn(service="glue", resource="table", resource_name=f"{config.database_name}/*")
        policy = iam.Policy(
            self,
            "CrawlerPolicy",
            statements=[
                iam.PolicyStatement(sid="ReadArchiveObjects", actions=["s3:GetObject"], resources=[archive_objects]),
                iam.PolicyStatement(
                    sid="ListArchivePrefix",
                    actions=["s3:ListBucket"],
                    resources=[storage.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{config.archive_prefix}*"]}},
                ),
                iam.PolicyStatement(
                    sid="CatalogAddAndUpdate",
                    actions=[
                        "glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:CreateTable",
                        "glue:UpdateTable", "glue:GetPartition", "glue:GetPartitions", "glue:BatchGetPartition",
                        "glue:CreatePartition", "glue:BatchCreatePartition", "glue:UpdatePartition",
                        "glue:BatchUpdatePartition",
                    ],
                    resources=[
                        self.format_arn(service="glue", resource="catalog"),
                        self.format_arn(service="glue", resource="database", resource_name=config.database_name),
                        tables_arn,
                    ],
                ),
                iam.PolicyStatement(
                    sid="CrawlerLogs",
                    actions=["logs:CreateLogGroup", "logs:AssociateKmsKey", "logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[log_group_arn(self, log_group_name), self.log_group.log_group_arn],
                ),
                iam.PolicyStatement(
                    sid="UseTheCrawlerKey",  # job bookmark encryption (client-side KMS) runs as the role
                    actions=["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[key.key_arn],
                ),
            ],
        )
        policy.attach_to_role(self.crawler_role)
        acknowledge(
            policy,
            "AwsSolutions-IAM5",
            "Wildcards bounded by purpose: objects under the archive prefix only (new files arrive "
            "daily under new names) and tables of this one database only (one per measurement, "
            "created as measurements appear).",
            [resource_finding(self, arn) for arn in (archive_objects, tables_arn)],
        )
        return policy

    def _crawler(self, config: AppConfig, storage: StorageStack) -> glue.CfnCrawler:
        crawler = glue.CfnCrawler(
            self,
            "ArchiveCrawler",
            name=f"{config.project_name}-archive",
            role=self.crawler_role.role_arn,
            database_name=config.database_name,
            description="Schema drift safety net over the archive prefix (the upload Lambda registers partitions as they arrive)",
            targets=glue.CfnCrawler.TargetsProperty(
                s3_targets=[
                    glue.CfnCrawler.S3TargetProperty(
                        path=f"s3://{storage.bucket_name}/{config.archive_prefix}",
                        exclusions=CRAWLER_EXCLUSIONS,
                    )
                ]
            ),
            schedule=glue.CfnCrawler.ScheduleProperty(schedule_expression=config.crawler_schedule),
            schema_change_policy=glue.CfnCrawler.SchemaChangePolicyProperty(
                update_behavior="UPDATE_IN_DATABASE", delete_behavior="LOG"
            ),
            recrawl_policy=glue.CfnCrawler.RecrawlPolicyProperty(recrawl_behavior="CRAWL_EVERYTHING"),
            configuration=json.dumps(crawler_configuration(config.archive_prefix), sort_keys=True),
            crawler_security_configuration=self.security_configuration.security_configuration_name,
        )
        crawler.add_resource_dependency(self.database)
        return crawler
