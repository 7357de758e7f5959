"""The InfluxQL the archiver sends, as text. Pure.

Every query names ``"db"."policy"."measurement"``, exactly where the sink
writes, except ``DELETE``: InfluxQL's DELETE takes no policy and removes the
window from every policy of the database (``edge.archive.retention``).
"""

from __future__ import annotations

from edge.archive.windows import Window


def quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def qualified(database: str, retention_policy: str, measurement: str) -> str:
    """``"db"."rp"."measurement"``: exactly where the sink writes."""
    return ".".join(quote_ident(n) for n in (database, retention_policy, measurement))


def window_condition(window: Window) -> str:
    return (
        f"{quote_ident('site_id')} = {quote_str(window.site_id)}"
        f" AND time >= {window.start_ns} AND time < {window.end_ns}"
    )


def select_window(database: str, window: Window) -> str:
    source = qualified(database, window.retention_policy, window.measurement)
    return f"SELECT * FROM {source} WHERE {window_condition(window)}"


def count_window(database: str, window: Window, retention_policy: str | None = None) -> str:
    """Values per field in the window, in its own policy or in ``retention_policy``."""
    source = qualified(database, retention_policy or window.retention_policy, window.measurement)
    return f"SELECT count(*) FROM {source} WHERE {window_condition(window)}"


def delete_window(window: Window) -> str:
    """InfluxQL DELETE names no policy: it removes the window from every one."""
    return f"DELETE FROM {quote_ident(window.measurement)} WHERE {window_condition(window)}"


def first_points(database: str, retention_policy: str, measurement: str, start_ns: int, end_ns: int) -> str:
    """The first point of every site in [start, end): one day, the plan of its
    windows. Reads a block per series, where ``count(*)`` would read every value."""
    return (
        f"SELECT * FROM {qualified(database, retention_policy, measurement)}"
        f" WHERE time >= {start_ns} AND time < {end_ns}"
        f" GROUP BY {quote_ident('site_id')} LIMIT 1"
    )
