"""What a run archives: the retention policies and measurements of the database.

Exactly what the sink writes, ``"db"."rp"."measurement"`` with
``influxdb.retention_policy`` or else the database's default policy;
``--all-policies``: every policy, each in its own tables
(``edge.archive.layout.table_name``).
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.archive.nodes import NodeArchiveSource
from edge.archive.layout import table_collisions
from edge.config.settings import ArchiveSettings
from edge.core.errors import NotFoundError, RefusedError


@dataclass(frozen=True)
class Scope:
    """Where the run reads: policies and measurements of the database."""

    primary: str  # the policy the sink writes: influxdb.retention_policy or the default
    policies: list[str]  # archived in this run (primary first)
    every_policy: list[str]  # all policies of the database: a DELETE reaches each
    measurements: list[str]
    node: str | None = None  # read every window on this InfluxDB node (``edge archive --node``), not the site's


def resolve_scope(
    source: NodeArchiveSource, settings: ArchiveSettings, measurements: list[str] | None, all_policies: bool
) -> Scope:
    """The run's scope; NotFoundError for a database, policy or measurement that
    does not exist, RefusedError when two policies would share a table."""
    db = settings.influxdb.database
    policies = source.retention_policies()
    names = [name for name, _ in policies]
    primary = settings.influxdb.retention_policy or next((n for n, default in policies if default), None)
    if primary is None:
        raise NotFoundError(f'influxdb: database "{db}" has no default retention policy (set influxdb.retention_policy)')
    if primary not in names:
        raise NotFoundError(
            f'influxdb: retention policy "{primary}" (influxdb.retention_policy) not found in database "{db}"'
        )
    existing = source.measurements()
    missing = [m for m in measurements or [] if m not in existing]
    if missing:
        raise NotFoundError(f'influxdb: measurement {", ".join(missing)} not found in database "{db}"')
    archived = [primary] + sorted(n for n in names if n != primary) if all_policies else [primary]
    collisions = table_collisions([(m, p) for p in archived for m in existing], primary)
    if collisions:
        raise RefusedError("archive tables would mix two sources: " + "; ".join(collisions))
    return Scope(primary, archived, names, list(measurements or existing))
