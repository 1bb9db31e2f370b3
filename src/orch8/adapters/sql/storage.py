"""The role properties of a SQL storage, over the stores its dialect builds.

Both SQL backends expose their stores the same way; only which stores they
build, and how they open, check and close their connections, differ.
"""

from __future__ import annotations

from orch8.application.ports.storage import (
    ApiKeyStore,
    CronStore,
    InstanceStore,
    OutputStore,
    RateLimitStore,
    SequenceStore,
    SignalInbox,
    SnapshotStore,
    TaskQueue,
)


class SqlStorage:
    """A `Storage`'s store properties, each the store given at construction."""

    def __init__(
        self,
        *,
        sequences: SequenceStore,
        instances: InstanceStore,
        snapshots: SnapshotStore,
        outputs: OutputStore,
        signals: SignalInbox,
        tasks: TaskQueue,
        cron: CronStore,
        rate_limits: RateLimitStore,
        api_keys: ApiKeyStore,
    ) -> None:
        self._sequences = sequences
        self._instances = instances
        self._snapshots = snapshots
        self._outputs = outputs
        self._signals = signals
        self._tasks = tasks
        self._cron = cron
        self._rate_limits = rate_limits
        self._api_keys = api_keys

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
    def tasks(self) -> TaskQueue:
        return self._tasks

    @property
    def rate_limits(self) -> RateLimitStore:
        return self._rate_limits

    @property
    def cron(self) -> CronStore:
        return self._cron

    @property
    def api_keys(self) -> ApiKeyStore:
        return self._api_keys
