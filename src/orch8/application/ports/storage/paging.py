"""Paging and listing filters shared by the storage roles."""

from __future__ import annotations

from attrs import frozen

from orch8.domain.instance import InstanceState


@frozen
class SequenceFilter:
    tenant_id: str | None = None
    namespace: str | None = None
    name: str | None = None


@frozen
class InstanceFilter:
    tenant_id: str | None = None
    namespace: str | None = None
    sequence_id: str | None = None
    states: tuple[InstanceState, ...] = ()


@frozen
class Page:
    offset: int = 0
    limit: int = 100
