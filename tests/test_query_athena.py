"""``edge query`` against Athena, with moto standing in for Athena and S3.

moto runs no SQL: a query's result rows are queued through moto's documented API
(``/moto-api/static/athena/query-results``) and moto writes them to the result
location as CSV. moto 5 never fails a query by itself, so the failure tests teach
moto's GetQueryExecution to answer as Athena does for a failed query (State FAILED,
StateChangeReason, AthenaError); our code under test is untouched.
"""

from __future__ import annotations

import json

import boto3
import pytest
import requests
from moto import mock_aws
from moto.athena.models import athena_backends
from moto.athena.responses import AthenaResponse
from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_api import state_manager

from edge import cli

REGION = "us-east-1"
BUCKET = "microgrid-archive-test"
RESULTS = f"s3://{BUCKET}/athena-results/"
WORKGROUP = "microgrid"
MOTO_RESULTS_API = "http://motoapi.amazonaws.com/moto-api/static/athena/query-results"


@pytest.fixture
def aws(monkeypatch, tmp_path):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "EDGE_CONFIG": "",
        "EDGE_ATHENA__REGION": REGION,
        "EDGE_ATHENA__WORKGROUP": WORKGROUP,
        "EDGE_ATHENA__DATABASE": "microgrid",
        # moto does not apply a workgroup's result location; Athena would.
        "EDGE_ATHENA__OUTPUT_LOCATION": RESULTS,
        "EDGE_ATHENA__POLL_INITIAL_S": "0.01",
        "EDGE_ATHENA__POLL_MAX_S": "0.05",
        "EDGE_LOG__FORMAT": "json",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        boto3.client("athena", region_name=REGION).create_work_group(
            Name=WORKGROUP,
            Configuration={
                "ResultConfiguration": {"OutputLocation": RESULTS},
                "EnforceWorkGroupConfiguration": True,
            },
        )
        yield s3


def queue_result(rows: list[list[str]]) -> None:
    payload = {
        "region": REGION,
        "results": [
            {
                "rows": [{"Data": [{"VarCharValue": v} for v in row]} for row in rows],
                "column_info": [{"Name": name, "Type": "varchar"} for name in rows[0]],
            }
        ],
    }
    assert requests.post(MOTO_RESULTS_API, json=payload, timeout=10).status_code == 201


def executions() -> dict:
    return athena_backends[DEFAULT_ACCOUNT_ID][REGION].executions


def test_success_writes_the_csv_and_prints_its_s3_location(aws, tmp_path, capsys):
    queue_result([["site_id", "n"], ["000001", "86400"], ["000002", "86399"]])
    out = tmp_path / "result.csv"

    code = cli.main(["query", 'SELECT site_id, count(*) AS n FROM field6 GROUP BY site_id', "--out", str(out)])

    assert code == 0
    stdout = capsys.readouterr().out.strip()
    [(qid, execution)] = executions().items()
    assert stdout == f"{RESULTS}{qid}.csv"
    assert execution.workgroup.name == WORKGROUP
    assert execution.context == {"Database": "microgrid"}
    assert out.read_text() == '"site_id","n"\n"000001","86400"\n"000002","86399"\n'
    assert not list(tmp_path.glob(".*.part"))


def test_without_out_the_csv_goes_to_stdout_and_the_location_to_stderr(aws, capfd):
    queue_result([["x"], ["1"]])

    code = cli.main(["query", "SELECT 1 AS x"])

    captured = capfd.readouterr()
    assert code == 0
    assert captured.out == '"x"\n"1"\n'
    assert f"{RESULTS}" in captured.err


@pytest.fixture
def athena_fails_queries(monkeypatch):
    """moto answers GetQueryExecution for queries mentioning ``no_such_table`` as
    Athena answers for a failed (or cancelled) query."""
    outcome = {"state": "FAILED", "reason": "TABLE_NOT_FOUND: line 1:15: Table 'awsdatacatalog.microgrid.no_such_table' does not exist"}
    original = AthenaResponse.get_query_execution

    def get_query_execution(self):
        body = json.loads(original(self))
        execution = body["QueryExecution"]
        if "no_such_table" in execution["Query"]:
            execution["Status"]["State"] = outcome["state"]
            execution["Status"]["StateChangeReason"] = outcome["reason"]
            execution["Status"]["AthenaError"] = {"ErrorCategory": 2, "ErrorType": 1301, "Retryable": False, "ErrorMessage": outcome["reason"]}
        return json.dumps(body)

    monkeypatch.setattr(AthenaResponse, "get_query_execution", get_query_execution)
    return outcome


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ("FAILED", "TABLE_NOT_FOUND: line 1:15: Table 'awsdatacatalog.microgrid.no_such_table' does not exist"),
        ("CANCELLED", "Query cancelled by user"),
    ],
)
def test_failed_or_cancelled_query_exits_non_zero_with_athenas_reason(aws, athena_fails_queries, tmp_path, capsys, state, reason):
    athena_fails_queries.update(state=state, reason=reason)
    out = tmp_path / "result.csv"

    code = cli.main(["query", "SELECT * FROM no_such_table", "--out", str(out)])

    assert code == 1
    err = capsys.readouterr().err
    assert f"{state}: {reason}" in err
    assert not out.exists()


def test_timeout_stops_the_query_and_exits_non_zero(aws, tmp_path, capsys):
    # Keep every execution QUEUED: moto advances a state only after a million polls.
    state_manager.set_transition(model_name="athena::execution", transition={"progression": "manual", "times": 10**6})
    try:
        code = cli.main(["query", "SELECT * FROM field6", "--timeout", "0.3", "--out", str(tmp_path / "r.csv")])
    finally:
        state_manager.unset_transition(model_name="athena::execution")

    assert code == 1  # the query failed (3 means a settings problem: README, "Exit codes")
    assert "stopped" in capsys.readouterr().err
    [execution] = executions().values()
    assert execution.status == "CANCELLED"  # StopQueryExecution was sent
    assert not (tmp_path / "r.csv").exists()


def test_missing_workgroup_is_said_plainly(aws, monkeypatch, capsys):
    monkeypatch.setenv("EDGE_ATHENA__WORKGROUP", "no-such-workgroup")

    code = cli.main(["query", "SELECT 1"])

    assert code == 5
    assert capsys.readouterr().err == (
        "edge query: Athena workgroup no-such-workgroup does not exist in us-east-1 ([athena] workgroup, or --workgroup)\n")


def test_aws_refusing_is_an_unreachable_hop(aws, monkeypatch, capsys):
    monkeypatch.setenv("EDGE_ATHENA__ENDPOINT_URL", "http://127.0.0.1:1")

    code = cli.main(["query", "SELECT 1"])

    assert code == 4
    assert capsys.readouterr().err.startswith("edge query: AWS: cannot reach http://127.0.0.1:1")


def test_missing_aws_credentials_are_a_configuration_error(aws, monkeypatch, tmp_path, capsys):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    code = cli.main(["query", "SELECT 1"])

    assert code == 3
    err = capsys.readouterr().err
    assert err.startswith("edge query: AWS: no usable credentials (Unable to locate credentials); set one of")
    assert "AWS_SHARED_CREDENTIALS_FILE" in err


def test_local_mode_queries_the_local_archive_without_aws(tmp_path, monkeypatch, capsys):
    """``--local`` hands the SQL to DuckDB over the archive directory; no AWS call."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.setenv("EDGE_CONFIG", "")
    part = tmp_path / "archive" / "field6" / "site_id=000001" / "date=2024-05-01"
    part.mkdir(parents=True)
    start = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    pq.write_table(
        pa.table({"time": pa.array([start, start + dt.timedelta(seconds=1)], pa.timestamp("us", tz="UTC")), "voltage": [229.5, 230.5]}),
        part / "part-00000.parquet",
    )
    out = tmp_path / "local.csv"

    code = cli.main(
        ["query", "--local", "--archive-dir", str(tmp_path / "archive"), "--out", str(out),
         "SELECT site_id, count(*) AS n, max(voltage) AS v FROM field6 GROUP BY site_id"]
    )

    assert code == 0
    assert out.read_text().splitlines() == ["site_id,n,v", "000001,2,230.5"]


def _archive_with_field6(root) -> None:
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    part = root / "field6" / "site_id=000001" / "date=2024-05-01"
    part.mkdir(parents=True)
    start = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    pq.write_table(pa.table({"time": pa.array([start], pa.timestamp("us", tz="UTC")), "voltage": [229.5]}),
                   part / "part-00000.parquet")


def test_local_mode_names_the_directory_and_its_tables_when_a_table_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDGE_CONFIG", "")
    archive = tmp_path / "archive"
    _archive_with_field6(archive)

    code = cli.main(["query", "--local", "--archive-dir", str(archive), "SELECT count(*) FROM field1"])

    assert code == 5
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"edge query: archive {archive} (tables: field6)",
        f"edge query: no table field1 in the archive at {archive} (tables there: field6)",
    ]

    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["query", "--local", "--archive-dir", str(empty), "SELECT * FROM field1"]) == 5
    assert f"no table field1 in the archive at {empty} (it holds no Parquet files)" in capsys.readouterr().err

    assert cli.main(["query", "--local", "--archive-dir", str(tmp_path / "nope"), "SELECT 1"]) == 5
    assert f"edge query: archive directory {tmp_path / 'nope'} does not exist" in capsys.readouterr().err

    assert cli.main(["query", "--local", "--archive-dir", str(archive), "SELEC 1"]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        'edge query: Parser Error: syntax error at or near "SELEC"')


def test_out_into_a_missing_directory_is_refused_before_the_query_runs(aws, tmp_path, capsys):
    code = cli.main(["query", "SELECT 1", "--out", str(tmp_path / "nope" / "r.csv")])

    assert code == 2
    assert capsys.readouterr().err == f"edge query: --out {tmp_path}/nope/r.csv: directory {tmp_path}/nope does not exist\n"
    assert executions() == {}  # nothing was sent to Athena
