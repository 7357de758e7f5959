"""The compiled one-pass parser (edge.parser.onepass) against the pure parser.

The pure parser is the reference: wherever the compiled path answers, its result
must equal the pure parser's field for field (the same points, byte for byte, the
same problems and counts); wherever the pure parser refuses a document or names a
problem, the compiled path must have handed the document over (a fallback, with
its reason). Focused cases first, then a differential run over more than 10,000
generated documents (seeded, so a failure names a document that can be rebuilt).
"""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from prometheus_client import REGISTRY

import edge.parser
from edge.parser import ParseError, TimeZones, parse, parse_pure
from edge.parser.metrics import count_error, count_result
from tests.conftest import SAMPLE_PATH
from tests.test_parser_differential import documents

try:
    from edge.parser import onepass
except ImportError:  # the tests below fail, naming why
    onepass = None

UTC = edge.parser.UTC_ONLY
BERLIN = TimeZones.from_names("UTC", {"000001": "Europe/Berlin"})
SAMPLE = SAMPLE_PATH.read_bytes()


def test_the_extension_is_built():
    """make venv / pip install -e . compile it; a machine where it silently did not
    would run at a fifth of the speed."""
    assert onepass is not None, "edge.parser.onepass is not built: run `make venv` (needs gcc and Python headers)"
    assert edge.parser.PATH == "onepass"


def same(raw: bytes, zones=UTC, hint=None):
    """The compiled path's answer where it gives one equals the pure parser's; where
    the pure parser refuses, the compiled path fell back. Returns (what, reason)."""
    fast = onepass.parse(raw, zones, hint)
    try:
        pure = parse_pure(raw, zones, hint)
    except ParseError as exc:
        assert fast.__class__ is str, f"onepass answered where the pure parser raised {exc}"
        return "error", fast
    if fast.__class__ is str:
        assert fast in onepass.REASONS[1:], fast
        return "fallback", fast
    assert fast.points == pure.points
    assert fast == pure
    return "onepass", None


def doc(layer: dict, header: dict | None = None, indent=None) -> bytes:
    return json.dumps({"header": header or {"site_id": "000001", "timestamp": "2023-06-09 20:34:06"},
                       "FieldDeviceLayer": layer}, indent=indent, ensure_ascii=False).encode()


# ---------------------------------------------------------------- focused cases

def test_the_sample_as_shipped_takes_the_compiled_path():
    assert same(SAMPLE) == ("onepass", None)
    assert parse(SAMPLE).fallback is None


HANDLED = {
    "int id, plain keys: orjson writes 1": doc(
        {"field1": {"Name": "BMS", "service": [{"id": 1, "a": 1, "b": 2.5, "c": True}]}}),
    "string id, a field key with a space: FieldSet writes 1.0": doc(
        {"field1": {"Name": "B", "service": [{"id": "01", "a b": 1, "c": 2.5}]}}),
    "time and null in keys": doc({"f": {"service": [{"id": 2, "time": 1, "nullable": 3, "x": False}]}}),
    "unicode and escaped names": doc({"f ,=x": {"Name": "a,b=c d", "service": [{"index": "A 7", "ü☀": 1, "q=r": 2}]}},
                                     {"site_id": "s 1,=", "timestamp": "2023-06-09T20:34:06"}),
    "measurement starting with #": doc({"#m": {"service": [{"v": 1.5}]}}),
    "a child before the device tag (a_index < device)": doc(
        {"f": {"Name": "D", "service": [{"id": 3, "a": {"index": 2, "v": 1}, "zz": {"v": 2}, "v": 0.1}]}}),
    "a child after site_id, no device": doc({"f": {"service": [{"id": 1, "zz": {"index": "07", "v": 1}}]}}),
    "child with a string index and strings": doc(
        {"f": {"service": [{"id": 1, "r": {"index": "x", "s": "t", "v": 1}}]}}),
    "numbers repr and orjson agree on": doc({"f": {"service": [{"id": 1, "a": 1e5, "b": 0.1 + 0.2, "c": 1e-3, "d": -0.0,
                                                                 "e": 123456789012345.6}]}}),
    "exponents in FieldSet form": doc({"f": {"service": [{"id": "1", "a b": 1e-05, "c": 1e22, "d": 5e-324}]}}),
    "ids: float, bool, null, empty, object": doc({"f": {"service": [
        {"id": 20.0, "v": 1}, {"id": 2.5, "v": 1}, {"id": True, "v": 1}, {"index": None, "v": 1}, {"id": "", "v": 1},
        {"id": {"index": 9, "w": 1}, "v": 1}]}}),
    "an empty point is counted": doc({"f": {"service": [{"id": 1}, {"id": 2, "v": 1}]}}),
    "site as an integer, service as an object": doc({"f": {"service": {"index": 1, "v": 1}}},
                                                    {"site_id": 42, "timestamp": "2023-06-09 20:34:06"}),
    "header after the layer, Name after service": (
        b'{"FieldDeviceLayer": {"f": {"service": [{"id": 1, "v": 1}], "Name": "late"}},'
        b' "header": {"timestamp": "2023-06-09 20:34:06", "site_id": "9"}}'),
    "raw control characters in skipped strings": (
        b'{"header": {"site_id": "1", "timestamp": "2023-06-09 20:34:06", "x": "a\x08\t\nb\\u00e9\\ud800"},'
        b' "FieldDeviceLayer": {"f": {"role": {"a": [1, {"b": null}]}, "service": [{"id": 1, "v": 1, "s": "\x01"}]}}}'),
}


@pytest.mark.parametrize("raw", HANDLED.values(), ids=HANDLED.keys())
def test_documents_of_the_common_shape_are_parsed_as_the_pure_parser_does(raw):
    assert same(raw) == ("onepass", None)


FALLBACKS = {
    "list": (doc({"f": {"service": [{"id": 1, "v": [1, 2]}]}}), "list"),
    "deep_object": (doc({"f": {"service": [{"id": 1, "r": {"m": {"v": 1}}}]}}), "deep_object"),
    "escape": (b'{"header": {"site_id": "1", "timestamp": "2023-06-09 20:34:06"}, '
               b'"FieldDeviceLayer": {"f": {"service": [{"\\u0076": 1}]}}}', "escape"),
    "control character in a name": (doc({"f": {"Name": "a\tb", "service": [{"v": 1}]}}).replace(b"a\\tb", b"a\tb"),
                                    "name"),
    "escape in a name": (doc({"f": {"Name": "a\tb", "service": [{"v": 1}]}}), "escape"),
    "NaN": (doc({"f": {"service": [{"id": 1, "v": float("nan"), "w": 1}]}}), "syntax"),
    "overflow": (doc({"f": {"service": [{"id": 1, "v": 1, "w": 2}]}}).replace(b'"v": 1', b'"v": 1e999'), "number"),
    "big integer": (doc({"f": {"service": [{"id": 1, "v": 2**60}]}}), "number"),
    "duplicate key": (doc({"f": {"service": [{"id": 1, "v": 1, "w": 2}]}}).replace(b'"w"', b'"v"'), "duplicate_key"),
    "duplicate series": (doc({"f": {"service": [{"id": 1, "v": 1}, {"id": "01", "v": 2}]}}), "duplicate_series"),
    "no points": (doc({"f": {"service": [{"id": 1}]}}), "no_points"),
    "nonexistent local time": (doc({"f": {"service": [{"v": 1}]}}, {"site_id": "000001",
                                                                    "timestamp": "2023-03-26 02:30:00"}), "time"),
    "blank site": (doc({"f": {"service": [{"v": 1}]}}, {"site_id": " ", "timestamp": "2023-06-09 20:34:06"}), "site"),
    "empty message": (b"", "input"),
    "byte-order mark": (b"\xef\xbb\xbf" + doc({"f": {"service": [{"v": 1}]}}), "input"),
    "truncated": (SAMPLE[:-2], "syntax"),
    "not an object element": (doc({"f": {"service": [1]}}), "shape"),
}


@pytest.mark.parametrize("raw,reason", FALLBACKS.values(), ids=FALLBACKS.keys())
def test_anything_else_falls_back_to_the_pure_parser_with_its_reason(raw, reason):
    zones = BERLIN if reason == "time" else UTC
    assert same(raw, zones)[1] == reason
    try:
        result = parse(raw, zones)
    except ParseError as exc:
        assert exc.fallback == reason
    else:
        assert result.fallback == reason
        assert result == parse_pure(raw, zones).__class__(**{**vars(parse_pure(raw, zones)), "fallback": reason})


def test_a_repeated_local_hour_is_resolved_as_the_pure_parser_resolves_it():
    raw = doc({"f": {"service": [{"v": 1}]}}, {"site_id": "000001", "timestamp": "2023-10-29 02:30:00"})
    hint = 1_698_543_000 * 10**9  # 01:30 UTC: the later occurrence
    for received in (None, hint, hint - 3600 * 10**9):
        assert same(raw, BERLIN, received) == ("onepass", None)
    assert onepass.parse(raw, BERLIN, hint).ambiguous_times_resolved == 1
    assert onepass.parse(raw, BERLIN, None).ambiguous_times_unresolved == 1


def test_fallbacks_are_counted_by_reason():
    def value(reason):
        return REGISTRY.get_sample_value("edge_parser_fallbacks_total", {"reason": reason}) or 0.0

    before_list, before_time = value("list"), value("time")
    count_result(parse(FALLBACKS["list"][0]))
    with pytest.raises(ParseError) as caught:
        parse(FALLBACKS["nonexistent local time"][0], BERLIN)
    count_error(caught.value.reason, caught.value.fallback)
    count_result(parse(SAMPLE))  # the compiled path: nothing counted
    assert (value("list"), value("time")) == (before_list + 1, before_time + 1)


# ---------------------------------------------------------------- differential run

class Raw(str):
    """A JSON literal written as is (1e999, NaN, -0, 1.50)."""


def dumps(value, rng: random.Random, indent: str | None, depth: int = 0) -> str:
    """JSON text of ``value``, where an object is a list of (key, value) pairs (so
    keys can repeat and keep their order) and strings sometimes carry raw control
    characters or \\u escapes."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=rng.random() < 0.2)
        if rng.random() < 0.05 and "\\u00" in text:
            text = text.replace("\\u0008", "\x08").replace("\\u0001", "\x01")  # the gateway's raw control bytes
        return text
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)
    pad = "" if indent is None else "\n" + indent * (depth + 1)
    close = "" if indent is None else "\n" + indent * depth
    sep = ", " if indent is None else ","
    if isinstance(value, tuple):  # a list
        return "[" + sep.join(pad + dumps(v, rng, indent, depth + 1) for v in value) + close + "]"
    members = (f"{pad}{dumps(k, rng, indent)}: {dumps(v, rng, indent, depth + 1)}" for k, v in value)
    return "{" + sep.join(members) + close + "}"


PLAIN_KEYS = ["soc", "soh", "dc_voltage", "dc_current", "run", "stop", "fault", "AC_FREQ", "P.total", "v-1", "T1",
              "frequency", "ac_active_power", "max_cell_voltage", "total_racks", "x"]
ODD_KEYS = ["a b", "a,b", "k=v", 'q"', "ü", "☀x", "𝄞", "time", "null_count", "", "a\\b", "\x01x", "tab\t", "#h",
            "id", "index", "Name", "service"]
TIMES = ["2023-06-09 20:34:06", "2023-06-09T20:34:06", "2024-02-29 23:59:59", "1970-01-01 00:00:01",
         "2023-10-29 02:30:00", "2023-03-26 02:30:00", "2023-06-09 20:34:06.5", "2023-06-09 20:34:06+02:00",
         "2023-02-30 10:00:00", "2262-04-12 00:00:00", "1970-01-01 00:00:00", "garbage", "2023-06-09 24:00:00"]


def number(rng: random.Random, clean: bool):
    roll = rng.random() * (0.6 if clean else 1.0)
    if roll < 0.45:
        return round(rng.uniform(-1000, 1000), rng.randint(0, 4))
    if roll < 0.6:
        return rng.randint(-100, 100000) if rng.random() < 0.8 else rng.random() < 0.5
    if roll < 0.7:
        return rng.uniform(-1, 1) * 10 ** rng.randint(-8, 22)  # 17 digits, exponents
    if roll < 0.8:
        return rng.choice([0, 0.0, -0.0, 1e-4, 1e-5, 1e15, 1e16, 2**53 + 1, 2**63, 2**64, 2**70, -2**63, 5e-324,
                           1.7976931348623157e308, 123456789012345, 1234567890123456, 0.5])
    if roll < 0.9:
        return Raw(rng.choice(["1e999", "-1e999", "NaN", "Infinity", "-Infinity", "-0", "1.50", "1E5", "2e-3",
                               "0.000012", "1e-400", "12345678901234567890", "3.0e0", "-0.0"]))
    return rng.random() < 0.5


def scalar(rng: random.Random, clean: bool):
    roll = rng.random()
    if roll < 0.85:
        return number(rng, clean)
    if roll < 0.95:
        return rng.choice(["", "text", "ünï", "a\bb", "x" * rng.choice([1, 300, 300, 20_000]), "\u0001", "\\"])
    return None


def key(rng: random.Random, odd: float) -> str:
    if rng.random() < odd:
        return rng.choice(ODD_KEYS)
    base = rng.choice(PLAIN_KEYS)
    return base if rng.random() < 0.5 else f"{base}{rng.randint(0, 40)}"


CLEAN_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, "01", "02", "03", "4", "A 7", 2.0, "x,y", "007"]
ODD_IDS = [" 3 ", "", "٣", 2.5, True, None, -1, 10**20, Raw("1e0"), Raw("-0")]


def obj(rng: random.Random, size: int, odd: float, nested: float, with_id: bool, child_level: bool,
        position: int = 1):
    clean = odd == 0.0
    pairs = []
    if with_id and rng.random() < 0.9:
        ids = CLEAN_IDS if clean or rng.random() < 0.5 else ODD_IDS
        ident = rng.choice([position, f"{position:02d}"]) if rng.random() < 0.8 else rng.choice(ids)
        pairs.append((rng.choice(["id", "index"]) if not child_level else "index", ident))
    for _ in range(size):
        roll = rng.random()
        if roll < nested and not child_level:
            pairs.append((rng.choice(["racks", "a", "zz", "meter", "device", "site", "service"]),
                          obj(rng, rng.randint(0, 8), odd / 2, nested, True, True)))
        elif roll < nested * 1.15 and not clean:
            pairs.append((key(rng, odd), tuple(scalar(rng, clean) for _ in range(rng.choice([0, 2, 9])))))  # a list
        elif roll < nested * 1.25 and not clean:
            pairs.append((key(rng, odd), [("deep", [("v", 1)])]))  # an object deeper than the data model keeps
        else:
            pairs.append((key(rng, odd), scalar(rng, clean)))
    if rng.random() > 0.02:  # now and then a key twice; else the first of each
        unique = {}
        for k, v in pairs:
            unique.setdefault(k, v)
        pairs = list(unique.items())
    if rng.random() < 0.2:
        rng.shuffle(pairs)
    return pairs


def document(rng: random.Random) -> bytes:
    """A gateway document: mostly the common shape, each oddity now and then."""
    odd = rng.choice([0.0, 0.0, 0.0, 0.0, 0.01, 0.05])  # how often a name is odd; 0: a clean document
    clean = odd == 0.0
    nested = rng.choice([0.0, 0.05, 0.1])
    site = rng.choice(["000001", "000001", "000002", 7, "site 7", "a,b=c", "ü☀", "#s", "\u3000x"]
                      + ([] if clean else [" ", "", True, "s\\", "\u3000", "\xa0 "]))
    stamp = rng.choice(TIMES[:2] * 8 + TIMES[:5] if clean else TIMES)
    header = [("site_id", site), ("timestamp", stamp), ("FieldDeviceLayer", 6)]
    layer = []
    for n in range(rng.randint(1, 4)):
        services = tuple(obj(rng, rng.randint(0, 20), odd, nested, True, False, i + 1)
                         for i in range(rng.randint(0, 3)))
        device = [("index", n + 1), ("Name", rng.choice(["Battery", "PV Equipment", "a,b=c", "ü", "", 5, None])),
                  ("component", [("Device1", "Rack")]), ("id", [("id1", "01")]),
                  ("service", services if rng.random() > 0.05 else (services[0] if services else services))]
        if rng.random() < 0.1:
            device.reverse()  # Name after the service list
        field = f"field{n + 1}" if rng.random() > odd * 4 else rng.choice(ODD_KEYS + ["field1"])
        layer.append((field, device))
    top = [("header", header), ("EnergyPlatformLayer", [("Name", "Mirae\x08 building"), ("Broker_IP", "$IP")]),
           ("FieldDeviceLayer", layer)]
    if rng.random() < 0.1:
        top.reverse()  # the layer before the header
    if rng.random() < 0.02:
        top.append(("header", header))  # a key twice
    indent = rng.choice([None, "    ", "\t", "  "])
    raw = dumps(top, rng, indent).encode()
    roll = rng.random() * (4 if clean else 1)
    if roll < 0.03:  # a damaged message
        at = rng.randrange(len(raw))
        raw = raw[:at] + bytes([rng.randrange(256)]) + raw[at + 1:]
    elif roll < 0.04:
        raw = raw[: rng.randrange(len(raw))]
    elif roll < 0.05:
        raw = b"\xef\xbb\xbf" + raw
    return raw


def test_ten_thousand_generated_documents_give_identical_results():
    rng = random.Random(20230609)
    seen: Counter = Counter()
    reasons: Counter = Counter()
    for i in range(10_500):
        raw = document(rng)
        zones = BERLIN if i % 5 == 0 else UTC
        hint = None if i % 3 else 1_698_543_000 * 10**9
        try:
            what, reason = same(raw, zones, hint)
        except AssertionError as exc:
            raise AssertionError(f"document {i} (seed 20230609): {raw[:2000]!r}") from exc
        seen[what] += 1
        reasons[reason] += 1
    # The run must exercise both paths and the oddities, or it proves nothing.
    assert seen["onepass"] >= 3000, seen
    assert seen["fallback"] >= 1000 and seen["error"] >= 500, seen
    for reason in ("list", "deep_object", "escape", "name", "number", "syntax", "duplicate_key", "duplicate_series",
                   "time", "site", "input"):
        assert reasons[reason] >= 10, (reason, reasons)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=documents())
def test_the_differential_documents_give_identical_results(raw):
    """The odd-name documents of test_parser_differential (deep nesting, lists,
    unicode keys, huge and tiny numbers, duplicate ids)."""
    same(raw)
