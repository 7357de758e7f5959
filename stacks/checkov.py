"""Skipping a checkov check on one resource, always with a written reason.

checkov reads a CloudFormation resource's ``Metadata.checkov.skip`` list
(``{"id": "CKV_AWS_117", "comment": "..."}``) and reports the check as skipped with
that comment, so the reason travels with the template and shows in every scan.
tests/test_checkov.py fails on any failed check that is not skipped this way.
"""

from __future__ import annotations

from aws_cdk import CfnResource
from constructs import IConstruct

MIN_REASON_WORDS = 8


def skip_check(construct: IConstruct, check_id: str, reason: str) -> None:
    resource = construct if isinstance(construct, CfnResource) else construct.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource to hold a checkov skip")
    if len(reason.split()) < MIN_REASON_WORDS:
        raise ValueError(f"skipping {check_id} on {construct.node.path} needs a written reason")
    current = resource.get_metadata("checkov") or {}
    skips = [*current.get("skip", []), {"id": check_id, "comment": reason}]
    resource.add_metadata("checkov", {**current, "skip": skips})
