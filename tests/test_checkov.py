"""checkov over the synthesized CloudFormation templates: every check passes, or is
skipped on its resource with a written reason in the template's own metadata
(``Metadata.checkov.skip``, set from the stacks by ``stacks.checkov.skip_check``),
which checkov reports with its comment.

checkov is pinned in its own virtual environment (``.venv-checkov``, from
``devtools/checkov-requirements.txt``; ``make venv`` installs it) and runs offline:
no platform download, no update check, and a proxy that refuses every connection.
The last test shows the gate failing.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.test_stacks import STACKS, synthesize

ROOT = Path(__file__).resolve().parent.parent
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
CHECKOV_VERSION = "3.3.30"
MIN_REASON_WORDS = 8
# Every skip, on purpose: a new one is a decision, written in the stacks and here.
EXPECTED_SKIPS = {
    ("CKV_AWS_18", "AWS::S3::Bucket.AccessLogsBucket83982689"),
    ("CKV_AWS_116", "AWS::Lambda::Function.UploadFunction18838DD8"),
    ("CKV_AWS_117", "AWS::Lambda::Function.UploadFunction18838DD8"),
    ("CKV_AWS_173", "AWS::Lambda::Function.UploadFunction18838DD8"),
    ("CKV_AWS_116", "AWS::Lambda::Function.BucketNotificationsHandler050a0587b7544547bf325f094a3db8347ECC3691"),
    ("CKV_AWS_117", "AWS::Lambda::Function.BucketNotificationsHandler050a0587b7544547bf325f094a3db8347ECC3691"),
}


def run_checkov(template_dir: Path) -> dict:
    """checkov's JSON report for the stack templates in ``template_dir``."""
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `make venv` (devtools/bootstrap.sh installs checkov)")
    files = [str(template_dir / f"{name}.template.json") for name in STACKS.values()]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "CKV_", "PRISMA_"))}
    env.update(
        CKV_SKIP_PACKAGE_UPDATE_CHECK="true",  # no PyPI version check
        BC_SKIP_MAPPING="TRUE",  # no guideline download
        # Offline for certain: any connection checkov might still try is refused here.
        HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9", NO_PROXY="",
    )
    result = subprocess.run(
        [str(CHECKOV), "--framework", "cloudformation", "--skip-download", "--compact", "-o", "json", "-f", *files],
        cwd=template_dir, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode in (0, 1), result.stderr[-4000:]  # 1: some check failed
    report = json.loads(result.stdout)
    assert report["check_type"] == "cloudformation" and report["summary"]["checkov_version"] == CHECKOV_VERSION
    return report


def gate_violations(report: dict) -> list[str]:
    """What stops the build: a failed check, a skip without a written reason, a
    template checkov could not read."""
    problems = [f"{c['check_id']} failed on {c['resource']} ({c['file_path']})" for c in report["results"]["failed_checks"]]
    for check in report["results"]["skipped_checks"]:
        comment = check["check_result"].get("suppress_comment") or ""
        if len(comment.split()) < MIN_REASON_WORDS:
            problems.append(f"{check['check_id']} skipped on {check['resource']} without a written reason")
    if report["summary"]["parsing_errors"]:
        problems.append(f"templates checkov could not parse: {report['results']['parsing_errors']}")
    return problems


@pytest.fixture(scope="module")
def assembly(tmp_path_factory) -> Path:
    return synthesize(tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="module")
def report(assembly) -> dict:
    return run_checkov(assembly)


def test_every_check_passes_or_is_skipped_with_a_written_reason(report, assembly):
    assert gate_violations(report) == []
    summary = report["summary"]
    resources = sum(len(json.loads((assembly / f"{n}.template.json").read_text())["Resources"]) for n in STACKS.values())
    assert summary["resource_count"] == resources  # every resource was scanned
    assert summary["passed"] >= 100
    skipped = {(c["check_id"], c["resource"]) for c in report["results"]["skipped_checks"]}
    assert skipped == EXPECTED_SKIPS


def test_checkov_reports_each_skip_with_the_comment_the_stack_wrote(report, assembly):
    written = {}
    for name in STACKS.values():
        template = json.loads((assembly / f"{name}.template.json").read_text())
        for logical_id, resource in template["Resources"].items():
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                written[(skip["id"], f"{resource['Type']}.{logical_id}")] = skip["comment"]
    reported = {
        (c["check_id"], c["resource"]): c["check_result"]["suppress_comment"] for c in report["results"]["skipped_checks"]
    }
    assert reported == written


def test_the_gate_fails_on_a_failed_check_and_on_a_skip_without_reason(assembly, tmp_path):
    """Proof that the gate can fail: the same templates with one fix undone (the
    queue's encryption), one skip removed (the upload Lambda's VPC) and one reason
    emptied (the log bucket's access logging)."""
    for name in STACKS.values():
        template = json.loads((assembly / f"{name}.template.json").read_text())
        broken = copy.deepcopy(template)
        for logical_id, resource in broken["Resources"].items():
            if resource["Type"] == "AWS::SQS::Queue":
                del resource["Properties"]["KmsMasterKeyId"]
            skips = resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
            if logical_id.startswith("UploadFunction"):
                skips[:] = [s for s in skips if s["id"] != "CKV_AWS_117"]
            for skip in skips:
                if skip["id"] == "CKV_AWS_18":
                    skip["comment"] = ""
        (tmp_path / f"{name}.template.json").write_text(json.dumps(broken))

    problems = gate_violations(run_checkov(tmp_path))

    assert sorted(problems) == [
        "CKV_AWS_117 failed on AWS::Lambda::Function.UploadFunction18838DD8 (/MicrogridIngest.template.json)",
        "CKV_AWS_18 skipped on AWS::S3::Bucket.AccessLogsBucket83982689 without a written reason",
        "CKV_AWS_27 failed on AWS::SQS::Queue.UploadFailedEvents9A6873FE (/MicrogridIngest.template.json)",
    ]
