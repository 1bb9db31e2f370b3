"""Finding the numbered migrations an adapter ships, and choosing which to apply.

`migrations/NNNN_name.sql` files, package data of each SQL adapter, are the
schema's only source: a fresh database is built by replaying them, so a fresh
schema and an upgraded one cannot drift. How a migration is applied (its
transaction, its lock) is the dialect's; which ones, and the refusal of a
database newer than this code, are decided here for both.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from importlib.resources import files

from attrs import frozen

_FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@frozen
class Migration:
    version: int
    name: str
    sql: str


def shipped_migrations(package: str) -> list[Migration]:
    """Every migration in `package`'s migrations folder, lowest version first."""
    found: list[Migration] = []
    for entry in (files(package) / "migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is not None:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions in {[m.name for m in found]}")
    return found


def pending(
    migrations: list[Migration], done: Iterable[int], target: int | None
) -> list[Migration]:
    """The migrations not yet applied, up to `target` (default: all), in order.
    Refuses a database that records versions newer than any shipped."""
    applied = set(done)
    latest = migrations[-1].version if migrations else 0
    newer = sorted(v for v in applied if v > latest)
    if newer:
        raise RuntimeError(
            f"database schema has versions {newer}, newer than this orch8 knows ({latest})"
        )
    return [
        m
        for m in migrations
        if m.version not in applied and (target is None or m.version <= target)
    ]
