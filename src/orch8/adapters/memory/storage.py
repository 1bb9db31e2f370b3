"""MemoryStorage: the whole in-process backend behind the `Storage` port.

Each role is a view over one `MemoryState`, as each SQL store is over one
database. It is written out in full rather than built on the SQL kit's
aggregate, because adapters stand independent of each other.
"""

from __future__ import annotations

from orch8.adapters.memory.api_keys import MemoryApiKeyStore
from orch8.adapters.memory.cron import MemoryCronStore
from orch8.adapters.memory.instances import MemoryInstanceStore
from orch8.adapters.memory.outputs import MemoryOutputStore
from orch8.adapters.memory.rate_limits import MemoryRateLimitStore
from orch8.adapters.memory.sequences import MemorySequenceStore
from orch8.adapters.memory.signals import MemorySignalInbox
from orch8.adapters.memory.snapshots import MemorySnapshotStore
from orch8.adapters.memory.state import MemoryState
from orch8.adapters.memory.tasks import MemoryTaskQueue
from orch8.application.ports.storage import (
    InstanceStore,
    OutputStore,
    RateLimitStore,
    SequenceStore,
    SignalInbox,
    SnapshotStore,
    Storage,
)


class MemoryStorage(Storage):
    def __init__(self) -> None:
        state = MemoryState()
        self._sequences = MemorySequenceStore(state)
        self._instances = MemoryInstanceStore(state)
        self._snapshots = MemorySnapshotStore(state)
        self._outputs = MemoryOutputStore(state)
        self._signals = MemorySignalInbox(state)
        self._tasks = MemoryTaskQueue(state.tasks, state.instances)
        self._cron = MemoryCronStore(state.instances)
        self._rate_limits = MemoryRateLimitStore()
        self._api_keys = MemoryApiKeyStore()

    @property
    def sequences(self) -> SequenceStore:
        return self._sequences

    @property
    def instances(self) -> InstanceStore:
        return self._instances

    @property
    def snapshots(self) -> SnapshotStore:
        return self._snapshots

    @property
    def outputs(self) -> OutputStore:
        return self._outputs

    @property
    def signals(self) -> SignalInbox:
        return self._signals

    @property
    def tasks(self) -> MemoryTaskQueue:
        return self._tasks

    @property
    def rate_limits(self) -> RateLimitStore:
        return self._rate_limits

    @property
    def cron(self) -> MemoryCronStore:
        return self._cron

    @property
    def api_keys(self) -> MemoryApiKeyStore:
        return self._api_keys

    async def migrate(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
