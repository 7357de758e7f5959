"""The document walk: ``FieldDeviceLayer`` -> points. Pure.

For every ``FieldDeviceLayer.<fieldN>`` and every element of its ``service`` list,
one point: measurement ``fieldN``; tags ``device`` (the field's ``Name``),
``service_id`` (the element's ``id`` or ``index`` as an integer string, ``"01"``
-> ``1``; else its 1-based position), ``site_id``. Inside a point's object:

- a number is a float field, a boolean a boolean field; strings and nulls are not
  readings;
- a list: numbers and booleans in it become fields ``<key>_<i>`` (0-based, as
  Telegraf's JSON flattener names them), lists in it ``<key>_<i>_<j>``, and each
  object in it a point of its own (below);
- an object directly inside a service element (Battery ``racks``) is a point of its
  own; deeper objects are flattened into their point's fields with ``_``
  (``{"temps": {"max": 1}}`` -> ``temps_max``).

A point of its own for an object at ``<path>`` (``racks``; ``racks_modules`` for a
list of objects inside a rack) has measurement ``<fieldN>_<path>``, its parent's
tags plus ``<path>_index`` (the object's own ``index``, else its 1-based position),
and the same time.

Nothing numeric or boolean is dropped silently. What cannot be stored is named in
``ParseResult.problems`` with its JSON path and counted in ``unusable_readings``:
a name InfluxDB cannot store (``edge.core.lineproto``), two readings whose names
InfluxDB would store as one field of the same point (the name written directly in
the object wins over a flattened one; otherwise the first in document order), and
anything nested deeper than ``MAX_DEPTH`` levels. Two points of one message with
the same series (measurement and tags) would be merged by InfluxDB, since they
share the time: only the first in document order is emitted, the others are
counted in ``duplicate_points`` and named in a ``duplicate_series:`` problem.
"""

from __future__ import annotations

import bisect
import json

from edge.core import lineproto
from edge.parser.fields import (
    SCALARS,
    FieldSet,
    drop_field,
    fast_field_set,
    list_field_keys,
    list_field_values,
    relative_path,
    written_as,
)

MAX_DEPTH = 64
_LIST_SHORTCUT = 8  # from this length on, a list of scalars is formatted by orjson

_DEVICE, _SERVICE_ID, _SITE_ID = b"device", b"service_id", b"site_id"


class LayerWalk:
    """The points of one message's ``FieldDeviceLayer``, appended to ``result``."""

    def __init__(self, result, site_tag: bytes, suffix: bytes, raw: bytes = b""):
        self.result = result
        self.raw = raw  # the document's bytes: a non-finite reading is quoted as written
        self.site_tag = site_tag  # the escaped site id
        self.suffix = suffix  # b" <time>"
        self.seen: dict[bytes, dict] = {}  # series key -> the JSON object of its point
        self.layer_doc: dict = {}

    def layer(self, layer: dict) -> None:
        self.layer_doc = layer
        for field_key, device in layer.items():
            if device.__class__ is not dict:
                self.problem((field_key,), f"not an object ({json_type(device)})")
                continue
            services = device.get("service")
            if services.__class__ is dict:
                services = [services]
            elif services.__class__ is not list:
                self.problem((field_key, "service"), f"missing or not a list ({json_type(services)})")
                continue
            measurement = lineproto.measurement(field_key) if field_key else None
            if measurement is None:
                self.unusable((field_key,), services, "the entry's name cannot be a measurement name")
                continue
            name = device.get("Name")
            device_tag = lineproto.tag(name) if name.__class__ is str else None
            self.device(field_key, measurement, device_tag, services)

    def device(self, field_key: str, measurement: bytes, device_tag: bytes | None, services: list) -> None:
        site_part = b",site_id=" + self.site_tag
        device_part = b",device=" + device_tag if device_tag else b""
        seen, points, suffix = self.seen, self.result.points, self.suffix
        for position, element in enumerate(services, 1):
            if element.__class__ is not dict:
                self.problem((field_key, "service", position - 1), f"not an object ({json_type(element)})")
                continue
            # The common case: a numeric id/index and only numbers/booleans.
            id_key = "id" if "id" in element else "index"
            ident = element.get(id_key)
            if ident.__class__ is int:
                field_set = fast_field_set(element)
                if field_set is not None:
                    ident_b = str(ident).encode()
                    field_set = drop_field(field_set, id_key.encode() + b"=" + ident_b)
                    series_key = measurement + device_part + b",service_id=" + ident_b + site_part
                    if not field_set:
                        self.result.empty_points += 1
                    elif seen.setdefault(series_key, element) is element:
                        points.append((series_key, series_key + b" " + field_set + suffix))
                    else:
                        self.duplicate(series_key, element)
                    continue
            self.element(element, position, field_key, measurement, device_tag)

    def element(self, element: dict, position: int, field_key: str, measurement: bytes,
                device_tag: bytes | None) -> None:
        """A service element off the common path: string id, lists, objects,
        strings, nulls, unusual names."""
        id_key = "id" if "id" in element else ("index" if "index" in element else None)
        service_id = identifier(element[id_key]) if id_key else None
        service_tag = lineproto.tag(service_id) if service_id is not None else None
        if service_tag is None:
            service_tag, id_key = str(position).encode(), None
        keys = [_SERVICE_ID, _SITE_ID]
        parts = [b",service_id=" + service_tag, b",site_id=" + self.site_tag]
        if device_tag:
            keys.insert(0, _DEVICE)
            parts.insert(0, b",device=" + device_tag)
        scalars, others = _split(element, id_key)
        at = (field_key, "service", position - 1)
        point = _Point(field_key, None, measurement, keys, parts, at, element)
        self.point(scalars, others, point, dicts_are_points=True)

    def point(self, scalars: dict, others: list, point: "_Point", dicts_are_points: bool, depth: int = 0) -> None:
        extra = None
        for key, value in others:
            if value.__class__ is dict and dicts_are_points:
                self.child(point, key, value, 1, point.at + (key,), depth + 1)
                continue
            if extra is None:
                extra = FieldSet()
            if value.__class__ is dict:
                self.flatten_object(value, key + "_", extra, point, (key,), depth + 1)
            else:
                self.flatten_list(value, key, extra, point, (key,), depth + 1)
        if extra is None or not extra.values:
            field_set = fast_field_set(scalars) if scalars else b""
            if field_set is None:
                field_set = self.field_set(scalars, point.at).encode()
        else:
            merged = self.field_set(scalars, point.at)
            for key, value in extra.values.items():
                if key in merged.values:
                    taken_by = relative_path(merged.sources[key])
                    self.not_stored(point.at + extra.sources[key],
                                    f"its field name {key.decode()!r:.60} is already taken by {taken_by}")
                else:
                    merged.values[key] = value
            field_set = merged.encode()
        self.emit(point.measurement + b"".join(point.tag_parts), field_set, point.obj)

    def child(self, parent: "_Point", name: str, item: dict, position: int, at: tuple, depth: int) -> None:
        """An object that is a point of its own: measurement ``<fieldN>_<path>``,
        the parent's tags plus ``<path>_index``."""
        path = name if parent.path is None else f"{parent.path}_{name}"
        if depth > MAX_DEPTH:
            self.unusable(at, item, f"nested deeper than {MAX_DEPTH} levels")
            return
        index = item.get("index")
        own = identifier(index)
        own_tag = lineproto.tag(own) if own is not None else None
        id_key = "index" if own_tag is not None else None
        if own_tag is None:
            own_tag = str(position).encode()
        measurement, index_key = _child_names(parent.base, path)
        # Tags sorted by key as InfluxDB sorts them (bytes): the series key is its own.
        at_tag = bisect.bisect(parent.tag_keys, index_key)
        parts = parent.tag_parts[:]
        parts.insert(at_tag, b"," + index_key + b"=" + own_tag)
        if index.__class__ is int:
            field_set = fast_field_set(item)
            if field_set is not None:
                self.emit(measurement + b"".join(parts), drop_field(field_set, b"index=" + own_tag), item)
                return
        keys = parent.tag_keys[:]
        keys.insert(at_tag, index_key)
        scalars, others = _split(item, id_key)
        point = _Point(parent.base, path, measurement, keys, parts, at, item)
        self.point(scalars, others, point, dicts_are_points=False, depth=depth)

    def flatten_object(self, obj: dict, prefix: str, extra: FieldSet, point: "_Point", rel: tuple, depth: int) -> None:
        if depth > MAX_DEPTH:
            self.unusable(point.at + rel, obj, f"nested deeper than {MAX_DEPTH} levels")
            return
        for key, value in obj.items():
            cls = value.__class__
            if cls in SCALARS:
                self.add_field(extra, prefix + key, value, point.at, rel + (key,))
            elif cls is dict:
                self.flatten_object(value, f"{prefix}{key}_", extra, point, rel + (key,), depth + 1)
            elif cls is list:
                self.flatten_list(value, prefix + key, extra, point, rel + (key,), depth + 1)

    def flatten_list(self, items: list, name: str, extra: FieldSet, point: "_Point", rel: tuple, depth: int) -> None:
        if depth > MAX_DEPTH:
            self.unusable(point.at + rel, items, f"nested deeper than {MAX_DEPTH} levels")
            return
        values = list_field_values(items) if len(items) >= _LIST_SHORTCUT else None
        if values is not None:  # a BMS's cell voltages: formatted in one call
            keys, taken = list_field_keys(name, len(values)), extra.values
            for i, value in enumerate(values):
                key = keys[i]
                if key is not None and key not in taken:
                    taken[key] = value
                    extra.sources[key] = rel + (i,)
                else:
                    self.add_field(extra, f"{name}_{i}", items[i], point.at, rel + (i,))  # says why not
            return
        for i, item in enumerate(items):
            cls = item.__class__
            if cls in SCALARS:
                self.add_field(extra, f"{name}_{i}", item, point.at, rel + (i,))
            elif cls is dict:
                self.child(point, name, item, i + 1, point.at + rel + (i,), depth + 1)
            elif cls is list:
                self.flatten_list(item, f"{name}_{i}", extra, point, rel + (i,), depth + 1)

    # ------------------------------------------------------------ output

    def field_set(self, scalars: dict, at: tuple) -> FieldSet:
        fields = FieldSet()
        for key, value in scalars.items():
            self.add_field(fields, key, value, at, (key,))
        return fields

    def add_field(self, fields: FieldSet, name: str, value, at: tuple, rel: tuple) -> None:
        refused = fields.add(name, value, rel)
        if fields.dropped:
            self.result.dropped_values += fields.dropped
            fields.dropped = 0
            self.problem(at + rel, f"not stored: {written_as(self.raw, rel[-1], value)} is not a finite number "
                                   f"(site {self.site_tag.decode('utf-8', 'replace')}; InfluxDB stores no NaN or infinity)")
        if refused is not None:
            self.not_stored(at + rel, refused)

    def emit(self, series_key: bytes, field_set: bytes, obj: dict) -> None:
        if not field_set:
            self.result.empty_points += 1
        elif self.seen.setdefault(series_key, obj) is obj:
            self.result.points.append((series_key, series_key + b" " + field_set + self.suffix))
        else:
            self.duplicate(series_key, obj)

    # ------------------------------------------------------------ problems

    def duplicate(self, series_key: bytes, obj: dict) -> None:
        first = self.seen[series_key]
        self.result.duplicate_points += 1
        self.result.problems.append(
            f"duplicate_series: {self.origin(obj)} has the same series and time as {self.origin(first)} "
            f"({series_key.decode('utf-8', 'replace')[:200]}); only the first is written"
        )

    def origin(self, obj: dict) -> str:
        """Where a point's object stands in the document, and the id that named it."""
        at = find_path(self.layer_doc, obj)
        if len(at) in (2, 3) and at[1] == "service":  # a service element
            for key in ("id", "index"):
                if key in obj:
                    return f"{render_path(at)} ({key} {json.dumps(obj[key])})"
        elif "index" in obj:
            return f"{render_path(at)} (index {json.dumps(obj['index'])})"
        return f"{render_path(at)} (no id: its position)"

    def not_stored(self, at: tuple, why: str) -> None:
        self.result.unusable_readings += 1
        self.problem(at, f"not stored: {why}")

    def unusable(self, at: tuple, value, why: str) -> None:
        count = count_readings(value)
        if count:
            self.result.unusable_readings += count
            self.problem(at, f"{count} number(s)/boolean(s) not stored: {why}")

    def problem(self, at: tuple, text: str) -> None:
        self.result.problems.append(f"{render_path(at)}: {text}")


class _Point:
    """Where a point's readings go: its measurement and tags (escaped keys, and
    ``,key=value`` parts, both sorted by key), and where in the document its
    object stands (for naming problems)."""

    __slots__ = ("base", "path", "measurement", "tag_keys", "tag_parts", "at", "obj")

    def __init__(self, base: str, path: str | None, measurement: bytes, tag_keys: list, tag_parts: list, at: tuple,
                 obj: dict):
        self.base = base  # the FieldDeviceLayer key
        self.path = path  # None for a service element, "racks" for a rack
        self.measurement = measurement
        self.tag_keys = tag_keys
        self.tag_parts = tag_parts
        self.at = at
        self.obj = obj


_child_names_cache: dict[tuple[str, str], tuple[bytes, bytes]] = {}


def _child_names(base: str, path: str) -> tuple[bytes, bytes]:
    """(measurement, index tag key) of the points of their own at ``path``."""
    found = _child_names_cache.get((base, path))
    if found is None:
        found = (lineproto.measurement(f"{base}_{path}"), lineproto.tag(f"{path}_index"))
        if len(_child_names_cache) < 10_000:
            _child_names_cache[(base, path)] = found
    return found


def _split(obj: dict, id_key: str | None) -> tuple[dict, list]:
    """(numbers and booleans, lists and objects) of ``obj``, without the key that
    gave its id tag."""
    scalars = obj.copy()
    others = []
    for key in [k for k, v in obj.items() if v.__class__ not in SCALARS]:
        value = scalars.pop(key)
        if value.__class__ is dict or value.__class__ is list:
            others.append((key, value))
    if id_key is not None:
        scalars.pop(id_key, None)
    return scalars, others


def identifier(value: object) -> str | None:
    """An id/index as tag text: ``"01"`` -> ``"1"``, 2 -> ``"2"``; None if unusable."""
    cls = value.__class__
    if cls is int:
        return str(value)
    if cls is str:
        stripped = value.strip()
        if stripped.isdecimal():  # not isdigit: "²" is a digit int() refuses
            return str(int(stripped))
        return value if stripped else None
    if cls is float and value.is_integer():
        return str(int(value))
    return None


def count_readings(value) -> int:
    """Numbers and booleans anywhere inside ``value`` (iteratively: any depth)."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        cls = item.__class__
        if cls in SCALARS:
            count += 1
        elif cls is dict:
            stack.extend(item.values())
        elif cls is list:
            stack.extend(item)
    return count


def find_path(root, target) -> tuple:
    """The path of the object ``target`` (by identity) inside ``root``."""
    stack = [(root, ())]
    while stack:
        node, at = stack.pop()
        if node is target:
            return at
        if node.__class__ is dict:
            stack.extend((child, at + (key,)) for key, child in node.items())
        elif node.__class__ is list:
            stack.extend((child, at + (i,)) for i, child in enumerate(node))
    return ()


def render_path(at: tuple) -> str:
    """``("field1", "service", 0, "racks")`` -> ``FieldDeviceLayer.field1.service[0].racks``."""
    out = ["FieldDeviceLayer"]
    for step in at:
        if step.__class__ is int:
            out.append(f"[{step}]")
        elif step.isidentifier():
            out.append(f".{step}")
        else:
            out.append(f"[{json.dumps(step)}]")
    return "".join(out)


def json_type(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        value.__class__, value.__class__.__name__
    )
