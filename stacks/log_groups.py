"""Log groups the stacks own: named, kept for ``logRetentionDays``, encrypted with a
customer-managed KMS key that CloudWatch Logs may use for exactly those groups.

Every log group a stack's resources write to is created by the stack itself, so no
service creates one on first use with infinite retention and no encryption.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

# CloudWatch Logs accepts only these retention periods (days -> CDK's name for it).
_RETENTION = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS",
    30: "ONE_MONTH", 60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS",
    150: "FIVE_MONTHS", 180: "SIX_MONTHS", 365: "ONE_YEAR", 400: "THIRTEEN_MONTHS",
    545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS", 1827: "FIVE_YEARS",
    2192: "SIX_YEARS", 2557: "SEVEN_YEARS", 2922: "EIGHT_YEARS", 3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}
# What CloudWatch Logs needs of a key to encrypt a log group (its documented key policy).
LOGS_KEY_ACTIONS = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]


def log_retention(days: int) -> logs.RetentionDays:
    """The shortest CloudWatch retention that keeps logs at least ``days``."""
    for allowed in sorted(_RETENTION):
        if allowed >= days:
            return getattr(logs.RetentionDays, _RETENTION[allowed])
    return logs.RetentionDays.TEN_YEARS


def log_group_arn(scope: Construct, name: str) -> str:
    """``arn:...:log-group:<name>``: the ARN CloudWatch Logs puts in a log group's
    encryption context and authorises CreateLogGroup/AssociateKmsKey against."""
    return Stack.of(scope).format_arn(
        service="logs", resource="log-group", resource_name=name, arn_format=ArnFormat.COLON_RESOURCE_NAME
    )


def logs_key(scope: Construct, construct_id: str, *, description: str, log_group_names: list[str]) -> kms.Key:
    """A rotating key that CloudWatch Logs in this region may use for these log groups only."""
    key = kms.Key(
        scope,
        construct_id,
        description=description,
        enable_key_rotation=True,
        removal_policy=RemovalPolicy.DESTROY,  # with its log groups; KMS waits 30 days first
        pending_window=Duration.days(30),
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchLogsForTheseLogGroupsOnly",
            principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
            actions=LOGS_KEY_ACTIONS,
            resources=["*"],  # in a key policy: this key
            conditions={
                "ArnEquals": {"kms:EncryptionContext:aws:logs:arn": [log_group_arn(scope, n) for n in log_group_names]}
            },
        )
    )
    return key


def encrypted_log_group(scope: Construct, construct_id: str, *, name: str, key: kms.IKey, retention_days: int) -> logs.LogGroup:
    return logs.LogGroup(
        scope,
        construct_id,
        log_group_name=name,
        encryption_key=key,
        retention=log_retention(retention_days),
        removal_policy=RemovalPolicy.DESTROY,
    )
