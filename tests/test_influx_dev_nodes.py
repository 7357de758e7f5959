"""``devtools.services`` starts more InfluxDB nodes, each on its own ports and data
directory; ``up`` twice is harmless, ``status`` and ``down`` know them (issue 22,
item 5). Run in a state directory and on ports of this test's own, so the shared
services are never touched."""

from __future__ import annotations

import pytest

from devtools import services as dev_services
from tests.support import influx


def _free_base_port() -> int:
    """A port P with P, P+2, P+10, P+12, P+20, P+22 free (three nodes, HTTP + RPC)."""
    for base in range(18300, 18900, 30):
        offsets = (0, 2, 10, 12, 20, 22)
        if not any(dev_services.port_open("127.0.0.1", base + o) for o in offsets):
            return base
    pytest.skip("no free block of ports for three InfluxDB nodes")


@pytest.fixture
def own_state(tmp_path, monkeypatch):
    base = _free_base_port()
    monkeypatch.setenv("EDGE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("EDGE_INFLUXDB__URL", f"http://127.0.0.1:{base}")
    monkeypatch.setenv("EDGE_CONFIG", "")
    yield base
    for name in ("influxdb-node3", "influxdb-node2", "influxdb"):
        dev_services.stop_process(name)


def test_three_nodes_start_once_each_and_down_stops_them(own_state, tmp_path, capsys):
    base = own_state
    nodes = dev_services.influx_nodes(3)
    assert [(n.name, n.port) for n in nodes] == [("influxdb", base), ("influxdb-node2", base + 10),
                                                 ("influxdb-node3", base + 20)]
    assert len({n.base_dir for n in nodes}) == 3

    first = dev_services.influx_nodes_up(3)
    assert list(first.values()) == ["started"] * 3
    assert dev_services.influx_nodes_up(3) == {n.url: "already running" for n in nodes}
    assert dev_services.extra_influx_nodes_started() == ["influxdb-node2", "influxdb-node3"]

    # Separate servers: a database made on one is not on the others.
    influx.execute(nodes[1].url, 'CREATE DATABASE "only_on_node2"')
    shown = {n.name: [v[0] for s in influx.query(n.url, "", "SHOW DATABASES") for v in s.get("values", [])]
             for n in nodes}
    assert [name for name, dbs in shown.items() if "only_on_node2" in dbs] == ["influxdb-node2"]
    assert all((n.base_dir / "data").is_dir() for n in nodes)

    capsys.readouterr()
    dev_services.status()  # the shared broker/tansu/moto may be up or not: only the nodes count here
    out = capsys.readouterr().out
    for n in nodes:
        assert f"influxdb {n.url}: ready" in out

    dev_services.down()
    out = capsys.readouterr().out
    assert "influxdb-node2: stopped" in out and "influxdb-node3: stopped" in out
    assert not any(dev_services.port_open("127.0.0.1", n.port) for n in nodes)
    assert dev_services.extra_influx_nodes_started() == []
    dev_services.status(3)
    out = capsys.readouterr().out
    assert all(f"influxdb {n.url}" in out and "DOWN" in out.split(f"influxdb {n.url}")[1].splitlines()[0]
               for n in nodes)


def test_plain_up_starts_one_influxdb(own_state):
    # What `make services-up` starts is unchanged: one node.
    states = dev_services.influx_nodes_up(1)
    assert list(states.values()) == ["started"]
    assert dev_services.extra_influx_nodes_started() == []
