"""The alert rules: promtool checks and unit-tests them, they name metrics the
services export and runbook entries that exist, and SiteSilent fires in a real
Prometheus scraping a real pipeline when one site stops while another goes on."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import pika
import pytest
import yaml

from edge.simulator.messages import MessageTemplate
from tests.support.pipeline import STAGES, free_port, pipeline, scrape  # noqa: F401 (fixture)
from tests.support.processes import wait_for

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = sorted((ROOT / "deploy" / "prometheus" / "tests").glob("*.yml"))
SCRAPE = ROOT / "deploy" / "grafana" / "prometheus-scrape.yml"
OPERATIONS = ROOT / "docs" / "operations.md"
_METRIC = re.compile(r"\b(edge_[a-z0-9_]+)\b")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not installed: devtools/bootstrap.sh installs Debian's prometheus package")
    return path


def _rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def test_promtool_checks_the_rules():
    done = subprocess.run([_tool("promtool"), "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in done.stdout


def test_promtool_unit_tests_pass():
    assert RULE_TESTS
    done = subprocess.run([_tool("promtool"), "test", "rules", *map(str, RULE_TESTS)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout and "FAILED" not in done.stdout


def test_every_alert_is_wanted_and_unit_tested_both_ways():
    names = {rule["alert"] for rule in _rules()}
    assert names == {"SiteSilent", "DeadLetterQueueGrowing", "SinkNotWriting", "InfluxNodeNotTakingWrites",
                     "ConsumerLagHigh", "ArchiveNotSucceeded", "ServiceDown"}
    fires, quiet = set(), set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    assert fires == names, f"never shown firing: {names - fires}"
    assert quiet == names, f"never shown staying quiet: {names - quiet}"


def test_every_alert_has_a_summary_a_description_and_a_runbook_entry_that_exists():
    anchors = {_anchor(m) for m in re.findall(r"^#+ (.+)$", OPERATIONS.read_text(), re.MULTILINE)}
    for rule in _rules():
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], rule["alert"]
        page, _, anchor = notes["runbook_url"].partition("#")
        assert page == "docs/operations.md" and anchor in anchors, f"{rule['alert']}: {notes['runbook_url']}"
        assert rule["labels"]["severity"] in ("warning", "critical")


def _anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def test_every_metric_in_the_rules_is_exported(exported_metrics):
    used = set()
    for rule in _rules():
        used |= set(_METRIC.findall(rule["expr"]))
    assert used and used <= exported_metrics, used - exported_metrics


def test_the_scrape_configuration_is_valid_with_the_rules(tmp_path):
    config = yaml.safe_load(SCRAPE.read_text())
    config["rule_files"] = [str(ALERTS)]  # the shipped path is the operator's copy
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([_tool("promtool"), "check", "config", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    services = {t["labels"]["service"] for job in config["scrape_configs"] if job["job_name"] == "edge"
                for t in job["static_configs"]}
    assert services == {"bridge", "parser", "sink"}  # the jobs ServiceDown watches
    # Each target is on the port the service listens on by default ([metrics] ports).
    from edge.config.services import default_metrics_ports

    targets = {t["labels"]["service"]: int(target.rsplit(":", 1)[1]) for job in config["scrape_configs"]
               if job["job_name"].startswith("edge") for t in job["static_configs"] for target in t["targets"]}
    assert targets == default_metrics_ports()


@pytest.fixture(scope="module")
def exported_metrics() -> set[str]:
    import edge.archive.archiver  # noqa: F401
    import edge.bridge.stage  # noqa: F401
    import edge.parser.stage  # noqa: F401
    import edge.sink.stage  # noqa: F401
    from prometheus_client import REGISTRY

    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
    return names


# ------------------------------------------------------------------ end to end

SILENCE_S = 10  # the test's SiteSilent threshold (the shipped one is 600 s)
LIVE, SILENT = "000101", "000102"


def _rules_with_short_silence(path: Path) -> None:
    doc = yaml.safe_load(ALERTS.read_text())
    rule = next(r for g in doc["groups"] for r in g["rules"] if r["alert"] == "SiteSilent")
    assert rule["expr"].endswith("> 600"), rule["expr"]
    rule["expr"] = rule["expr"][: -len("600")] + str(SILENCE_S)
    path.write_text(yaml.safe_dump(doc))


class SitePublisher(threading.Thread):
    """Publishes one message per site every ``period`` to the pipeline's queue, each
    site with its own clock; ``stop_site`` silences one while the others go on."""

    def __init__(self, amqp, sites: list[str], period: float = 0.25):
        super().__init__(daemon=True)
        self.amqp, self.sites, self.period = amqp, list(sites), period
        self.template = MessageTemplate.load()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.published = 0

    def stop_site(self, site: str) -> None:
        self.sites = [s for s in self.sites if s != site]

    def run(self) -> None:
        try:
            connection = pika.BlockingConnection(pika.ConnectionParameters(self.amqp.host, self.amqp.port))
            channel = connection.channel()
            channel.queue_declare(self.amqp.queue, durable=True)
            channel.confirm_delivery()
            moment = datetime(2024, 6, 1)
            while not self.done.wait(self.period):
                moment += timedelta(seconds=1)
                for site in list(self.sites):
                    channel.basic_publish("", self.amqp.queue, self.template.render(site, moment),
                                          pika.BasicProperties(delivery_mode=2))
                    self.published += 1
            connection.close()
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    def close(self) -> None:
        self.done.set()
        self.join(10)


class Prometheus:
    def __init__(self, tmp_path: Path, rules: Path, targets: dict[str, int]):
        self.port = free_port()
        self.config = tmp_path / "prometheus.yml"
        self.config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [{
                "job_name": "edge",
                "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": {"service": service}}
                                   for service, port in targets.items()],
            }],
        }))
        self.log = tmp_path / "prometheus.log"
        self.data = tmp_path / "prometheus-data"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Prometheus":
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [_tool("prometheus"), f"--config.file={self.config}", f"--storage.tsdb.path={self.data}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        wait_for(self._ready, 60, what="prometheus ready")
        return self

    def _ready(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def alerts(self, name: str, state: str) -> list[dict]:
        return [a for a in self.get("/api/v1/alerts")["alerts"]
                if a["labels"].get("alertname") == name and a["state"] == state]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def test_site_silent_fires_in_prometheus_for_the_site_that_stopped(pipeline, tmp_path):
    p = pipeline
    for stage in STAGES:
        p.start(stage)
    rules = tmp_path / "alerts.yml"
    _rules_with_short_silence(rules)
    prometheus = Prometheus(tmp_path, rules, {"bridge": p.ports["bridge"], "parser": p.ports["parse"],
                                              "sink": p.ports["sink"]}).start()
    publisher = SitePublisher(p.amqp, [LIVE, SILENT])
    try:
        wait_for(lambda: {t["labels"]["service"] for t in prometheus.get("/api/v1/targets")["activeTargets"]
                          if t["health"] == "up"} == {"bridge", "parser", "sink"}, 60, what="all targets up")
        publisher.start()
        # Both sites are heard by the parser and seen by Prometheus.
        wait_for(lambda: _sites_in_prometheus(prometheus) == {LIVE, SILENT}, 90, what="both sites scraped")
        assert not prometheus.alerts("SiteSilent", "firing")
        publisher.stop_site(SILENT)
        fired = wait_for(lambda: prometheus.alerts("SiteSilent", "firing"), 60, what="SiteSilent firing")
        assert [a["labels"]["site_id"] for a in fired] == [SILENT]
        assert "has sent nothing" in fired[0]["annotations"]["summary"]
        assert fired[0]["annotations"]["runbook_url"] == "docs/operations.md#sitesilent"
        # The site that goes on is heard on: still fresh in the parser's metrics.
        parser = scrape(p.ports["parse"])
        live_seen = parser[("edge_parser_site_last_seen_timestamp_seconds", (("site_id", LIVE),))]
        silent_seen = parser[("edge_parser_site_last_seen_timestamp_seconds", (("site_id", SILENT),))]
        assert live_seen - silent_seen > SILENCE_S
        assert publisher.error is None, publisher.error
    finally:
        publisher.close()
        prometheus.stop()


def _sites_in_prometheus(prometheus: Prometheus) -> set[str]:
    data = prometheus.get("/api/v1/query?query=edge_parser_site_last_seen_timestamp_seconds")
    return {r["metric"]["site_id"] for r in data["result"]}


# ------------------------------------------------------------------ archive outcome


def test_archive_leaves_its_last_success_in_the_textfile_and_a_failed_run_keeps_it(local_services, names,
                                                                                    edge_env, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    from tests.support import influx
    from tests.support.processes import EdgeProcess

    textfile = tmp_path / "textfile" / "edge_archive.prom"
    env = dict(edge_env, EDGE_ARCHIVE__METRICS_TEXTFILE=str(textfile))
    url = local_services["influxdb"].url
    influx.execute(url, f'CREATE DATABASE "{names["database"]}"')
    try:
        before = time.time()
        ok = EdgeProcess(["archive", "--older-than", "0"], env, tmp_path / "archive-ok.log").start()
        assert ok.proc.wait(60) == 0, ok.log()
        first = _samples(text_string_to_metric_families(textfile.read_text()))
        assert before <= first["edge_archive_last_success_timestamp_seconds"] <= time.time()
        assert all(name.startswith("edge_archive_") for name in first)  # nothing node_exporter has itself
        assert textfile.stat().st_mode & 0o777 == 0o644  # node_exporter is another user

        # A point below microsecond precision cannot be archived: its window fails.
        body = b"field1,site_id=000001 soc=1.5 1704067200000000001"
        urllib.request.urlopen(urllib.request.Request(f"{url}/write?db={names['database']}", data=body), timeout=10)
        failed = EdgeProcess(["archive", "--older-than", "0"], env, tmp_path / "archive-failed.log").start()
        assert failed.proc.wait(60) != 0, failed.log()
        second = _samples(text_string_to_metric_families(textfile.read_text()))
        assert second["edge_archive_last_success_timestamp_seconds"] == first["edge_archive_last_success_timestamp_seconds"]
    finally:
        influx.execute(url, f'DROP DATABASE "{names["database"]}"')


def _samples(families) -> dict[str, float]:
    return {s.name: s.value for f in families for s in f.samples if not s.labels}
