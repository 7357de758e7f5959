"""Grafana provisioning: the dashboards load, every query names what exists (a
measurement, field and tag the parser produces for sample.json, or a metric the
services export), and every datasource reference resolves to a provisioned uid."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from edge.parser import to_lines
from tests.support.lineproto import read_line

GRAFANA = Path(__file__).resolve().parent.parent / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))

_FROM = re.compile(r'\bFROM\s+"([^"]+)"', re.IGNORECASE)
_SELECTED = re.compile(r'\b(?:mean|max|min|last|sum|count|median)\("([^"]+)"\)', re.IGNORECASE)
_WHERE_TAG = re.compile(r'"([^"]+)"\s*=~')
_GROUP = re.compile(r"GROUP BY (.*?)(?: fill\(|$)", re.IGNORECASE)
_SHOW_TAG = re.compile(r'SHOW TAG VALUES(?: FROM "([^"]+)")? WITH KEY = "([^"]+)"', re.IGNORECASE)
_METRIC = re.compile(r"\b(edge_[a-z0-9_]+)\b")


@pytest.fixture(scope="module")
def data_model(sample_bytes) -> dict[str, dict[str, set[str]]]:
    """measurement -> {"fields": ..., "tags": ...} from the parser's output for sample.json."""
    model: dict[str, dict[str, set[str]]] = {}
    for line in to_lines(sample_bytes):
        point = read_line(line)
        entry = model.setdefault(point.measurement, {"fields": set(), "tags": set()})
        entry["fields"] |= set(point.fields)
        entry["tags"] |= set(point.tags)
    return model


@pytest.fixture(scope="module")
def exported_metrics() -> set[str]:
    """Every sample name the services' prometheus_client registry exposes."""
    import edge.archive.archiver  # noqa: F401
    import edge.bridge.stage  # noqa: F401
    import edge.parser.stage  # noqa: F401
    import edge.sink.stage  # noqa: F401
    from prometheus_client import REGISTRY

    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names |= {sample.name for sample in family.samples}
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_sum", "_count")}
    return {n for n in names if n.startswith("edge_")}


DATASOURCES = GRAFANA / "provisioning" / "datasources" / "edge.yaml"
_VARIABLE = re.compile(r"^\$\{(\w+)\}$")


@pytest.fixture(scope="module")
def datasources() -> dict[str, str]:
    provisioned = yaml.safe_load(DATASOURCES.read_text())
    assert provisioned["apiVersion"] == 1
    return {ds["uid"]: ds["type"] for ds in provisioned["datasources"]}


def _example_node_datasource() -> dict:
    """The commented data source of a second InfluxDB node, as an operator uncomments it."""
    lines = DATASOURCES.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  # - name: Microgrid InfluxDB "))
    block = []
    for line in lines[start:]:
        if not line.startswith("  #"):
            break
        block.append(line.replace("  # ", "  ", 1).replace("  #", "", 1))
    (example,) = yaml.safe_load("\n".join(block))
    return example


def _panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def _datasource_refs(dashboard: dict):
    for panel in _panels(dashboard):
        yield panel["title"], panel.get("datasource")
        for target in panel.get("targets", []):
            yield f"{panel['title']} / {target['refId']}", target.get("datasource")
    for var in dashboard.get("templating", {}).get("list", []):
        if "datasource" in var:
            yield f"variable {var['name']}", var["datasource"]


def test_there_are_the_two_dashboards_and_their_provider():
    assert [p.name for p in DASHBOARDS] == ["microgrid.json", "pipeline-health.json"]
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "edge.yaml").read_text())
    assert provider["apiVersion"] == 1 and provider["providers"][0]["type"] == "file"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_loads_and_its_datasources_resolve(path, datasources):
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and dashboard["title"] and _panels(dashboard)
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
    for where, ref in _datasource_refs(dashboard):
        assert isinstance(ref, dict), f"{path.name}: {where}: {ref}"
        uid = ref.get("uid")
        chosen = _VARIABLE.match(uid or "")
        if chosen:  # a data source variable: of this type, its default one provisioned
            var = variables.get(chosen.group(1))
            assert var and var["type"] == "datasource" and var["query"] == ref.get("type"), f"{path.name}: {where}"
            uid = var["current"]["value"]
        assert uid in datasources, f"{path.name}: {where}: {ref}"
        assert ref.get("type") == datasources[uid], f"{path.name}: {where}: type {ref}"
    for panel in _panels(dashboard):
        assert panel.get("targets"), f"{path.name}: {panel['title']} has no query"


def test_every_influxql_query_names_a_measurement_field_and_tag_of_the_data_model(data_model):
    dashboard = json.loads((GRAFANA / "dashboards" / "microgrid.json").read_text())
    checked = 0
    for panel in _panels(dashboard):
        for target in panel["targets"]:
            query = target["query"]
            measurements = _FROM.findall(query)
            fields = _SELECTED.findall(query)
            assert measurements and fields, f"{panel['title']}: {query}"
            for measurement in measurements:
                assert measurement in data_model, f"{panel['title']}: no measurement {measurement}"
                for field in fields:
                    assert field in data_model[measurement]["fields"], f"{panel['title']}: {measurement}.{field}"
                tags = set(_WHERE_TAG.findall(query))
                group = _GROUP.search(query)
                tags |= set(re.findall(r'"([^"]+)"', group.group(1))) if group else set()
                assert tags <= data_model[measurement]["tags"], f"{panel['title']}: tags {tags}"
                assert {"site_id", "service_id"} <= tags, f"{panel['title']}: per site and service"
                checked += 1
    for var in dashboard["templating"]["list"]:
        if var["type"] == "datasource":  # the node variable: checked by its own test
            continue
        measurement, key = _SHOW_TAG.search(var["query"]).groups()
        assert any(key in m["tags"] for name, m in data_model.items() if measurement in (None, name)), var
    # The panels the operators asked for are there.
    titles = " | ".join(p["title"] for p in _panels(dashboard)).lower()
    for wanted in ("state of charge", "cell voltages", "pv generation", "ev charger", "converter", "temperature"):
        assert wanted in titles, wanted
    assert checked >= 10


def test_every_promql_query_names_an_exported_metric(exported_metrics):
    dashboard = json.loads((GRAFANA / "dashboards" / "pipeline-health.json").read_text())
    used: set[str] = set()
    for panel in _panels(dashboard):
        for target in panel["targets"]:
            metrics = set(_METRIC.findall(target["expr"]))
            assert metrics, f"{panel['title']}: {target['expr']}"
            missing = metrics - exported_metrics
            assert not missing, f"{panel['title']}: not exported: {missing}"
            used |= metrics
    for var in dashboard["templating"]["list"]:
        assert set(_METRIC.findall(var["query"]["query"])) <= exported_metrics
    titles = " | ".join(p["title"] for p in _panels(dashboard)).lower()
    for wanted in ("throughput", "lag", "dead-lettered", "retries", "last success", "site status"):
        assert wanted in titles, wanted
    for family in ("edge_parser_consumer_lag", "edge_sink_consumer_lag", "edge_parser_dlq_records_total",
                   "edge_sink_dlq_records_total", "edge_sink_write_retries_total", "edge_sink_write_seconds_bucket",
                   "edge_parser_site_last_seen_timestamp_seconds"):
        assert family in used, family


def test_site_status_shows_last_seen_per_site_as_the_site_silent_alert_measures_it():
    dashboard = json.loads((GRAFANA / "dashboards" / "pipeline-health.json").read_text())
    panel = next(p for p in _panels(dashboard) if p["title"].lower().startswith("site status"))
    (target,) = [t for t in panel["targets"] if not t.get("hide")]
    assert "by (site_id)" in target["expr"] and "{{site_id}}" in target["legendFormat"]
    assert panel["fieldConfig"]["defaults"]["unit"] == "s"
    alerts = yaml.safe_load((GRAFANA.parent / "prometheus" / "alerts.yml").read_text())
    silent = next(r for g in alerts["groups"] for r in g["rules"] if r["alert"] == "SiteSilent")
    # The same measure as the alert (the dashboard adds only its instance filter), red at its threshold.
    assert target["expr"].replace('{instance=~"$instance"}', "") == silent["expr"].rsplit(" > ", 1)[0]
    red = [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"] if s["color"] == "red"]
    assert red == [float(silent["expr"].rsplit(" > ", 1)[1])]


def test_the_influxdb_node_is_picked_by_a_variable_over_every_nodes_data_source():
    """Several InfluxDB nodes: every InfluxQL panel and variable reads the data
    source of the "node" variable; it lists the provisioned node and each one
    added as the provisioning file's commented example says (and no other)."""
    dashboard = json.loads((GRAFANA / "dashboards" / "microgrid.json").read_text())
    refs = list(_datasource_refs(dashboard))
    assert refs and all(ref == {"type": "influxdb", "uid": "${node}"} for _where, ref in refs), refs
    node = next(v for v in dashboard["templating"]["list"] if v["name"] == "node")
    assert dashboard["templating"]["list"][0] is node  # before the variables that read through it
    assert (node["type"], node["query"], node["multi"], node["includeAll"]) == ("datasource", "influxdb", False, False)
    picks = re.compile(node["regex"].strip("/"))
    provisioned = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    influx = [ds for ds in provisioned if ds["type"] == "influxdb"]
    assert [ds["uid"] for ds in influx] == [node["current"]["value"]] and picks.search(influx[0]["name"])
    example = _example_node_datasource()
    assert example["type"] == "influxdb" and picks.search(example["name"])
    assert example["uid"] not in {ds["uid"] for ds in provisioned}
    assert {k: v for k, v in example.items() if k not in ("name", "uid", "url")} == \
        {k: v for k, v in influx[0].items() if k not in ("name", "uid", "url")}
    assert not picks.search("Edge Prometheus")
