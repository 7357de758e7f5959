"""Acknowledging cdk-nag findings, always with a written reason.

cdk-nag 3 reports through CDK's policy validation: an unacknowledged error fails
``cdk synth`` (and ``app.synth()``). Each finding of a rule is acknowledged on its
own (``AwsSolutions-IAM5[Resource::...]``), so a new wildcard is never waved
through by an old acknowledgment.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from constructs import IConstruct

PACK = "AwsSolutions"


def acknowledge(construct: IConstruct, rule: str, reason: str, findings: list[str] | None = None) -> None:
    if not reason.strip():
        raise ValueError(f"acknowledging {rule} needs a reason")
    ids = [f"{PACK}::{rule}[{finding}]" for finding in findings] if findings else [f"{PACK}::{rule}"]
    Validations.of(construct).acknowledge(*(Acknowledgment(id=i, reason=reason) for i in ids))


def resource_finding(scope: IConstruct, arn: str) -> str:
    """How cdk-nag names a policy resource in its findings (``Resource::...``): the
    ARN as its stack resolves it, pseudo parameters and references as ``<AWS::X>``,
    ``<LogicalId>`` and ``<LogicalId.Attr>``. Rendered from the very ARN the policy
    holds, so it matches whatever the stack resolves to (a literal partition and
    region when the environment is known, tokens when it is not)."""
    return "Resource::" + _render(Stack.of(scope).resolve(arn))


def _render(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_render(part) for part in parts)
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return f"<{'.'.join(value['Fn::GetAtt'])}>"
    raise ValueError(f"cannot name a finding for {value!r}")
