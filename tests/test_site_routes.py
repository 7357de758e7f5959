"""The site -> InfluxDB node map (``edge.core.site_routes``) and its settings: who
holds a site, and the maps that are refused because their answer would depend on
the order of the file."""

from __future__ import annotations

import fnmatch
import itertools
import random

import pytest

from edge.config.sections import InfluxSettings
from edge.core.site_routes import DEFAULT_NODE, SiteRoutes, globs_overlap


def test_exact_names_beat_globs_and_an_unnamed_site_goes_to_the_default():
    routes = SiteRoutes({"b": ["north-*", "x1"], "c": ["south-?", "north-17"]})
    assert routes.node_for("north-3") == "b"
    assert routes.node_for("north-17") == "c"  # carved out of b's glob by its exact name
    assert routes.node_for("south-1") == "c"
    assert routes.node_for("south-12") == DEFAULT_NODE  # ? is one character
    assert routes.node_for("x1") == "b"
    assert routes.node_for("elsewhere") == DEFAULT_NODE  # never dropped
    assert routes.node_for(None) == DEFAULT_NODE  # a point without a site
    assert routes.nodes == [DEFAULT_NODE, "b", "c"]
    assert routes.split(["north-3", "zz", "north-17", "south-2"]) == {
        DEFAULT_NODE: ["zz"], "b": ["north-3"], "c": ["north-17", "south-2"]}
    assert routes.problems(["b", "c"]) == []


def test_ambiguous_maps_and_unknown_nodes_are_named():
    routes = SiteRoutes({"b": ["n*", "s1"], "c": ["*1", "s1"], "d": ["q"]})
    problems = routes.problems(["b", "c"])
    assert any("'d', which is not defined" in p for p in problems)
    assert any("site 's1' is listed under more than one node: b, c" in p for p in problems)
    assert any("globs 'n*' (node 'b') and '*1' (node 'c')" in p for p in problems)
    # Globs of one node may overlap; disjoint globs of two nodes are fine.
    assert SiteRoutes({"b": ["n*", "no*"], "c": ["s*", "[!ns]*"]}).problems(["b", "c"]) == []


def _random_glob(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 4)):
        roll = rng.random()
        if roll < 0.25:
            parts.append("*")
        elif roll < 0.4:
            parts.append("?")
        elif roll < 0.6:
            negated = "!" if rng.random() < 0.3 else ""
            parts.append(f"[{negated}{''.join(rng.sample('ab', rng.randint(1, 2)))}]")
        else:
            parts.append(rng.choice("ab-"))
    return "".join(parts)


def test_glob_overlap_agrees_with_fnmatch_over_every_short_name():
    names = ["".join(p) for k in range(7) for p in itertools.product("abc-", repeat=k)]
    rng = random.Random(7)
    overlapping = 0
    for _ in range(1500):
        p1, p2 = _random_glob(rng), _random_glob(rng)
        truth = any(fnmatch.fnmatchcase(n, p1) and fnmatch.fnmatchcase(n, p2) for n in names)
        assert globs_overlap(p1, p2) == truth, (p1, p2)
        overlapping += truth
    assert 300 < overlapping < 1400  # both answers were exercised


def test_settings_give_each_node_its_own_url_and_refuse_unsound_maps():
    settings = InfluxSettings(url="http://127.0.0.1:18086", site_map_version=3, sites=["north-1"],
                              nodes={"b": {"url": "http://127.0.0.1:18096", "sites": ["north-*"]}})
    assert settings.node_names == [DEFAULT_NODE, "b"]
    assert settings.routes().node_for("north-1") == DEFAULT_NODE
    assert settings.routes().node_for("north-2") == "b"
    b = settings.node_settings("b")
    assert (b.url, b.nodes, b.database) == ("http://127.0.0.1:18096", {}, settings.database)
    with pytest.raises(KeyError):
        settings.node_settings("nope")
    assert InfluxSettings().node_names == [DEFAULT_NODE]  # today's single node, unchanged
    refused = {
        "no version": {"nodes": {"b": {"url": "http://b:1"}}},
        "same URL twice": {"nodes": {"b": {"url": "http://127.0.0.1:18086/"}}, "site_map_version": 1},
        "the default's name": {"nodes": {"default": {"url": "http://b:1"}}, "site_map_version": 1},
        "a bad name": {"nodes": {"B x": {"url": "http://b:1"}}, "site_map_version": 1},
        "an empty pattern": {"nodes": {"b": {"url": "http://b:1", "sites": [""]}}, "site_map_version": 1},
        "not a URL": {"nodes": {"b": {"url": "b:1"}}, "site_map_version": 1},
    }
    for why, data in refused.items():
        with pytest.raises(ValueError):
            InfluxSettings(**data)
            pytest.fail(why)

