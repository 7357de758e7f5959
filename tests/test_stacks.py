"""The CDK app: ``python app.py`` synthesizes offline with cdk-nag's AwsSolutions pack
passing, and each stack's template has the properties that matter.

The app is synthesized once per session, as a child process exactly as the CDK CLI
runs it (``app`` in cdk.json), with no AWS credentials; the per-stack assertions
read the templates it wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

from aws_cdk.assertions import Match, Template  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
STACKS = {
    "storage": "MicrogridStorage",
    "catalog": "MicrogridCatalog",
    "analytics": "MicrogridAnalytics",
    "ingest": "MicrogridIngest",
}
CDK_JSON = json.loads((ROOT / "cdk.json").read_text())["context"]
BUCKET = "microgrid-archive-${AWS::AccountId}-${AWS::Region}"
BUCKET_ARN = f"arn:${{AWS::Partition}}:s3:::{BUCKET}"


# -- one synthesis for the session ------------------------------------------------


def synthesize(outdir: Path) -> Path:
    """``python3 app.py`` (cdk.json's app command) into ``outdir``, offline: no AWS
    credentials, no region, metadata endpoint disabled."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env.update(
        CDK_OUTDIR=str(outdir),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    app_command = json.loads((ROOT / "cdk.json").read_text())["app"].split()
    assert app_command[-1] == "app.py"
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return outdir


@pytest.fixture(scope="session")
def cloud_assembly(tmp_path_factory) -> Path:
    return synthesize(tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="session")
def templates(cloud_assembly) -> dict[str, dict[str, Any]]:
    return {
        key: json.loads((cloud_assembly / f"{name}.template.json").read_text()) for key, name in STACKS.items()
    }


@pytest.fixture(scope="session")
def template(templates):
    def get(stack: str) -> Template:
        return Template.from_json(templates[stack])

    return get


def render(value: Any) -> Any:
    """CloudFormation intrinsic -> readable string: Fn::Join concatenated, pseudo
    parameters as ``${AWS::X}``, other refs as ``${LogicalId}``."""
    if isinstance(value, dict):
        if "Fn::Join" in value:
            sep, parts = value["Fn::Join"]
            return sep.join(str(render(p)) for p in parts)
        if "Ref" in value:
            return f"${{{value['Ref']}}}"
        if "Fn::GetAtt" in value:
            return f"${{{'.'.join(value['Fn::GetAtt'])}}}"
        return {k: render(v) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v) for v in value]
    return value


def resources(templates, stack: str, rtype: str) -> dict[str, dict]:
    return {k: v for k, v in templates[stack]["Resources"].items() if v["Type"] == rtype}


def only(mapping: dict) -> Any:
    assert len(mapping) == 1, list(mapping)
    return next(iter(mapping.values()))


def statements(policy_resource: dict) -> list[dict]:
    doc = policy_resource["Properties"]["PolicyDocument"]
    out = []
    for st in doc["Statement"]:
        st = render(st)
        for key in ("Action", "Resource"):
            if isinstance(st.get(key), str):
                st[key] = [st[key]]
        # The order of actions means nothing (aws-iam:minimizePolicies sorts them).
        if "Action" in st:
            st["Action"] = sorted(st["Action"])
        out.append(st)
    return out


def archive_bucket(templates) -> dict:
    buckets = resources(templates, "storage", "AWS::S3::Bucket")
    [bucket] = [b for b in buckets.values() if render(b["Properties"].get("BucketName")) == BUCKET]
    return bucket


# -- synthesis and cdk-nag --------------------------------------------------------


def test_synth_writes_every_stack_and_the_lambda_asset(cloud_assembly):
    manifest = json.loads((cloud_assembly / "manifest.json").read_text())
    stacks = {k for k, v in manifest["artifacts"].items() if v["type"] == "aws:cloudformation:stack"}
    assert stacks == set(STACKS.values())
    assets = json.loads((cloud_assembly / "MicrogridIngest.assets.json").read_text())["files"]
    asset_dirs = [cloud_assembly / a["source"]["path"] for a in assets.values() if a["source"].get("packaging") == "zip"]
    [code] = [d for d in asset_dirs if (d / "upload" / "handler.py").is_file()]
    assert "def handler(" in (code / "upload" / "handler.py").read_text()
    assert not list(code.rglob("__pycache__"))


def test_cdk_nag_aws_solutions_passes_and_every_acknowledgment_has_a_reason(cloud_assembly):
    report = json.loads((cloud_assembly / "validation-report.json").read_text())
    [nag] = [r for r in report["pluginReports"] if r["pluginName"] == "AwsSolutions"]
    assert nag["conclusion"] == "success"
    assert nag["violations"] == []
    acknowledged = nag["suppressedViolations"]
    assert acknowledged, "expected the documented acknowledgments"
    for item in acknowledged:
        assert len(item["reason"].split()) >= 8, item["ruleName"]
    rules = {item["ruleName"].split("[")[0] for item in acknowledged}
    assert rules == {"AwsSolutions-SQS3", "AwsSolutions-IAM4", "AwsSolutions-IAM5"}
    # Every wildcard acknowledged is a bounded one: an archive/results prefix, the
    # archive's manifests, or this database's tables; never a bare "*".
    for item in acknowledged:
        if item["ruleName"].startswith("AwsSolutions-IAM5"):
            finding = item["ruleName"][len("AwsSolutions-IAM5[") : -1]
            assert finding.endswith(
                ("/archive/*", "/archive/*/_manifest.json", "/athena-results/*", ":table/microgrid/*")
            )


def test_cdk_nag_passes_with_a_known_environment(tmp_path):
    """With account and region known (as under ``cdk deploy``), ARNs hold a literal
    partition and region; every acknowledgment must still name its finding."""
    import app as cdk_app

    app, _ = cdk_app.build_app({"account": "123456789012", "region": "eu-west-1"}, outdir=str(tmp_path))
    app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    [nag] = [r for r in report["pluginReports"] if r["pluginName"] == "AwsSolutions"]
    assert nag["conclusion"] == "success", nag["violations"]
    assert any(":eu-west-1:123456789012:" in item["ruleName"] for item in nag["suppressedViolations"])


def test_cdk_nag_fails_synthesis_on_an_unacknowledged_finding(tmp_path):
    """The gate is real: an insecure bucket added to the app stops synthesis."""
    from aws_cdk import aws_s3 as s3

    import app as cdk_app

    app, stacks = cdk_app.build_app(outdir=str(tmp_path))
    s3.Bucket(stacks["storage"], "CarelessBucket")
    with pytest.raises(RuntimeError, match="AwsSolutions-S10"):
        app.synth()


# -- storage ---------------------------------------------------------------------


def test_archive_bucket_encryption_public_access_versioning_logging(templates):
    props = archive_bucket(templates)["Properties"]
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    logging_target = props["LoggingConfiguration"]
    assert logging_target["LogFilePrefix"] == "archive-bucket/"
    logs_id = logging_target["DestinationBucketName"]["Ref"]
    logs_bucket = templates["storage"]["Resources"][logs_id]
    assert logs_bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"
    ] == {"SSEAlgorithm": "AES256"}
    assert logs_bucket["Properties"]["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
    # Versioned, so a deleted or overwritten log survives as a noncurrent version for a while.
    assert logs_bucket["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = {r["Id"]: r for r in logs_bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-access-logs"]["ExpirationInDays"] == CDK_JSON["accessLogsExpirationDays"]
    assert rules["expire-access-logs"]["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": CDK_JSON["noncurrentVersionExpirationDays"]
    }
    assert rules["remove-expired-delete-markers"]["ExpiredObjectDeleteMarker"] is True


def test_buckets_survive_stack_deletion(templates):
    for bucket in resources(templates, "storage", "AWS::S3::Bucket").values():
        assert bucket["DeletionPolicy"] == "Retain"
        assert bucket["UpdateReplacePolicy"] == "Retain"


def test_every_bucket_policy_denies_plain_http_and_old_tls(templates):
    buckets = resources(templates, "storage", "AWS::S3::Bucket")
    policies = resources(templates, "storage", "AWS::S3::BucketPolicy")
    assert {p["Properties"]["Bucket"]["Ref"] for p in policies.values()} == set(buckets)
    for policy in policies.values():
        denies = [s for s in statements(policy) if s["Effect"] == "Deny"]
        assert any(s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)
        assert any(s.get("Condition") == {"NumericLessThan": {"s3:TlsVersion": 1.2}} for s in denies)
        for deny in denies:
            assert deny["Principal"] == {"AWS": "*"} and deny["Action"] == ["s3:*"]


def test_lifecycle_rules(templates):
    rules = {r["Id"]: r for r in archive_bucket(templates)["Properties"]["LifecycleConfiguration"]["Rules"]}
    colder = rules["archive-to-colder-storage"]
    assert colder["Prefix"] == "archive/"
    assert colder["Transitions"] == [
        {"StorageClass": "GLACIER_IR", "TransitionInDays": CDK_JSON["archiveTransitionDays"]}
    ]
    assert "ExpirationInDays" not in colder  # the archive itself never expires
    results = rules["expire-athena-results"]
    assert results["Prefix"] == "athena-results/"
    assert results["ExpirationInDays"] == CDK_JSON["athenaResultsExpirationDays"]
    replaced = rules["expire-replaced-versions"]
    assert replaced["NoncurrentVersionExpiration"] == {"NoncurrentDays": CDK_JSON["noncurrentVersionExpirationDays"]}
    assert replaced["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert rules["remove-expired-delete-markers"]["ExpiredObjectDeleteMarker"] is True
    assert all(r["Status"] == "Enabled" for r in rules.values())


def test_storage_outputs_the_bucket(templates):
    [bucket_id] = [k for k, v in resources(templates, "storage", "AWS::S3::Bucket").items() if v is archive_bucket(templates)]
    assert templates["storage"]["Outputs"]["BucketName"]["Value"] == {"Ref": bucket_id}


# -- catalog ---------------------------------------------------------------------


def test_glue_database(template):
    template("catalog").has_resource_properties(
        "AWS::Glue::Database", {"DatabaseInput": Match.object_like({"Name": "microgrid"})}
    )


def test_crawler_target_schedule_and_schema_change_policy(templates):
    crawler = only(resources(templates, "catalog", "AWS::Glue::Crawler"))["Properties"]
    [target] = crawler["Targets"]["S3Targets"]
    assert render(target["Path"]) == f"s3://{BUCKET}/archive/"
    assert "**.json" in target["Exclusions"]
    assert crawler["DatabaseName"] == "microgrid"
    assert crawler["Schedule"] == {"ScheduleExpression": CDK_JSON["crawlerSchedule"]}
    assert crawler["SchemaChangePolicy"] == {"UpdateBehavior": "UPDATE_IN_DATABASE", "DeleteBehavior": "LOG"}
    assert crawler["RecrawlPolicy"] == {"RecrawlBehavior": "CRAWL_EVERYTHING"}
    config = json.loads(crawler["Configuration"])
    assert config["Grouping"]["TableLevelConfiguration"] == 3  # bucket=1, archive=2, measurement=3
    assert config["CrawlerOutput"]["Tables"] == {"AddOrUpdateBehavior": "MergeNewColumns"}
    assert config["CrawlerOutput"]["Partitions"] == {"AddOrUpdateBehavior": "InheritFromTable"}


def test_crawler_role_is_least_privilege(templates):
    crawler = only(resources(templates, "catalog", "AWS::Glue::Crawler"))["Properties"]
    role_id = crawler["Role"]["Fn::GetAtt"][0]
    role = templates["catalog"]["Resources"][role_id]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "glue.amazonaws.com"}}
    ]
    assert "ManagedPolicyArns" not in role  # no AWSGlueServiceRole
    policies = [p for p in resources(templates, "catalog", "AWS::IAM::Policy").values() if {"Ref": role_id} in p["Properties"]["Roles"]]
    sts = [s for p in policies for s in statements(p)]
    by_sid = {s["Sid"]: s for s in sts}
    assert by_sid["ReadArchiveObjects"]["Action"] == ["s3:GetObject"]
    assert by_sid["ReadArchiveObjects"]["Resource"] == [f"{BUCKET_ARN}/archive/*"]
    assert by_sid["ListArchivePrefix"]["Condition"] == {"StringLike": {"s3:prefix": ["archive/*"]}}
    glue_actions = by_sid["CatalogAddAndUpdate"]["Action"]
    assert all(a.startswith("glue:") for a in glue_actions)
    assert not [a for a in glue_actions if "Delete" in a]
    assert by_sid["CatalogAddAndUpdate"]["Resource"] == [
        "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:catalog",
        "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:database/microgrid",
        "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:table/microgrid/*",
    ]
    [log_group_id] = resources(templates, "catalog", "AWS::Logs::LogGroup")
    assert sorted(by_sid["CrawlerLogs"]["Resource"]) == [
        f"${{{log_group_id}.Arn}}",
        f"arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:{crawler_log_group(templates)}",
    ]
    assert "logs:AssociateKmsKey" in by_sid["CrawlerLogs"]["Action"]
    [key_id] = resources(templates, "catalog", "AWS::KMS::Key")
    assert by_sid["UseTheCrawlerKey"]["Resource"] == [f"${{{key_id}.Arn}}"]
    for st in sts:
        assert st["Effect"] == "Allow"
        assert "*" not in st["Resource"] and not any(a.endswith(":*") for a in st["Action"])


def crawler_log_group(templates) -> str:
    """With a security configuration, Glue logs to a group named after the crawler's
    role and the configuration."""
    crawler = only(resources(templates, "catalog", "AWS::Glue::Crawler"))["Properties"]
    return f"/aws-glue/crawlers-role/${{{crawler['Role']['Fn::GetAtt'][0]}}}-microgrid-crawler"


def test_crawler_security_configuration_encrypts_logs_bookmarks_and_s3(templates):
    crawler = only(resources(templates, "catalog", "AWS::Glue::Crawler"))["Properties"]
    [security_id] = resources(templates, "catalog", "AWS::Glue::SecurityConfiguration")
    security = templates["catalog"]["Resources"][security_id]["Properties"]
    assert crawler["CrawlerSecurityConfiguration"] == {"Ref": security_id}
    assert security["Name"] == "microgrid-crawler"
    [key_id] = resources(templates, "catalog", "AWS::KMS::Key")
    key = {"Fn::GetAtt": [key_id, "Arn"]}
    encryption = security["EncryptionConfiguration"]
    assert encryption["CloudWatchEncryption"] == {"CloudWatchEncryptionMode": "SSE-KMS", "KmsKeyArn": key}
    assert encryption["JobBookmarksEncryption"] == {"JobBookmarksEncryptionMode": "CSE-KMS", "KmsKeyArn": key}
    assert encryption["S3Encryptions"] == [{"S3EncryptionMode": "SSE-S3"}]
    # The log group Glue writes to under that configuration is the stack's own.
    log_group = only(resources(templates, "catalog", "AWS::Logs::LogGroup"))["Properties"]
    assert render(log_group["LogGroupName"]) == crawler_log_group(templates)
    assert log_group["KmsKeyId"] == key


# -- every stack: keys and log groups -----------------------------------------------


def all_resources(templates, rtype: str) -> dict[tuple[str, str], dict]:
    return {(stack, k): v for stack in templates for k, v in resources(templates, stack, rtype).items()}


def test_every_log_group_is_kept_for_the_retention_and_encrypted_with_its_stacks_key(templates):
    groups = all_resources(templates, "AWS::Logs::LogGroup")
    assert len(groups) == 3  # crawler, upload Lambda, CDK's notifications handler
    for (stack, _), group in groups.items():
        props = group["Properties"]
        assert props["RetentionInDays"] == CDK_JSON["logRetentionDays"]
        [key_id] = resources(templates, stack, "AWS::KMS::Key")
        assert props["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
        # CloudWatch Logs may use the key for exactly the stack's log groups.
        key = templates[stack]["Resources"][key_id]["Properties"]
        assert key["EnableKeyRotation"] is True
        [logs_use] = [s for s in key["KeyPolicy"]["Statement"] if s.get("Sid") == "CloudWatchLogsForTheseLogGroupsOnly"]
        allowed = [render(a) for a in logs_use["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"]]
        name = render(props["LogGroupName"])
        assert f"arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:{name}" in allowed
        assert render(logs_use["Principal"]["Service"]) == "logs.${AWS::Region}.amazonaws.com"


def test_every_function_logs_to_a_log_group_of_its_stack_and_has_reserved_concurrency(templates):
    """No function writes to a log group created on first use (no retention, no key)."""
    functions = all_resources(templates, "AWS::Lambda::Function")
    assert len(functions) == 2
    for (stack, _), fn in functions.items():
        props = fn["Properties"]
        assert props["LoggingConfig"]["LogGroup"]["Ref"] in resources(templates, stack, "AWS::Logs::LogGroup")
        expected = CDK_JSON["uploadReservedConcurrency"] if props.get("Handler") == "upload.handler.handler" else 1
        assert props["ReservedConcurrentExecutions"] == expected


def test_failed_events_queue_is_kms_encrypted(templates):
    queue = only(resources(templates, "ingest", "AWS::SQS::Queue"))["Properties"]
    assert queue["KmsMasterKeyId"] == "alias/aws/sqs"


# -- analytics -------------------------------------------------------------------


def test_workgroup_enforced_engine_v3_results_and_cutoff(templates):
    wg = only(resources(templates, "analytics", "AWS::Athena::WorkGroup"))["Properties"]
    assert wg["Name"] == "microgrid"
    conf = wg["WorkGroupConfiguration"]
    assert conf["EnforceWorkGroupConfiguration"] is True
    assert conf["EngineVersion"] == {"SelectedEngineVersion": "Athena engine version 3"}
    assert conf["BytesScannedCutoffPerQuery"] == CDK_JSON["bytesScannedCutoffPerQuery"]
    results = conf["ResultConfiguration"]
    assert render(results["OutputLocation"]) == f"s3://{BUCKET}/athena-results/"
    assert results["EncryptionConfiguration"] == {"EncryptionOption": "SSE_S3"}
    assert render(results["ExpectedBucketOwner"]) == "${AWS::AccountId}"
    assert templates["analytics"]["Outputs"]["WorkGroupName"]["Value"]["Ref"] in resources(
        templates, "analytics", "AWS::Athena::WorkGroup"
    )


def test_query_policy_reads_archive_and_writes_results_only(templates):
    policy = only(resources(templates, "analytics", "AWS::IAM::ManagedPolicy"))
    sts = statements(policy)
    s3_resources = {r for s in sts for r in s["Resource"] if r.startswith(BUCKET_ARN + "/")}
    assert s3_resources == {f"{BUCKET_ARN}/archive/*", f"{BUCKET_ARN}/athena-results/*"}
    writes = {r for s in sts if "s3:PutObject" in s["Action"] for r in s["Resource"]}
    assert writes == {f"{BUCKET_ARN}/athena-results/*"}
    assert not [a for s in sts for a in s["Action"] if "Delete" in a]


# -- ingest ----------------------------------------------------------------------


def test_upload_lambda_function(templates):
    functions = resources(templates, "ingest", "AWS::Lambda::Function")
    [fn] = [f for f in functions.values() if f["Properties"].get("Handler") == "upload.handler.handler"]
    props = fn["Properties"]
    assert props["Runtime"].startswith("python3.")
    variables = props["Environment"]["Variables"]
    [queue_id] = resources(templates, "ingest", "AWS::SQS::Queue")
    assert variables == {"DATABASE_NAME": "microgrid", "ARCHIVE_PREFIX": "archive/", "FAILED_EVENTS_QUEUE_URL": {"Ref": queue_id}}
    assert props["LoggingConfig"]["LogFormat"] == "JSON"
    invoke = only(resources(templates, "ingest", "AWS::Lambda::EventInvokeConfig"))["Properties"]
    assert invoke["MaximumRetryAttempts"] == 2
    assert "OnFailure" in invoke["DestinationConfig"]


def test_lambda_trigger_is_object_created_of_archive_manifests_only(templates):
    notif = only(resources(templates, "ingest", "Custom::S3BucketNotifications"))["Properties"]
    assert render(notif["BucketName"]) == BUCKET
    [config] = notif["NotificationConfiguration"]["LambdaFunctionConfigurations"]
    assert config["Events"] == ["s3:ObjectCreated:*"]
    rules = {r["Name"]: r["Value"] for r in config["Filter"]["Key"]["FilterRules"]}
    assert rules == {"prefix": "archive/", "suffix": "_manifest.json"}
    permission = only(resources(templates, "ingest", "AWS::Lambda::Permission"))["Properties"]
    assert permission["Principal"] == "s3.amazonaws.com"
    assert render(permission["SourceArn"]) == BUCKET_ARN
    assert render(permission["SourceAccount"]) == "${AWS::AccountId}"


def test_upload_lambda_role_reads_manifests_only_and_never_deletes(templates):
    policy = next(p for k, p in resources(templates, "ingest", "AWS::IAM::Policy").items() if k.startswith("UploadFunctionPolicy"))
    sts = statements(policy)
    actions = [a for s in sts for a in s["Action"]]
    assert not [a for a in actions if "Delete" in a]
    s3_statements = [s for s in sts if any(a.startswith("s3:") for a in s["Action"])]
    assert s3_statements == [
        {
            "Sid": "ReadArchiveManifests",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [f"{BUCKET_ARN}/archive/*/_manifest.json"],
        }
    ]
    [queue_id] = resources(templates, "ingest", "AWS::SQS::Queue")
    [park] = [s for s in sts if s["Sid"] == "ParkRejectedManifests"]
    assert park["Action"] == ["sqs:SendMessage"] and park["Resource"] == [f"${{{queue_id}.Arn}}"]


def test_edge_archiver_policy_is_scoped_to_the_archive_prefix(templates):
    policy = only(resources(templates, "ingest", "AWS::IAM::ManagedPolicy"))
    sts = sorted(statements(policy), key=lambda s: s["Sid"])
    assert sts == [
        {
            "Sid": "ListArchivePrefix",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [BUCKET_ARN],
            "Condition": {"StringLike": {"s3:prefix": ["archive/*"]}},
        },
        {
            "Sid": "PutArchiveObjects",
            "Effect": "Allow",
            "Action": ["s3:AbortMultipartUpload", "s3:PutObject"],
            "Resource": [f"{BUCKET_ARN}/archive/*"],
        },
        {
            "Sid": "VerifyArchiveObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [f"{BUCKET_ARN}/archive/*"],
        },
    ]
    outputs = templates["ingest"]["Outputs"]
    assert outputs["EdgePolicyArn"]["Value"]["Ref"] in resources(templates, "ingest", "AWS::IAM::ManagedPolicy")


def test_every_output_the_edge_needs(templates):
    assert "BucketName" in templates["storage"]["Outputs"]
    assert "DatabaseName" in templates["catalog"]["Outputs"]
    assert "WorkGroupName" in templates["analytics"]["Outputs"]
    assert "EdgePolicyArn" in templates["ingest"]["Outputs"]


def test_stacks_do_not_import_each_others_exports(templates):
    """Other stacks name the bucket by its deterministic name, so a stack can be
    updated without CloudFormation's export lock-in."""
    for stack, tpl in templates.items():
        assert "Fn::ImportValue" not in json.dumps(tpl), stack


# -- configuration ---------------------------------------------------------------


def test_context_overrides_reach_the_templates(tmp_path):
    import app as cdk_app

    app, stacks = cdk_app.build_app(
        {"bucketName": "campus-telemetry-archive", "archiveTransitionDays": "180", "bytesScannedCutoffPerQuery": "1000000000"},
        outdir=str(tmp_path),
    )
    storage = Template.from_stack(stacks["storage"]).to_json()
    [bucket] = [b for b in storage["Resources"].values() if b["Properties"].get("BucketName") == "campus-telemetry-archive"]
    rules = {r["Id"]: r for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["archive-to-colder-storage"]["Transitions"][0]["TransitionInDays"] == 180
    Template.from_stack(stacks["analytics"]).has_resource_properties(
        "AWS::Athena::WorkGroup",
        {
            "WorkGroupConfiguration": Match.object_like(
                {
                    "BytesScannedCutoffPerQuery": 1_000_000_000,
                    "ResultConfiguration": Match.object_like({"OutputLocation": "s3://campus-telemetry-archive/athena-results/"}),
                }
            )
        },
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"archiveTransitionStorageClass": "GLACIER"}, "Athena cannot read"),
        ({"bytesScannedCutoffPerQuery": "1000"}, "at least"),
        ({"athenaResultsExpirationDays": "0"}, "at least 1 day"),
        ({"databaseName": "Micro-Grid"}, "databaseName"),
        ({"uploadReservedConcurrency": "0"}, "at least 1"),
    ],
)
def test_invalid_context_is_refused(override, message, tmp_path):
    import app as cdk_app
    from stacks.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        cdk_app.build_app(override, outdir=str(tmp_path))
