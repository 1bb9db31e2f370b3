"""The use cases an entrypoint drives, as one typed bundle.

REST, gRPC and the CLI translate requests into calls on these objects and
nothing else; the composition root builds one `UseCases` per process, so a new
entrypoint needs no wiring of its own.
"""

from __future__ import annotations

from attrs import frozen

from orch8.application.use_cases.api_keys import ApiKeyService
from orch8.application.use_cases.cron import CronService
from orch8.application.use_cases.instance_ops import InstanceOps
from orch8.application.use_cases.instance_stream import InstanceStream
from orch8.application.use_cases.instances import InstanceService
from orch8.application.use_cases.rate_limits import RateLimitService
from orch8.application.use_cases.sequences import SequenceCatalog
from orch8.application.use_cases.service_info import MetricsService, ServerInfo
from orch8.application.use_cases.signals import SignalService
from orch8.application.use_cases.workers import WorkerService


@frozen
class UseCases:
    sequences: SequenceCatalog
    instances: InstanceService
    instance_ops: InstanceOps
    signals: SignalService
    streams: InstanceStream
    workers: WorkerService
    cron: CronService
    rate_limits: RateLimitService
    api_keys: ApiKeyService
    metrics: MetricsService
    info: ServerInfo
