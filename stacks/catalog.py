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
"""

from __future__ import annotations

import json

from aws_cdk import ArnFormat, Aws, CfnOutput, Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.config import AppConfig
from stacks.nag import acknowledge, resource_finding
from stacks.storage import StorageStack

# Glue crawlers always log to this log group.
CRAWLER_LOG_GROUP = "/aws-glue/crawlers"
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

        archive_objects = storage.archive_objects_arn()
        catalog_arn = self.format_arn(service="glue", resource="catalog")
        database_arn = self.format_arn(service="glue", resource="database", resource_name=config.database_name)
        tables_arn = self.format_arn(service="glue", resource="table", resource_name=f"{config.database_name}/*")
        crawler_logs_arn = self.format_arn(
            service="logs", resource="log-group", resource_name=f"{CRAWLER_LOG_GROUP}:*", arn_format=ArnFormat.COLON_RESOURCE_NAME
        )

        self.crawler_role = iam.Role(
            self,
            "CrawlerRole",
            assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
            description="Glue crawler over the archive prefix: read archive objects, add/update catalog tables",
        )
        crawler_policy = iam.Policy(
            self,
            "CrawlerPolicy",
            statements=[
                iam.PolicyStatement(
                    sid="ReadArchiveObjects",
                    actions=["s3:GetObject"],
                    resources=[archive_objects],
                ),
                iam.PolicyStatement(
                    sid="ListArchivePrefix",
                    actions=["s3:ListBucket"],
                    resources=[storage.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{config.archive_prefix}*"]}},
                ),
                iam.PolicyStatement(
                    sid="CatalogAddAndUpdate",
                    actions=[
                        "glue:GetDatabase",
                        "glue:GetTable",
                        "glue:GetTables",
                        "glue:CreateTable",
                        "glue:UpdateTable",
                        "glue:GetPartition",
                        "glue:GetPartitions",
                        "glue:BatchGetPartition",
                        "glue:CreatePartition",
                        "glue:BatchCreatePartition",
                        "glue:UpdatePartition",
                        "glue:BatchUpdatePartition",
                    ],
                    resources=[catalog_arn, database_arn, tables_arn],
                ),
                iam.PolicyStatement(
                    sid="CrawlerLogs",
                    actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[crawler_logs_arn],
                ),
            ],
        )
        crawler_policy.attach_to_role(self.crawler_role)
        acknowledge(
            crawler_policy,
            "AwsSolutions-IAM5",
            "Wildcards bounded by purpose: objects under the archive prefix only (new files arrive "
            "daily under new names), tables of this one database only (one per measurement, created "
            "as measurements appear), and the log group Glue itself names /aws-glue/crawlers.",
            [resource_finding(self, arn) for arn in (archive_objects, tables_arn, crawler_logs_arn)],
        )

        self.crawler = glue.CfnCrawler(
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
        )
        self.crawler.add_resource_dependency(self.database)
        acknowledge(
            self.crawler,
            "AwsSolutions-GL1",
            "Crawler logs hold table, partition and S3 path names only, never telemetry, and "
            "CloudWatch Logs encrypts them at rest with its service keys; a customer-managed KMS "
            "key for them would add cost and key policy without protecting data.",
        )
        self.crawler.node.add_dependency(crawler_policy)

        CfnOutput(self, "DatabaseName", value=config.database_name, description="Glue database ([athena] database on the edge)")
        CfnOutput(self, "CrawlerName", value=self.crawler.ref)
