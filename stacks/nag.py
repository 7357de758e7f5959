"""Acknowledging cdk-nag findings, always with a written reason.

cdk-nag 3 reports through CDK's policy validation: an unacknowledged error fails
``cdk synth`` (and ``app.synth()``). Each finding of a rule is acknowledged on its
own (``AwsSolutions-IAM5[Resource::...]``), so a new wildcard is never waved
through by an old acknowledgment.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Aws, Stack, Token, Validations
from constructs import IConstruct

PACK = "AwsSolutions"


def acknowledge(construct: IConstruct, rule: str, reason: str, findings: list[str] | None = None) -> None:
    if not reason.strip():
        raise ValueError(f"acknowledging {rule} needs a reason")
    ids = [f"{PACK}::{rule}[{finding}]" for finding in findings] if findings else [f"{PACK}::{rule}"]
    Validations.of(construct).acknowledge(*(Acknowledgment(id=i, reason=reason) for i in ids))


# How cdk-nag spells the wildcard resources it finds, for exact acknowledgments.
def _pseudo(value: str, name: str) -> str:
    return f"<AWS::{name}>" if Token.is_unresolved(value) else value


def s3_objects_finding(bucket_name: str, prefix: str) -> str:
    name = bucket_name.replace(Aws.ACCOUNT_ID, "<AWS::AccountId>").replace(Aws.REGION, "<AWS::Region>")
    return f"Resource::arn:<AWS::Partition>:s3:::{name}/{prefix}*"


def glue_tables_finding(stack: Stack, database: str) -> str:
    region, account = _pseudo(stack.region, "Region"), _pseudo(stack.account, "AccountId")
    return f"Resource::arn:<AWS::Partition>:glue:{region}:{account}:table/{database}/*"


def log_group_finding(stack: Stack, name: str) -> str:
    region, account = _pseudo(stack.region, "Region"), _pseudo(stack.account, "AccountId")
    return f"Resource::arn:<AWS::Partition>:logs:{region}:{account}:log-group:{name}:*"
