"""`Storage`: every role of one backend, plus its lifecycle."""

from __future__ import annotations

from typing import Protocol

from orch8.application.ports.storage.api_keys import ApiKeyStore
from orch8.application.ports.storage.cron import CronStore
from orch8.application.ports.storage.instances import InstanceStore
from orch8.application.ports.storage.outputs import OutputStore
from orch8.application.ports.storage.rate_limits import RateLimitStore
from orch8.application.ports.storage.sequences import SequenceStore
from orch8.application.ports.storage.signals import SignalInbox
from orch8.application.ports.storage.snapshots import SnapshotStore
from orch8.application.ports.storage.tasks import TaskQueue


class Storage(Protocol):
    """The whole storage of one backend; what the composition root hands the engine."""

    @property
    def sequences(self) -> SequenceStore: ...

    @property
    def instances(self) -> InstanceStore: ...

    @property
    def snapshots(self) -> SnapshotStore: ...

    @property
    def outputs(self) -> OutputStore: ...

    @property
    def signals(self) -> SignalInbox: ...

    @property
    def rate_limits(self) -> RateLimitStore: ...

    @property
    def tasks(self) -> TaskQueue: ...

    @property
    def cron(self) -> CronStore: ...

    @property
    def api_keys(self) -> ApiKeyStore: ...

    async def migrate(self) -> None:
        """Bring the schema to the latest version; safe to run repeatedly."""
        ...

    async def ping(self) -> None:
        """Raise if the backend cannot serve requests (used by /health/ready)."""
        ...

    async def close(self) -> None:
        """Finish queued writes and release connections; safe to call twice."""
        ...
