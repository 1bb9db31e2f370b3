"""The composition root's process lifecycle on real SQLite storage: open migrates,
the engine runs what the use cases create, close releases everything once, and a
closed process says so instead of half-working."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from orch8.application.commands import NewInstance, NewSequence
from orch8.application.ports.handlers import StepCall
from orch8.bootstrap.process import build
from orch8.bootstrap.settings import Settings
from orch8.codec.blocks import read_blocks
from orch8.domain.instance import InstanceState


async def test_a_built_process_runs_work_end_to_end_and_closes_once(tmp_path: Path) -> None:
    seen: list[str] = []

    async def record(call: StepCall) -> Any:
        seen.append(call.block_id)
        return {}

    settings = Settings(database_url=f"sqlite://{tmp_path / 'p.db'}", tick_interval_ms=10)
    process = build(settings, handlers={"record": record})
    async with process:
        await process.start_engine()
        uc = process.use_cases
        blocks = read_blocks([{"type": "step", "id": "a", "handler": "record"}], "blocks")
        seq = await uc.sequences.create(
            NewSequence(tenant_id="t", namespace="default", name="s", blocks=blocks), caller=None
        )
        started = await uc.instances.create(NewInstance(sequence_id=seq.id), caller=None)
        async with asyncio.timeout(10):
            while (
                await uc.instances.get(started.instance.id, caller=None)
            ).state is not InstanceState.COMPLETED:
                await asyncio.sleep(0.01)
    assert seen == ["a"]
    assert not process.engine.running
    await process.close()  # a second close is harmless
    with pytest.raises(RuntimeError, match="closed"):
        await process.open()


async def test_without_migrations_configured_open_leaves_the_schema_alone(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite://{tmp_path / 'p.db'}", run_migrations=False)
    async with build(settings) as process:
        with pytest.raises(Exception, match="no such table"):
            await process.storage.instances.get("x")
