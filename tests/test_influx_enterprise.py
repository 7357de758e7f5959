"""The InfluxDB client is correct against InfluxDB Enterprise (issue 22, item 4):
``consistency=`` on every write, a 500 read as "may have landed" and retried, a
DELETE answering "partial success" sent again until it succeeds.

Enterprise needs a licence, so it cannot run here: what OSS can show runs against
the real OSS nodes (the parameter reaches the server, a batch written twice is
stored once, the retried DELETE removes exactly its window); Enterprise's own
answers are its documented wording, fed to the pure classifiers.
"""

from __future__ import annotations

from datetime import date

import pydantic
import pytest
from structlog.testing import capture_logs

from edge.archive import influxql
from edge.archive.export import InfluxArchiveSource, _refused
from edge.archive.windows import Window, day_start_ns
from edge.core.errors import NotFoundError
from edge.config.settings import InfluxSettings
from edge.influx.answers import Outcome, WriteResult, classify, delete_incomplete
from edge.influx.client import InfluxClient
from tests.support import influx

# Enterprise's answer when the write reached fewer replicas than asked (as quoted
# in influxdata/influxdb-client-python#571) and its cluster write errors.
HINTED_HANDOFF_500 = "write failed: hinted handoff queue not empty"


def test_a_500_or_no_answer_may_have_landed_and_is_written_again():
    for status, message in [(500, HINTED_HANDOFF_500), (500, "partial write"), (500, "timeout"),
                            (503, "service unavailable")]:
        result = classify(status, message)
        assert result.outcome is Outcome.RETRY and result.may_have_landed, (status, message)
    assert WriteResult(Outcome.RETRY, None, "ReadTimeout: read timed out").may_have_landed
    # Refusals are not "may have landed": a 400 is a verdict, a 401 is never stored.
    assert not classify(400, "unable to parse 'x': missing fields").may_have_landed
    assert not classify(401, "authorization failed").may_have_landed
    assert not classify(404, "database not found: \"x\"").may_have_landed
    assert not classify(204, "").may_have_landed


def test_a_batch_written_twice_is_stored_once(local_services, names):
    # Why retrying a "may have landed" 500 is safe: a point is its measurement,
    # tags and timestamp, so the second write overwrites it with the same values.
    settings = InfluxSettings(database=names["database"])
    client = InfluxClient(settings)
    body = b"\n".join(f"power,site_id=s{i % 3} p={i}.5,q={i}i {1_700_000_000_000_000_000 + i}".encode()
                      for i in range(300))
    try:
        assert client.ensure_database().ok
        assert client.write(body).ok
        first = influx.rows(settings.url, settings.database, "power")
        assert client.write(body).ok
        assert influx.count_points(settings.url, settings.database) == 300
        assert influx.rows(settings.url, settings.database, "power") == first
    finally:
        influx.execute(settings.url, f'DROP DATABASE "{names["database"]}"')
        client.close()


def test_consistency_is_a_choice_of_four_and_unset_sends_nothing():
    assert "consistency" not in InfluxClient(InfluxSettings()).write_params
    for level in ("any", "one", "quorum", "all"):
        assert InfluxClient(InfluxSettings(consistency=level)).write_params["consistency"] == level
    with pytest.raises(pydantic.ValidationError):
        InfluxSettings(consistency="most")


def test_consistency_reaches_every_node_and_oss_accepts_it(influx_nodes, names):
    for node in influx_nodes[1:]:  # the two extra nodes of devtools.services
        settings = node.model_copy(update={"database": names["database"], "consistency": "all"})
        client = InfluxClient(settings)
        try:
            assert client.ensure_database().ok
            assert client.write(b"power,site_id=a p=1.0 1700000000000000000").ok
            assert influx.count_points(node.url, names["database"]) == 1
            # The server reads the parameter: a level it does not know is refused
            # (model_copy skips validation, as a hand-made request would).
            bogus = InfluxClient(settings.model_copy(update={"consistency": "most"}))
            refused = bogus.write(b"power,site_id=a p=2.0 1700000000000000001")
            assert (refused.outcome, refused.status, refused.error) == (Outcome.REJECTED, 400,
                                                                         "invalid consistency level")
            bogus.close()
        finally:
            influx.execute(node.url, f'DROP DATABASE "{names["database"]}"')
            client.close()


def test_partial_success_is_what_marks_an_incomplete_delete():
    assert delete_incomplete("partial success: delete did not reach data node 3")
    assert delete_incomplete("influxdb: 500 Partial Success (1 of 2 data nodes)")
    for message in ("engine is closed", 'database not found: "x"', "error parsing query: found EOF",
                    "influxdb: 500 timeout", 'partial write: field type conflict: input field "p"'):
        assert not delete_incomplete(message), message


def _two_sites(settings: InfluxSettings) -> Window:
    day = date(2024, 3, 1)
    lines = [f"power,site_id={site} p={i}.0 {day_start_ns(day) + i * 60_000_000_000}"
             for site in ("a", "b") for i in range(10)]
    client = InfluxClient(settings)
    assert client.ensure_database().ok
    assert client.write("\n".join(lines).encode()).ok
    client.close()
    return Window(measurement="power", day=day, site_id="a", retention_policy="autogen")


def test_a_partial_delete_is_sent_again_until_it_succeeds(local_services, names):
    settings = InfluxSettings(database=names["database"])
    window = _two_sites(settings)
    source = InfluxArchiveSource(settings)
    source.delete_retry_initial_s, source.delete_retry_max_s = 0.01, 0.02
    real_statement, sent = source._statement, []

    def enterprise_with_a_node_down(statement: str, method: str):
        # Twice what Enterprise answers while a data node is down (through the
        # same path as InfluxDB's own error text); then the real OSS DELETE.
        sent.append(statement)
        if len(sent) <= 2:
            raise _refused(settings, None, "partial success: delete did not reach data node 3")
        return real_statement(statement, method)

    source._statement = enterprise_with_a_node_down
    try:
        with capture_logs() as logs:
            source.delete(window)
        assert sent == [influxql.delete_window(window)] * 3
        partial = [e for e in logs if e["event"] == "influx_delete_partial"]
        assert [e["attempt"] for e in partial] == [1, 2]
        assert all(e["log_level"] == "warning" and e["window"] == window.label() and
                   "partial success" in e["error"] and e["retry_in_s"] <= 0.02 for e in partial)
        # The window is gone, the other site's day is untouched.
        assert source.window_counts(window) == {}
        assert source.window_counts(Window("power", window.day, "b", "autogen")) == {"p": 10}
    finally:
        source.close()
        influx.execute(settings.url, f'DROP DATABASE "{names["database"]}"')


def test_another_delete_error_is_not_retried(local_services, names):
    settings = InfluxSettings(database=names["database"])
    window = _two_sites(settings)
    source = InfluxArchiveSource(settings)
    source.delete_retry_initial_s = source.delete_retry_max_s = 0.01
    sent = []

    def refused(statement: str, method: str):
        sent.append(statement)
        raise _refused(settings, None, f"database not found: {names['database']}")

    source._statement = refused
    try:
        with pytest.raises(NotFoundError):
            source.delete(window)
        assert len(sent) == 1
    finally:
        source.close()
        influx.execute(settings.url, f'DROP DATABASE "{names["database"]}"')
