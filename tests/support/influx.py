"""The real InfluxDB from tests: databases, queries, point counts (plain HTTP)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request


def query(url: str, db: str, q: str, epoch: str = "ns") -> list[dict]:
    params = urllib.parse.urlencode({"db": db, "q": q, "epoch": epoch})
    with urllib.request.urlopen(f"{url}/query?{params}", timeout=30) as resp:
        result = json.loads(resp.read())["results"][0]
    if "error" in result:
        raise AssertionError(result["error"])
    return result.get("series", [])


def execute(url: str, q: str) -> None:
    data = urllib.parse.urlencode({"q": q}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{url}/query", data=data), timeout=30) as resp:
        resp.read()


def count_points(url: str, db: str) -> int:
    """Points stored (one row per point of SELECT *), 0 if the database is absent."""
    try:
        return sum(len(s["values"]) for s in query(url, db, "SELECT * FROM /.*/", epoch="s"))
    except AssertionError as exc:
        if "database not found" in str(exc):
            return 0
        raise


def rows(url: str, db: str, measurement: str) -> list[dict]:
    out = []
    for series in query(url, db, f'SELECT * FROM "{measurement}"'):
        out.extend(dict(zip(series["columns"], values)) for values in series["values"])
    return out
