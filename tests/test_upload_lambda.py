"""The upload Lambda's handler under moto: S3 ObjectCreated events for archive Parquet
objects become Glue tables and partitions (moto stands in for S3 and Glue)."""

from __future__ import annotations

import datetime as dt
import io
import logging
from urllib.parse import quote_plus

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from lambdas.upload import handler as upload

REGION = "us-east-1"
BUCKET = "microgrid-archive-test"
DATABASE = "microgrid"


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("DATABASE_NAME", DATABASE)
    monkeypatch.delenv("ARCHIVE_PREFIX", raising=False)
    # The handler caches its clients across invocations, as on Lambda; each test
    # has its own moto world, so start without a cached client.
    monkeypatch.setattr(upload, "_clients", None)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        glue = boto3.client("glue", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        glue.create_database(DatabaseInput={"Name": DATABASE})
        yield s3, glue


def archive_table(day: dt.date, **extra_fields) -> pa.Table:
    start = dt.datetime.combine(day, dt.time(0, 0))
    columns = {
        "time": pa.array([start, start + dt.timedelta(seconds=1)], pa.timestamp("us", tz="UTC")),
        "site_id": ["000001", "000001"],
        "device": ["EV Charger 1/A", "EV Charger 1/A"],
        "service_id": ["1", "1"],
        "voltage": [229.5, 230.1],
        "run": [True, False],
    }
    columns.update(extra_fields)
    return pa.table(columns)


def put_parquet(s3, key: str, table: pa.Table) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    s3.put_object(Bucket=BUCKET, Key=key, Body=buf.getvalue())


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


def key_for(day: str, measurement: str = "field6", site: str = "000001") -> str:
    return f"archive/{measurement}/site_id={site}/date={day}/{measurement}-{site}-{day}.parquet"


def columns_of(glue, table: str = "field6") -> list[tuple[str, str]]:
    sd = glue.get_table(DatabaseName=DATABASE, Name=table)["Table"]["StorageDescriptor"]
    return [(c["Name"], c["Type"]) for c in sd["Columns"]]


def partitions_of(glue, table: str = "field6") -> dict[tuple[str, ...], dict]:
    parts = glue.get_partitions(DatabaseName=DATABASE, TableName=table)["Partitions"]
    return {tuple(p["Values"]): p for p in parts}


BASE_COLUMNS = [
    ("time", "timestamp"),
    ("device", "string"),
    ("service_id", "string"),
    ("voltage", "double"),
    ("run", "boolean"),
]


def test_new_object_creates_table_and_partition(aws):
    s3, glue = aws
    key = key_for("2024-05-01")
    put_parquet(s3, key, archive_table(dt.date(2024, 5, 1)))

    result = upload.handler(object_created(key), None)

    assert result["created"] == 1
    table = glue.get_table(DatabaseName=DATABASE, Name="field6")["Table"]
    # site_id is in the file but is a partition key: Athena rejects a column repeated
    # as a partition key, so its value comes from the path only.
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


def test_second_day_adds_a_partition(aws):
    s3, glue = aws
    first, second = key_for("2024-05-01"), key_for("2024-05-02")
    put_parquet(s3, first, archive_table(dt.date(2024, 5, 1)))
    put_parquet(s3, second, archive_table(dt.date(2024, 5, 2)))

    upload.handler(object_created(first), None)
    upload.handler(object_created(second), None)

    assert set(partitions_of(glue)) == {("000001", "2024-05-01"), ("000001", "2024-05-02")}
    assert columns_of(glue) == BASE_COLUMNS


def test_extra_column_widens_the_table(aws):
    s3, glue = aws
    first, second = key_for("2024-05-01"), key_for("2024-05-02")
    put_parquet(s3, first, archive_table(dt.date(2024, 5, 1)))
    put_parquet(s3, second, archive_table(dt.date(2024, 5, 2), current=[16.0, 16.5], fault=[False, True]))
    upload.handler(object_created(first), None)

    upload.handler(object_created(second), None)

    assert columns_of(glue) == BASE_COLUMNS + [("current", "double"), ("fault", "boolean")]
    new_partition = partitions_of(glue)[("000001", "2024-05-02")]["StorageDescriptor"]
    assert [c["Name"] for c in new_partition["Columns"]][-2:] == ["current", "fault"]


def test_older_file_with_fewer_columns_never_narrows_the_table(aws):
    s3, glue = aws
    wide, narrow = key_for("2024-05-02"), key_for("2024-05-01")
    put_parquet(s3, wide, archive_table(dt.date(2024, 5, 2), current=[16.0, 16.5]))
    put_parquet(s3, narrow, archive_table(dt.date(2024, 5, 1)))

    upload.handler(object_created(wide), None)
    upload.handler(object_created(narrow), None)

    assert columns_of(glue) == BASE_COLUMNS + [("current", "double")]


def test_replaced_file_with_a_new_column_updates_its_existing_partition(aws):
    """Archiving a day again replaces its file (deterministic name); if the new file
    has a new column, the existing partition catches up with the table."""
    s3, glue = aws
    key = key_for("2024-05-01")
    put_parquet(s3, key, archive_table(dt.date(2024, 5, 1)))
    upload.handler(object_created(key), None)
    put_parquet(s3, key, archive_table(dt.date(2024, 5, 1), current=[1.0, 2.0]))

    result = upload.handler(object_created(key), None)

    assert result["updated"] == 1
    sd = partitions_of(glue)[("000001", "2024-05-01")]["StorageDescriptor"]
    assert [c["Name"] for c in sd["Columns"]][-1] == "current"


def test_duplicate_event_is_a_no_op(aws):
    s3, glue = aws
    key = key_for("2024-05-01")
    put_parquet(s3, key, archive_table(dt.date(2024, 5, 1)))
    event = object_created(key)
    upload.handler(event, None)
    versions_before = glue.get_table_versions(DatabaseName=DATABASE, TableName="field6")["TableVersions"]

    result = upload.handler(event, None)
    again = upload.handler(object_created(key, key), None)  # duplicated inside one event too

    assert result == {"created": 0, "updated": 0, "exists": 1, "ignored": 0}
    assert again["exists"] == 2
    assert list(partitions_of(glue)) == [("000001", "2024-05-01")]
    versions_after = glue.get_table_versions(DatabaseName=DATABASE, TableName="field6")["TableVersions"]
    assert len(versions_after) == len(versions_before)
    assert columns_of(glue) == BASE_COLUMNS


def test_measurements_get_their_own_tables_and_keys_are_decoded(aws):
    """S3 URL-encodes keys in events; the archiver Hive-escapes path segments
    ('/' in a site id is '%2F'): the catalog holds the plain value, the location the
    key's own segment."""
    s3, glue = aws
    racks = key_for("2024-05-01", measurement="field1_racks", site="campus north%2F2")
    put_parquet(s3, racks, archive_table(dt.date(2024, 5, 1), rack=["1", "1"]))

    upload.handler(object_created(racks), None)

    partitions = partitions_of(glue, "field1_racks")
    assert list(partitions) == [("campus north/2", "2024-05-01")]
    loc = partitions[("campus north/2", "2024-05-01")]["StorageDescriptor"]["Location"]
    assert loc == f"s3://{BUCKET}/archive/field1_racks/site_id=campus north%2F2/date=2024-05-01/"
    assert ("rack", "string") in columns_of(glue, "field1_racks")


@pytest.mark.parametrize(
    "key",
    [
        "athena-results/abc.parquet",
        "archive/field6/2024-05-01/file.parquet",
        "archive/field6/site_id=000001/date=2024-13-01/file.parquet",
        "archive/field6/site_id=000001/date=20240501/file.parquet",
        "archive/field6/site_id=000001/date=2024-05-01/extra/file.parquet",
        "archive/field-6!/site_id=000001/date=2024-05-01/file.parquet",
    ],
)
def test_key_outside_the_layout_is_logged_and_ignored(aws, caplog, key):
    s3, glue = aws
    put_parquet(s3, key, archive_table(dt.date(2024, 5, 1)))

    with caplog.at_level(logging.WARNING, logger="upload"):
        result = upload.handler(object_created(key), None)

    assert result["ignored"] == 1
    assert glue.get_tables(DatabaseName=DATABASE)["TableList"] == []
    [record] = [r for r in caplog.records if r.getMessage().startswith("object ignored")]
    assert record.key == key and record.reason


def test_object_that_is_not_parquet_is_logged_and_ignored(aws, caplog):
    s3, glue = aws
    bad = key_for("2024-05-01")
    s3.put_object(Bucket=BUCKET, Key=bad, Body=b"this is not parquet")
    good = key_for("2024-05-02")
    put_parquet(s3, good, archive_table(dt.date(2024, 5, 2)))

    with caplog.at_level(logging.WARNING, logger="upload"):
        result = upload.handler(object_created(bad, good), None)

    assert result == {"created": 1, "updated": 0, "exists": 0, "ignored": 1}
    assert list(partitions_of(glue)) == [("000001", "2024-05-02")]
    assert any("not a readable Parquet file" in r.getMessage() for r in caplog.records)


def test_object_already_gone_is_ignored(aws):
    s3, glue = aws
    result = upload.handler(object_created(key_for("2024-05-01")), None)
    assert result["ignored"] == 1


def test_footer_larger_than_the_first_ranged_get(aws):
    s3, glue = aws
    key = key_for("2024-05-01")
    many = {f"sensor_{i:04d}_with_a_long_descriptive_name": [1.0, 2.0] for i in range(1500)}
    put_parquet(s3, key, archive_table(dt.date(2024, 5, 1), **many))
    obj = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert int.from_bytes(obj[-8:-4], "little") > upload.TAIL_BYTES  # the case under test

    upload.handler(object_created(key), None)

    assert len(columns_of(glue)) == len(BASE_COLUMNS) + 1500


def test_type_change_keeps_the_table_type(aws, caplog):
    s3, glue = aws
    first, second = key_for("2024-05-01"), key_for("2024-05-02")
    put_parquet(s3, first, archive_table(dt.date(2024, 5, 1)))
    put_parquet(s3, second, archive_table(dt.date(2024, 5, 2)).set_column(4, "voltage", pa.array([1, 2])))
    upload.handler(object_created(first), None)

    with caplog.at_level(logging.WARNING, logger="upload"):
        upload.handler(object_created(second), None)

    assert ("voltage", "double") in columns_of(glue)
    assert any(getattr(r, "conflicts", None) == ["voltage: double <- bigint"] for r in caplog.records)


def test_non_create_events_are_skipped(aws):
    s3, glue = aws
    event = object_created(key_for("2024-05-01"))
    event["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    assert upload.handler(event, None) == {"created": 0, "updated": 0, "exists": 0, "ignored": 0}
