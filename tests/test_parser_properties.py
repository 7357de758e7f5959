"""Property: whatever sample.json is mutated into, the parser either raises
ParseError or returns valid line-protocol lines: never another exception, never a
NaN field, never time 0."""

from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.parser import ParseError, to_lines
from tests.conftest import SAMPLE_PATH
from tests.support.lineproto import read_line

SAMPLE = SAMPLE_PATH.read_bytes()
SAMPLE_DOC = json.loads(SAMPLE, strict=False)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, prefix + (key,))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _paths(child, prefix + (i,))


ALL_PATHS = list(_paths(SAMPLE_DOC))


def _copy():
    return json.loads(json.dumps(SAMPLE_DOC))


def _set(doc, path, value):
    if not path:
        return value
    target = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return doc


def _delete(doc, path):
    if not path:
        return None
    target = doc
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return doc


@st.composite
def mutated_documents(draw):
    doc = _copy()
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        if path and draw(st.booleans()):
            doc = _delete(doc, path)
        else:
            doc = _set(doc, path, draw(json_values))
        if not isinstance(doc, (dict, list)):
            break
    return json.dumps(doc, allow_nan=True).encode()


@st.composite
def mutated_bytes(draw):
    raw = bytearray(SAMPLE)
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        at = draw(st.integers(min_value=0, max_value=len(raw) - 1)) if raw else 0
        if op == "flip" and raw:
            raw[at] = draw(st.integers(min_value=0, max_value=255))
        elif op == "insert":
            raw[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and raw:
            del raw[at : at + draw(st.integers(min_value=1, max_value=64))]
        elif op == "truncate":
            del raw[at:]
    return bytes(raw)


def check(raw: bytes) -> None:
    try:
        lines = to_lines(raw)
    except ParseError as exc:
        assert str(exc)
        return
    assert lines, "a successful parse yields at least one line"
    for line in lines:
        point = read_line(line)  # raises on anything InfluxDB would reject
        assert point.time_ns > 0
        for value in point.fields.values():
            assert not (isinstance(value, float) and (math.isnan(value) or math.isinf(value)))


PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(mutated_documents())
def test_mutated_documents_parse_or_raise_parse_error(raw):
    check(raw)


@PROPERTY
@given(mutated_bytes())
def test_mutated_bytes_parse_or_raise_parse_error(raw):
    check(raw)


@PROPERTY
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_parse_or_raise_parse_error(raw):
    check(raw)
