"""Every number and boolean of a BMS-style document reaches InfluxDB through the real
services (RabbitMQ -> bridge -> parse -> sink), and what cannot be stored (a
duplicate id, a name nothing is left of) is in the DLQ as ``partial`` with its path."""

from __future__ import annotations

import json

from edge.core.dlq import header_map
from tests.support import influx
from tests.support.kafka import read_all
from tests.support.pipeline import STAGES, pipeline, scrape, value  # noqa: F401 (fixture)
from tests.support.processes import wait_for
from tests.test_parser_dst_pipeline import metric, publish

TIME_NS = 1_686_342_846 * 10**9

DOCUMENT = {
    "header": {"site_id": "000001", "timestamp": "2023-06-09 20:34:06"},
    "FieldDeviceLayer": {
        "field1": {
            "Name": "Battery",
            "service": [
                {
                    "id": "1",
                    "soc": 31.5,
                    "cell_voltage": [3.31, 3.32, 3.33],
                    "balancing": [True, False],
                    "limits": {"index": 1, "charge": {"max_a": 100, "ok": True}},
                    "racks": [{"index": 1, "temps": [25.5, 26.0]}],
                    "\\": 9.0,
                },
                {"id": "01", "soc": 99.0},  # the same series and time as id "1"
            ],
        }
    },
}

EXPECTED = {
    ("field1", ()): {"soc": 31.5, "cell_voltage_0": 3.31, "cell_voltage_1": 3.32, "cell_voltage_2": 3.33,
                     "balancing_0": True, "balancing_1": False},
    ("field1_limits", (("limits_index", "1"),)): {"charge_max_a": 100.0, "charge_ok": True},
    ("field1_racks", (("racks_index", "1"),)): {"temps_0": 25.5, "temps_1": 26.0},
}


def test_lists_and_deep_objects_reach_influxdb_and_the_rest_is_in_the_dlq(pipeline):
    p = pipeline
    for stage in STAGES:
        p.start(stage)
    body = json.dumps(DOCUMENT).encode()
    publish(p.amqp, [(body, None)])

    wait_for(lambda: metric(p.ports["parse"], "edge_parser_messages_total") == 1, 120, what="the message parsed")
    produced = value(scrape(p.ports["parse"]), "edge_parser_points_total")
    wait_for(lambda: metric(p.ports["sink"], "edge_sink_lines_written_total") == produced, 60,
             what=f"the sink wrote the {produced} points")

    stored = {}
    for measurement in ("field1", "field1_limits", "field1_racks"):
        for row in influx.rows(p.url, p.db, measurement):
            assert row.pop("time") == TIME_NS
            tags = {k: row.pop(k) for k in ("device", "service_id", "site_id", "limits_index", "racks_index")
                    if k in row}
            assert tags.pop("device") == "Battery" and tags.pop("service_id") == "1" and tags.pop("site_id") == "000001"
            key = (measurement, tuple(sorted((k, v) for k, v in tags.items() if v is not None)))
            stored[key] = {k: v for k, v in row.items() if v is not None}
    assert stored.keys() == EXPECTED.keys()
    for key, fields in EXPECTED.items():
        assert stored[key] == fields, key
        assert all(type(stored[key][k]) is bool for k, v in fields.items() if isinstance(v, bool))
    assert p.points() == 3

    [dead] = wait_for(lambda: read_all(p.kafka, p.kafka.dlq_topic, idle=0.5), 30, what="the partial record")
    headers = header_map(dead.headers())
    assert dead.value() == body
    assert headers["dlq.reason"] == b"partial"
    error = headers["dlq.error"].decode()
    assert 'duplicate_series: FieldDeviceLayer.field1.service[1] (id "01")' in error
    assert 'FieldDeviceLayer.field1.service[0] (id "1")' in error
    assert 'FieldDeviceLayer.field1.service[0]["\\\\"]: not stored' in error
    metrics = scrape(p.ports["parse"])
    assert value(metrics, "edge_parser_duplicate_points_total") == 1
    assert value(metrics, "edge_parser_unusable_readings_total") == 1
