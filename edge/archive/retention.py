"""Bounded retention: whether a run deletes, and whether a DELETE is allowed. Pure.

InfluxQL's DELETE takes no retention policy: it removes the window from every
policy of the database. So a window is deleted only when every policy holding
points in it was archived, and only while InfluxDB still holds exactly what was
archived (``delete_verdict``).
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.config.settings import ArchiveSettings


def wants_delete(settings: ArchiveSettings, to_s3: bool, delete: bool | None, keep: bool) -> bool:
    """S3: delete after verify unless kept; local disk only: only when asked."""
    if delete is None:
        delete = settings.archive.delete_after_verify if to_s3 else settings.archive.delete_without_s3
    return delete and not keep


@dataclass(frozen=True)
class DeleteVerdict:
    refused: str = ""  # the DELETE would remove points no archive holds
    changed: str = ""  # InfluxDB no longer holds what was archived

    @property
    def allowed(self) -> bool:
        return not (self.refused or self.changed)


def delete_verdict(archived: dict[str, dict[str, int]], influx: dict[str, dict[str, int]]) -> DeleteVerdict:
    """May one DELETE remove a window from every retention policy?

    ``archived``: policy -> values per field of its verified part, for each policy
    archived in this window; ``influx``: policy -> values per field in the window
    now, for every policy of the database. Refused when a policy that was not
    archived holds points there; not allowed either when an archived policy's
    points changed since the export.
    """
    for policy, counts in sorted(influx.items()):
        held = sum(counts.values())
        if held and policy not in archived:
            return DeleteVerdict(
                refused=f'retention policy "{policy}" holds {held} values in this window that are not archived'
            )
    for policy, counts in sorted(archived.items()):
        if influx.get(policy, {}) != counts:
            return DeleteVerdict(changed=f'retention policy "{policy}" changed since the export')
    return DeleteVerdict()
