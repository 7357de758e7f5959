"""The data model beyond sample.json: lists, deep objects, objects in lists,
duplicate series, names InfluxDB cannot store. Expected values written by hand."""

from __future__ import annotations

import json

import pytest

from edge.parser import parse
from edge.parser.points import MAX_DEPTH
from tests.support.lineproto import read_line

TIME_NS = 1_686_342_846 * 10**9


def message(services: list, name: str = "BMS", field: str = "field1", site: str = "000001") -> bytes:
    return json.dumps(
        {
            "header": {"site_id": site, "timestamp": "2023-06-09 20:34:06"},
            "FieldDeviceLayer": {field: {"Name": name, "service": services}},
        }
    ).encode()


def points(raw: bytes) -> dict:
    """(measurement, sorted tags) -> fields, of every line."""
    out = {}
    for line in parse(raw).lines:
        point = read_line(line)
        assert point.time_ns == TIME_NS
        key = (point.measurement, tuple(sorted(point.tags.items())))
        assert key not in out, f"two lines for one series: {key}"
        out[key] = point.fields
    return out


def tags(service_id="1", **extra) -> tuple:
    return tuple(sorted({"device": "BMS", "service_id": service_id, "site_id": "000001", **extra}.items()))


def test_list_of_numbers_becomes_fields_key_i_zero_based():
    got = points(message([{"id": 1, "cell_voltage": [3.31, 3.32, 3.3], "soc": 50}]))
    assert got == {("field1", tags()): {"cell_voltage_0": 3.31, "cell_voltage_1": 3.32, "cell_voltage_2": 3.3,
                                         "soc": 50.0}}


def test_long_lists_of_every_kind_of_number():
    # From 8 items on, a list of scalars takes the one-call path: same result.
    cells = [3.3, 1e-7, 1e300, 5e-324, -0.0, 12, 2**63 + 5, True, False, 2**70]
    got = points(message([{"id": 1, "c": cells}]))
    expected = {f"c_{i}": (v if isinstance(v, bool) else float(v)) for i, v in enumerate(cells)}
    assert got == {("field1", tags()): expected}
    result = parse(message([{"id": 1, "c": [1.0] * 9 + [float("nan")], "c_3": 7}]))
    assert result.dropped_values == 1
    assert read_line(result.lines[0]).fields == {"c_3": 7.0, **{f"c_{i}": 1.0 for i in range(9) if i != 3}}
    assert any("c[3]: not stored: its field name 'c_3' is already taken by c_3" in p for p in result.problems)
    assert any("c[9]: not stored: nan is not a finite number" in p for p in result.problems)
    # A collision among flattened names inside the one-call path: the first wins.
    result = parse(message([{"id": 1, "r": [{"a": {"b_0": 5}, "a_b": [2.0] * 9}]}]))
    assert read_line(result.lines[0]).fields == {"a_b_0": 5.0, **{f"a_b_{i}": 2.0 for i in range(1, 9)}}
    assert "r[0].a_b[0]: not stored: its field name 'a_b_0' is already taken by a.b_0" in result.problems[0]


def test_list_of_booleans_and_list_of_lists():
    got = points(message([{"id": 1, "alarms": [True, False], "grid": [[1, 2], [3]]}]))
    assert got == {("field1", tags()): {"alarms_0": True, "alarms_1": False,
                                         "grid_0_0": 1.0, "grid_0_1": 2.0, "grid_1_0": 3.0}}


def test_list_keeps_positions_of_strings_and_nulls_it_skips():
    got = points(message([{"id": 1, "mixed": ["off", 7, None, False]}]))
    assert got == {("field1", tags()): {"mixed_1": 7.0, "mixed_3": False}}


def test_objects_nested_deeper_are_flattened_with_underscore():
    element = {"id": 1, "racks": {"index": 2, "temps": {"max": 31.5, "min": {"value": 20, "ok": True}}, "v": 1}}
    got = points(message([element]))
    assert got == {
        ("field1_racks", tags(racks_index="2")): {"temps_max": 31.5, "temps_min_value": 20.0, "temps_min_ok": True,
                                                   "v": 1.0},
    }


def test_lists_of_objects_are_points_of_their_own_at_any_depth():
    element = {
        "id": "01",
        "soc": 40,
        "racks": [
            {"index": 1, "v": 700.5, "modules": [{"index": 1, "t": 25}, {"t": 26}]},
            {"index": 2, "v": 701.5},
        ],
    }
    got = points(message([element]))
    assert got == {
        ("field1", tags()): {"soc": 40.0},
        ("field1_racks", tags(racks_index="1")): {"v": 700.5},
        ("field1_racks", tags(racks_index="2")): {"v": 701.5},
        ("field1_racks_modules", tags(racks_index="1", racks_modules_index="1")): {"t": 25.0},
        # No index of its own: its 1-based position.
        ("field1_racks_modules", tags(racks_index="1", racks_modules_index="2")): {"t": 26.0},
    }


def test_object_in_a_deeper_object_list_is_a_point_named_by_its_flattened_path():
    element = {"id": 1, "bms": {"index": 1, "status": {"cells": [{"v": 3.3}]}}}
    got = points(message([element]))
    assert got == {
        ("field1_bms_status_cells", tags(bms_index="1", bms_status_cells_index="1")): {"v": 3.3},
    }


def test_the_id_key_stays_a_field_when_it_did_not_name_the_point():
    got = points(message([{"id": True, "a": 1}, {"index": 2.5, "a": 2}]))
    assert got == {
        ("field1", tags("1")): {"id": True, "a": 1.0},
        ("field1", tags("2")): {"index": 2.5, "a": 2.0},
    }


def test_every_number_and_boolean_of_a_bms_document_reaches_a_field():
    element = {
        "id": 1,
        "cell_voltage": [3.31, 3.32, 3.33, 3.34],
        "balancing": [True, False, True],
        "limits": {"charge": {"max_a": 100, "max_v": 820.5}},
        "racks": [{"index": 1, "temps": [25.1, 25.2]}],
    }
    result = parse(message([element]))
    assert not result.problems and result.unusable_readings == 0
    stored = sum(len(fields) for fields in points(message([element])).values())
    assert stored == 4 + 3 + 2 + 2  # every leaf but the ids (id, racks[0].index are tags)


# ---------------------------------------------------------------- duplicates


def test_duplicate_ids_in_one_message_the_first_is_written_and_the_ids_are_named():
    result = parse(message([{"id": "1", "a": 1.0}, {"id": "01", "a": 2.0}, {"id": 2, "a": 3.0}]))
    lines = [read_line(line) for line in result.lines]
    assert [(p.tags["service_id"], p.fields["a"]) for p in lines] == [("1", 1.0), ("2", 3.0)]
    assert result.duplicate_points == 1
    [problem] = result.problems
    assert problem.startswith("duplicate_series: ")
    assert 'FieldDeviceLayer.field1.service[1] (id "01")' in problem
    assert 'FieldDeviceLayer.field1.service[0] (id "1")' in problem
    assert "field1,device=BMS,service_id=1,site_id=000001" in problem


def test_duplicate_on_the_fast_path_and_in_nested_points():
    result = parse(message([{"index": 3, "a": 1}, {"index": 3, "a": 2},
                            {"index": 4, "racks": [{"index": 1, "v": 1}, {"index": 1, "v": 2}]}]))
    assert result.duplicate_points == 2
    assert len(result.problems) == 2
    assert any("service[1] (index 3)" in p and "service[0] (index 3)" in p for p in result.problems)
    assert any("racks[1] (index 1)" in p and "racks[0] (index 1)" in p for p in result.problems)
    values = sorted((read_line(line).measurement, next(iter(read_line(line).fields.values())))
                    for line in result.lines)
    assert values == [("field1", 1.0), ("field1_racks", 1.0)]


def test_an_element_without_id_whose_position_repeats_an_id_is_a_duplicate():
    result = parse(message([{"id": 2, "a": 1}, {"a": 2}]))
    assert result.duplicate_points == 1
    assert "(no id: its position)" in result.problems[0]


# ---------------------------------------------------------------- what cannot be stored


def test_two_names_influxdb_would_store_as_one_field_the_direct_one_wins():
    result = parse(message([{"id": 1, "v_0": 5, "v": [1, 2]}]))
    assert points(message([{"id": 1, "v_0": 5, "v": [1, 2]}])) == {("field1", tags()): {"v_0": 5.0, "v_1": 2.0}}
    assert result.unusable_readings == 1
    [problem] = result.problems
    assert problem.startswith("FieldDeviceLayer.field1.service[0].v[0]: not stored:")
    assert "'v_0' is already taken by v_0" in problem


def test_names_that_collide_only_after_influxdb_rules_first_wins():
    # "a\\" loses its trailing backslash (line protocol cannot end a name with one).
    result = parse(message([{"id": 1, "a": 1, "a\\": 2}]))
    assert [read_line(line).fields for line in result.lines] == [{"a": 1.0}]
    assert result.unusable_readings == 1 and "already taken by a" in result.problems[0]


def test_a_name_nothing_is_left_of_is_named_in_the_problems():
    result = parse(message([{"id": 1, "a": 1, "\\\\": 2, "": 3}]))
    assert [read_line(line).fields for line in result.lines] == [{"a": 1.0}]
    assert result.unusable_readings == 2
    assert len(result.problems) == 2 and all("cannot be stored in InfluxDB" in p for p in result.problems)


def test_nesting_beyond_the_limit_is_reported_with_its_readings_counted():
    deep: dict = {"x": 1, "flag": True}
    for _ in range(MAX_DEPTH + 5):
        deep = {"d": deep}
    result = parse(message([{"id": 1, "a": 1, "deep": {"index": 1, "inner": deep}}]))
    assert result.unusable_readings == 2
    [problem] = result.problems
    assert problem.startswith("FieldDeviceLayer.field1.service[0].deep.inner.d.d")
    assert f"2 number(s)/boolean(s) not stored: nested deeper than {MAX_DEPTH} levels" in problem


@pytest.mark.parametrize("field", ["\\\\", ""])
def test_a_field_device_layer_entry_that_cannot_be_a_measurement_is_reported(field):
    raw = json.dumps({
        "header": {"site_id": "1", "timestamp": "2023-06-09 20:34:06"},
        "FieldDeviceLayer": {field: {"service": [{"id": 1, "a": 1, "b": [2]}]}, "ok": {"service": [{"id": 1, "a": 1}]}},
    }).encode()
    result = parse(raw)
    assert len(result.lines) == 1
    assert result.unusable_readings == 3  # its id counts: nothing of it is stored
    assert "3 number(s)/boolean(s) not stored: the entry's name cannot be a measurement name" in result.problems[0]


def test_ids_that_look_like_digits_but_are_not_numbers_are_kept_verbatim():
    # "²".isdigit() is true but int("²") fails: this once crashed the parser.
    got = points(message([{"id": "²", "a": 1}, {"id": "٣", "a": 2}]))
    assert got == {("field1", tags("²")): {"a": 1.0}, ("field1", tags("3")): {"a": 2.0}}
