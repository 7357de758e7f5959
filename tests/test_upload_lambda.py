"""The upload Lambda's handler under moto: S3 ObjectCreated events for the archive's
``_manifest.json`` objects become Glue tables and partitions; manifests it cannot use
are parked in the failure queue (moto stands in for S3, Glue and SQS).

Manifests are made by the archiver's own code (``edge``: the part record, the
manifest, its bytes), and the last test runs the real archiver against the real
InfluxDB into moto S3 and registers what it wrote.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from urllib.parse import quote_plus

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
from moto import mock_aws

# The archiver's code that makes manifests: the one place to follow it if it moves.
from edge.archive import parquet_schema as schema
from edge.archive import layout
from edge.archive import manifest as manifests
from edge.archive import windows
from edge.archive.archiver import archive
from edge.archive.parquet_file import WrittenPart
from edge.archive.s3 import S3Store
from edge.archive.store import FileDigest, manifest_bytes
from edge.config.settings import ArchiveOptions, ArchiveSettings, InfluxSettings, S3Settings
from lambdas.upload import handler as upload
from lambdas.upload.layout import MANIFEST_NAME

REGION = "us-east-1"
BUCKET = "microgrid-archive-test"
DATABASE = "microgrid"
PREFIX = "archive/"
DAY1, DAY2 = dt.date(2024, 5, 1), dt.date(2024, 5, 2)
TAGS = ("device", "service_id", "site_id")
FIELDS = {"voltage": "float", "run": "boolean"}  # InfluxDB's SHOW FIELD KEYS types
# A version-1 manifest (sorted keys) loses the file's column order: time first, then
# the rest sorted. site_id is the partition key: the archiver leaves it out of the file.
BASE_COLUMNS = [("time", "timestamp"), ("device", "string"), ("run", "boolean"), ("service_id", "string"), ("voltage", "double")]
EMPTY = {"created": 0, "updated": 0, "exists": 0, "ignored": 0, "rejected": 0}


@pytest.fixture
def aws(monkeypatch):
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "DATABASE_NAME": DATABASE,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ARCHIVE_PREFIX", raising=False)
    # The handler caches its clients across invocations, as on Lambda; each test
    # has its own moto world, so start without a cached client.
    monkeypatch.setattr(upload, "_clients", None)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        glue = boto3.client("glue", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        glue.create_database(DatabaseInput={"Name": DATABASE})
        queue_url = sqs.create_queue(QueueName="upload-failed-events")["QueueUrl"]
        monkeypatch.setenv("FAILED_EVENTS_QUEUE_URL", queue_url)
        yield s3, glue, sqs, queue_url


# -- manifests as the archiver writes them ------------------------------------------


def part_columns(fields: dict[str, str], tags: tuple[str, ...] = TAGS) -> dict[str, str]:
    """A part's columns as the archiver records them: name -> str(Arrow type) of the
    schema it writes (InfluxDB field types mapped by edge.parquet_schema)."""
    arrow = schema.arrow_schema(["time", *tags, *fields], schema.field_types(fields.items()), tags)
    return {f.name: str(f.type) for f in arrow}


def day_manifest(window: windows.Window, *parts: dict[str, str], tags: tuple[str, ...] = TAGS) -> dict:
    """The manifest of a day with one part per ``fields`` mapping."""
    manifest = None
    for index, fields in enumerate(parts):
        key = window.part_key(index)
        written = WrittenPart(
            path=Path(key),
            digest=FileDigest(1234, "ab" * 32),
            rows=2,
            field_counts=dict.fromkeys(fields, 2),
            columns=part_columns(fields, tags),
            min_time=f"{window.day.isoformat()}T00:00:00Z",
            max_time=f"{window.day.isoformat()}T00:00:01Z",
        )
        manifest = manifests.with_part(manifest, window, manifests.part_record(index, key, f"s3://{BUCKET}/{PREFIX}{key}", written))
    return manifest


def as_version_2(manifest: dict) -> dict:
    """The manifest shape asked of the archiver: columns as a list, in file order."""
    parts = [{**p, "columns": [{"name": n, "type": t} for n, t in p["columns"].items()]} for p in manifest["parts"]]
    return {**manifest, "version": 2, "parts": parts}


def put_manifest(s3, window: windows.Window, manifest: dict | bytes) -> str:
    key = PREFIX + window.manifest_key
    body = manifest if isinstance(manifest, bytes) else manifest_bytes(manifest)
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return key


def put_day(s3, window: windows.Window, *parts: dict[str, str]) -> str:
    return put_manifest(s3, window, day_manifest(window, *parts))


def window(day: dt.date = DAY1, measurement: str = "field6", site: str = "000001") -> windows.Window:
    return windows.Window(measurement, day, site)


def object_created(*keys: str) -> dict:
    """An S3 notification as S3 sends it: object keys URL-encoded."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": BUCKET, "arn": f"arn:aws:s3:::{BUCKET}"},
                    "object": {"key": quote_plus(key, safe="/"), "size": 1},
                },
            }
            for key in keys
        ]
    }


def columns_of(glue, table: str = "field6") -> list[tuple[str, str]]:
    sd = glue.get_table(DatabaseName=DATABASE, Name=table)["Table"]["StorageDescriptor"]
    return [(c["Name"], c["Type"]) for c in sd["Columns"]]


def partitions_of(glue, table: str = "field6") -> dict[tuple[str, ...], dict]:
    parts = glue.get_partitions(DatabaseName=DATABASE, TableName=table)["Partitions"]
    return {tuple(p["Values"]): p for p in parts}


def queued(sqs, queue_url: str) -> list[dict]:
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


# -- registering days ---------------------------------------------------------------


def test_manifest_creates_table_and_partition(aws):
    s3, glue, sqs, queue_url = aws
    key = put_day(s3, window(), FIELDS)

    result = upload.handler(object_created(key), None)

    assert result == {**EMPTY, "created": 1}
    table = glue.get_table(DatabaseName=DATABASE, Name="field6")["Table"]
    assert columns_of(glue) == BASE_COLUMNS
    assert [(k["Name"], k["Type"]) for k in table["PartitionKeys"]] == [("site_id", "string"), ("date", "string")]
    assert table["StorageDescriptor"]["Location"] == f"s3://{BUCKET}/archive/field6/"
    assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    assert table["Parameters"]["classification"] == "parquet"
    assert table["TableType"] == "EXTERNAL_TABLE"
    partitions = partitions_of(glue)
    assert list(partitions) == [("000001", "2024-05-01")]
    sd = partitions[("000001", "2024-05-01")]["StorageDescriptor"]
    assert sd["Location"] == f"s3://{BUCKET}/archive/field6/site_id=000001/date=2024-05-01/"
    assert [(c["Name"], c["Type"]) for c in sd["Columns"]] == BASE_COLUMNS
    assert queued(sqs, queue_url) == []


def test_version_2_manifest_keeps_the_file_column_order(aws):
    s3, glue, *_ = aws
    manifest = as_version_2(day_manifest(window(), {"voltage": "float", "run": "boolean", "energy": "integer"}))
    key = put_manifest(s3, window(), manifest)

    upload.handler(object_created(key), None)

    assert [c for c, _ in columns_of(glue)] == [c["name"] for c in manifest["parts"][0]["columns"]]
    assert ("energy", "bigint") in columns_of(glue)


def test_second_day_adds_a_partition(aws):
    s3, glue, *_ = aws
    first, second = put_day(s3, window(DAY1), FIELDS), put_day(s3, window(DAY2), FIELDS)

    upload.handler(object_created(first), None)
    upload.handler(object_created(second), None)

    assert set(partitions_of(glue)) == {("000001", "2024-05-01"), ("000001", "2024-05-02")}
    assert columns_of(glue) == BASE_COLUMNS


def test_extra_column_widens_the_table(aws):
    s3, glue, *_ = aws
    first = put_day(s3, window(DAY1), FIELDS)
    second = put_day(s3, window(DAY2), {**FIELDS, "current": "float", "fault": "boolean"})
    upload.handler(object_created(first), None)

    upload.handler(object_created(second), None)

    assert columns_of(glue) == BASE_COLUMNS + [("current", "double"), ("fault", "boolean")]
    new_partition = partitions_of(glue)[("000001", "2024-05-02")]["StorageDescriptor"]
    assert [c["Name"] for c in new_partition["Columns"]][-2:] == ["current", "fault"]


def test_older_day_with_fewer_columns_never_narrows_the_table(aws):
    s3, glue, *_ = aws
    wide = put_day(s3, window(DAY2), {**FIELDS, "current": "float"})
    narrow = put_day(s3, window(DAY1), FIELDS)

    upload.handler(object_created(wide), None)
    upload.handler(object_created(narrow), None)

    assert sorted(columns_of(glue)) == sorted(BASE_COLUMNS + [("current", "double")])


def test_a_late_part_with_a_new_column_updates_the_day_partition(aws):
    """Points that turn up for an archived day go to a new part; the manifest then
    lists both, and the day's partition catches up with the table."""
    s3, glue, *_ = aws
    key = put_day(s3, window(), FIELDS)
    upload.handler(object_created(key), None)
    put_day(s3, window(), FIELDS, {**FIELDS, "current": "float"})

    result = upload.handler(object_created(key), None)

    assert result == {**EMPTY, "updated": 1}
    sd = partitions_of(glue)[("000001", "2024-05-01")]["StorageDescriptor"]
    assert [c["Name"] for c in sd["Columns"]][-1] == "current"


def test_duplicate_event_is_a_no_op(aws):
    s3, glue, *_ = aws
    key = put_day(s3, window(), FIELDS)
    event = object_created(key)
    upload.handler(event, None)
    versions_before = glue.get_table_versions(DatabaseName=DATABASE, TableName="field6")["TableVersions"]

    result = upload.handler(event, None)
    again = upload.handler(object_created(key, key), None)  # duplicated inside one event too

    assert result == {**EMPTY, "exists": 1}
    assert again["exists"] == 2
    assert list(partitions_of(glue)) == [("000001", "2024-05-01")]
    versions_after = glue.get_table_versions(DatabaseName=DATABASE, TableName="field6")["TableVersions"]
    assert len(versions_after) == len(versions_before)
    assert columns_of(glue) == BASE_COLUMNS


def test_measurements_get_their_own_tables_and_keys_are_decoded(aws):
    """S3 URL-encodes keys in events; the archiver Hive-escapes path segments
    ('/' in a site id is '%2F'): the catalog holds the plain value, the location the
    key's own segment."""
    s3, glue, *_ = aws
    racks = window(measurement="field1_racks", site="campus north/2")
    key = put_manifest(s3, racks, day_manifest(racks, {"soc": "float"}, tags=(*TAGS, "rack")))
    assert "site_id=campus north%2F2/" in key

    upload.handler(object_created(key), None)

    partitions = partitions_of(glue, "field1_racks")
    assert list(partitions) == [("campus north/2", "2024-05-01")]
    loc = partitions[("campus north/2", "2024-05-01")]["StorageDescriptor"]["Location"]
    assert loc == f"s3://{BUCKET}/archive/field1_racks/site_id=campus north%2F2/date=2024-05-01/"
    assert ("rack", "string") in columns_of(glue, "field1_racks")


def test_points_without_a_site_go_to_hives_default_partition(aws):
    s3, glue, *_ = aws
    key = put_day(s3, window(site=layout.NO_SITE), FIELDS)
    assert "/site_id=__HIVE_DEFAULT_PARTITION__/" in key

    assert upload.handler(object_created(key), None)["created"] == 1
    assert list(partitions_of(glue)) == [("__HIVE_DEFAULT_PARTITION__", "2024-05-01")]


def test_a_thousand_columns(aws):
    s3, glue, *_ = aws
    many = {f"sensor_{i:04d}_with_a_long_descriptive_name": "float" for i in range(1500)}
    key = put_day(s3, window(), many)

    upload.handler(object_created(key), None)

    assert len(columns_of(glue)) == 1 + 2 + 1500  # time, device, service_id, fields


def test_type_change_keeps_the_table_type(aws, caplog):
    s3, glue, *_ = aws
    first = put_day(s3, window(DAY1), FIELDS)
    second = put_day(s3, window(DAY2), {**FIELDS, "voltage": "integer"})
    upload.handler(object_created(first), None)

    with caplog.at_level(logging.WARNING, logger="upload"):
        upload.handler(object_created(second), None)

    assert ("voltage", "double") in columns_of(glue)
    assert any(getattr(r, "conflicts", None) == ["voltage: double <- bigint"] for r in caplog.records)


def test_parts_of_one_day_disagreeing_on_a_type_keep_the_first(aws, caplog):
    s3, glue, *_ = aws
    key = put_day(s3, window(), FIELDS, {**FIELDS, "voltage": "string"})

    with caplog.at_level(logging.WARNING, logger="upload"):
        assert upload.handler(object_created(key), None)["created"] == 1

    assert ("voltage", "double") in columns_of(glue)
    [record] = [r for r in caplog.records if r.getMessage() == "column_type_kept"]
    assert record.conflicts == ["voltage: double <- string"]


# -- what is not registered ------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        f"athena-results/{MANIFEST_NAME}",
        f"archive/{MANIFEST_NAME}",
        f"archive/field6/2024-05-01/{MANIFEST_NAME}",
        f"archive/field6/site_id=000001/date=2024-13-01/{MANIFEST_NAME}",
        f"archive/field6/site_id=000001/date=20240501/{MANIFEST_NAME}",
        f"archive/field6/site_id=000001/date=2024-05-01/extra/{MANIFEST_NAME}",
        f"archive/field-6!/site_id=000001/date=2024-05-01/{MANIFEST_NAME}",
        "archive/field6/site_id=000001/date=2024-05-01/part-00000.parquet",
    ],
)
def test_key_outside_the_layout_is_logged_and_ignored(aws, caplog, key):
    s3, glue, sqs, queue_url = aws
    s3.put_object(Bucket=BUCKET, Key=key, Body=manifest_bytes(day_manifest(window(), FIELDS)))

    with caplog.at_level(logging.WARNING, logger="upload"):
        result = upload.handler(object_created(key), None)

    assert result == {**EMPTY, "ignored": 1}
    assert glue.get_tables(DatabaseName=DATABASE)["TableList"] == []
    [record] = [r for r in caplog.records if r.getMessage() == "manifest_ignored"]
    assert record.key == key and record.reason
    assert queued(sqs, queue_url) == []


def test_manifest_already_gone_is_ignored(aws):
    result = upload.handler(object_created(PREFIX + window().manifest_key), None)
    assert result == {**EMPTY, "ignored": 1}


def _mutated(change):
    def make() -> dict | bytes:
        manifest = day_manifest(window(), FIELDS)
        return change(manifest)

    return make


def _set(path: tuple, value):
    def change(manifest: dict) -> dict:
        target = manifest
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        return manifest

    return change


BAD_MANIFESTS = {
    "not json": (lambda m: b"{not json", "not JSON"),
    "a json list": (lambda m: b"[]", "not a JSON object"),
    "newer version": (_set(("version",), 99), "manifest version 99 is newer"),
    "another measurement": (_set(("measurement",), "field5"), "manifest is for measurement='field5'"),
    "another site": (_set(("site_id",), "000002"), "site_id='000002'"),
    "another date": (_set(("date",), "2024-05-02"), "date='2024-05-02'"),
    "no parts": (_set(("parts",), []), "no parts"),
    "part outside the day": (
        _set(("parts", 0, "key"), "field6/site_id=000002/date=2024-05-01/part-00000.parquet"),
        "outside the day's directory",
    ),
    "not a parquet name": (_set(("parts", 0, "file"), "../part.csv"), "not a Parquet file name"),
    "negative rows": (_set(("parts", 0, "rows"), -1), "rows -1 is not a count"),
    "no columns": (_set(("parts", 0, "columns"), None), "no columns"),
    "unreadable type": (_set(("parts", 0, "columns", "voltage"), "list<item: double>"), "has no Glue/Athena equivalent"),
    "no time column": (_set(("parts", 0, "columns"), {"voltage": "double"}), "no 'time' timestamp column"),
    "indexes repeat": (lambda m: {**m, "parts": m["parts"] * 2}, "part indexes repeat"),
}


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_unusable_manifest_is_logged_skipped_and_parked_in_the_failure_queue(aws, caplog, case):
    s3, glue, sqs, queue_url = aws
    change, reason = BAD_MANIFESTS[case]
    bad = put_manifest(s3, window(DAY1), _mutated(change)())
    good = put_day(s3, window(DAY2), FIELDS)
    event = object_created(bad, good)

    with caplog.at_level(logging.WARNING, logger="upload"):
        result = upload.handler(event, None)

    # The good day of the same event is registered; the bad one only parked.
    assert result == {**EMPTY, "created": 1, "rejected": 1}
    assert list(partitions_of(glue)) == [("000001", "2024-05-02")]
    [logged] = [r for r in caplog.records if r.getMessage() == "manifest_rejected"]
    assert logged.levelno == logging.ERROR and logged.key == bad and reason in logged.reason
    [message] = queued(sqs, queue_url)
    assert message["requestContext"]["condition"] == "ManifestRejected"
    assert message["responsePayload"]["errorType"] == "ManifestError"
    assert reason in message["responsePayload"]["errorMessage"]
    assert (message["responsePayload"]["bucket"], message["responsePayload"]["key"]) == (BUCKET, bad)
    # The S3 record itself, so the function can be invoked with it again.
    assert message["requestPayload"] == {"Records": [event["Records"][0]]}


def test_oversized_manifest_is_parked_unread(aws, monkeypatch):
    s3, glue, sqs, queue_url = aws
    key = put_day(s3, window(), FIELDS)
    monkeypatch.setattr(upload, "MAX_MANIFEST_BYTES", 100)

    assert upload.handler(object_created(key), None) == {**EMPTY, "rejected": 1}
    [message] = queued(sqs, queue_url)
    assert "more than 100" in message["responsePayload"]["errorMessage"]


def test_without_a_failure_queue_the_invocation_fails(aws, monkeypatch):
    """Misconfigured: the event must not vanish, so Lambda's own retries and
    on-failure destination take it."""
    s3, *_ = aws
    monkeypatch.delenv("FAILED_EVENTS_QUEUE_URL")
    key = put_manifest(s3, window(), b"{not json")

    with pytest.raises(RuntimeError, match="FAILED_EVENTS_QUEUE_URL"):
        upload.handler(object_created(key), None)


def test_non_create_events_are_skipped(aws):
    event = object_created(PREFIX + window().manifest_key)
    event["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    assert upload.handler(event, None) == EMPTY


# -- the contract: what the real archiver writes ----------------------------------


def test_the_archivers_own_output_is_registered_with_its_files_types(aws, local_services, names, tmp_path):
    """The real archiver (real InfluxDB -> Parquet -> moto S3) writes manifests; the
    Lambda registers every day with the types pyarrow reads from the files."""
    s3, glue, *_ = aws
    influx = InfluxSettings(database=names["database"])
    lines = []
    for day in (DAY1, DAY2):
        t = windows.day_start_ns(day)
        lines += [
            f"field6,device=EV\\ Charger\\ 1/A,service_id=1,site_id=000001 voltage=229.5,run=true,energy=12i {t}",
            f"field6,device=EV\\ Charger\\ 1/A,service_id=1,site_id=000001 voltage=230.25,run=false,energy=13i {t + 10**9}",
        ]
    requests.post(f"{influx.url}/query", params={"q": f'CREATE DATABASE "{influx.database}"'}).raise_for_status()
    try:
        requests.post(f"{influx.url}/write", params={"db": influx.database}, data="\n".join(lines)).raise_for_status()
        settings = ArchiveSettings(
            influxdb=influx,
            archive=ArchiveOptions(directory=str(tmp_path / "archive")),
            s3=S3Settings(bucket=BUCKET, region=REGION),
        )
        start = dt.datetime.combine(DAY1, dt.time(), dt.UTC)
        summary = archive(settings, start, start + dt.timedelta(days=2), store=S3Store(settings.s3), progress=False)
        assert (summary.exported, summary.failed) == (2, 0)
    finally:
        requests.post(f"{influx.url}/query", params={"q": f'DROP DATABASE "{influx.database}"'})
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX)["Contents"]]
    manifests = sorted(k for k in listed if k.endswith(MANIFEST_NAME))
    assert len(manifests) == 2

    assert upload.handler(object_created(*manifests), None) == {**EMPTY, "created": 2}

    assert set(partitions_of(glue)) == {("000001", "2024-05-01"), ("000001", "2024-05-02")}
    [part] = [k for k in listed if k.endswith(".parquet") and "2024-05-01" in k]
    body = s3.get_object(Bucket=BUCKET, Key=part)["Body"].read()
    file_schema = pq.read_schema(pa.BufferReader(body))
    hive = {pa.timestamp("us", tz="UTC"): "timestamp", pa.string(): "string", pa.float64(): "double",
            pa.bool_(): "boolean", pa.int64(): "bigint"}
    assert sorted(columns_of(glue)) == sorted((f.name, hive[f.type]) for f in file_schema)
    assert ("energy", "bigint") in columns_of(glue)
