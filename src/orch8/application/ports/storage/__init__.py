"""Storage ports: role-sized Protocols whose docstrings are the contract.

One module per role. A consumer names only the roles it uses (a use case that
reads sequences and writes instances takes a `SequenceStore` and an
`InstanceStore`); only the engine and the composition root hold the whole
`Storage`. Every adapter (memory, SQLite, PostgreSQL) implements all roles and
is held to the same contract test suite. Times are timezone-aware UTC
datetimes. Errors a role raises (`StaleWrite`, `Conflict`, `NotFound`, ...)
live in `orch8.application.errors`.
"""

from orch8.application.ports.storage.aggregate import Storage
from orch8.application.ports.storage.api_keys import ApiKeyStore
from orch8.application.ports.storage.cron import CRON_CLAIM_LEASE, CronStore
from orch8.application.ports.storage.instances import (
    CAP_DEFERRAL,
    EARLIEST_FIRE,
    LATEST_FIRE,
    RESCHEDULABLE,
    InstanceStore,
    movable_to,
    reschedulable,
)
from orch8.application.ports.storage.outputs import OutputStore
from orch8.application.ports.storage.paging import InstanceFilter, Page, SequenceFilter
from orch8.application.ports.storage.rate_limits import RateLimitStore
from orch8.application.ports.storage.sequences import SequenceStore
from orch8.application.ports.storage.signals import SignalInbox
from orch8.application.ports.storage.snapshots import SnapshotStore, SnapshotWrite
from orch8.application.ports.storage.tasks import TaskFilter, TaskQueue, TaskStats, WorkerSeen

__all__ = [
    "CAP_DEFERRAL",
    "CRON_CLAIM_LEASE",
    "EARLIEST_FIRE",
    "LATEST_FIRE",
    "RESCHEDULABLE",
    "ApiKeyStore",
    "CronStore",
    "InstanceFilter",
    "InstanceStore",
    "OutputStore",
    "Page",
    "RateLimitStore",
    "SequenceFilter",
    "SequenceStore",
    "SignalInbox",
    "SnapshotStore",
    "SnapshotWrite",
    "Storage",
    "TaskFilter",
    "TaskQueue",
    "TaskStats",
    "WorkerSeen",
    "movable_to",
    "reschedulable",
]
