"""Publish-time checks of a sequence: the limits that keep evaluation bounded.

Parsing (in the codec) already guarantees each field has the right type; here
we check what only makes sense across fields or across the whole tree.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import assert_never

from orch8.domain.errors import ValidationError
from orch8.domain.expressions import check as check_expression
from orch8.domain.scheduling.local_time import zone
from orch8.domain.sequence import (
    AbSplitBlock,
    Block,
    CancellationScopeBlock,
    ForEachBlock,
    LoopBlock,
    ParallelBlock,
    RaceBlock,
    RouterBlock,
    SagaBlock,
    StepBlock,
    SubSequenceBlock,
    TryCatchBlock,
    expressions_of,
    templates_of,
    walk,
)
from orch8.domain.templates import check as check_template

MAX_NESTING_DEPTH = 64
MAX_BLOCKS = 5000
MAX_BRANCHES = 256
MAX_ITERATIONS = 100_000


def _where(block: Block, field: str) -> str:
    return f"block '{block.id}'.{field}"


def validate_blocks(
    blocks: tuple[Block, ...],
    *,
    cleanup: tuple[tuple[Block, ...], ...] = (),
) -> None:
    """Raise ValidationError for the first rule `blocks` breaks.

    Cleanup trees (on_failure / on_cancel) count towards the block limit but
    may reuse ids of the main tree, as in Orch8.
    """
    if not blocks:
        raise ValidationError("must contain at least one block", path="blocks")
    total = 0
    for tree in (blocks, *cleanup):
        seen: set[str] = set()
        for block, depth in walk(tree):
            total += 1
            if depth > MAX_NESTING_DEPTH:
                raise ValidationError(
                    f"nesting depth exceeds {MAX_NESTING_DEPTH}", path=_where(block, "id")
                )
            if not block.id:
                raise ValidationError("block id must not be empty", path="blocks[].id")
            if block.id in seen:
                raise ValidationError(f"duplicate block id '{block.id}'", path=_where(block, "id"))
            seen.add(block.id)
            _validate_block(block)
    if total > MAX_BLOCKS:
        raise ValidationError(f"a sequence may hold at most {MAX_BLOCKS} blocks", path="blocks")


def _check_expressions(block: Block) -> None:
    """Every expression and template must parse: a typo is a 400 now, not a failed
    instance at three in the morning."""
    for field_name, text in expressions_of(block):
        check_expression(text, where=_where(block, field_name))
    for field_name, value in templates_of(block):
        check_template(dict(value), where=_where(block, field_name))


def _validate_block(block: Block) -> None:
    _validate_shape(block)
    _check_expressions(block)


def _validate_shape(block: Block) -> None:
    match block:
        case StepBlock():
            _validate_step(block)
        case ParallelBlock(branches=branches) | RaceBlock(branches=branches):
            if not branches:
                raise ValidationError("needs at least one branch", path=_where(block, "branches"))
            if len(branches) > MAX_BRANCHES:
                raise ValidationError(
                    f"at most {MAX_BRANCHES} branches", path=_where(block, "branches")
                )
        case LoopBlock() | ForEachBlock():
            if not 0 < block.max_iterations <= MAX_ITERATIONS:
                raise ValidationError(
                    f"must be between 1 and {MAX_ITERATIONS}", path=_where(block, "max_iterations")
                )
            if not block.body:
                raise ValidationError("must not be empty", path=_where(block, "body"))
            if isinstance(block, LoopBlock) and not block.condition.strip():
                raise ValidationError("must not be empty", path=_where(block, "condition"))
            if isinstance(block, ForEachBlock):
                if not block.collection.strip():
                    raise ValidationError("must not be empty", path=_where(block, "collection"))
                if not block.item_var.strip():
                    raise ValidationError("must not be empty", path=_where(block, "item_var"))
        case RouterBlock(routes=routes, default=default):
            if not routes and default is None:
                raise ValidationError(
                    "needs at least one route or a default", path=_where(block, "routes")
                )
            if len(routes) > MAX_BRANCHES:
                raise ValidationError(
                    f"at most {MAX_BRANCHES} routes", path=_where(block, "routes")
                )
            for i, route in enumerate(routes):
                if not route.condition.strip():
                    raise ValidationError(
                        "must not be empty", path=_where(block, f"routes[{i}].condition")
                    )
        case TryCatchBlock(try_block=try_block):
            if not try_block:
                raise ValidationError("must not be empty", path=_where(block, "try_block"))
        case AbSplitBlock(variants=variants):
            if len(variants) < 2:
                raise ValidationError("needs at least two variants", path=_where(block, "variants"))
            if len(variants) > MAX_BRANCHES:
                raise ValidationError(
                    f"at most {MAX_BRANCHES} variants", path=_where(block, "variants")
                )
            names = [v.name for v in variants]
            if any(not n for n in names) or len(set(names)) != len(names):
                raise ValidationError(
                    "variant names must be non-empty and unique", path=_where(block, "variants")
                )
            if any(v.weight < 0 for v in variants) or sum(v.weight for v in variants) <= 0:
                raise ValidationError(
                    "weights must be non-negative with a positive total",
                    path=_where(block, "variants"),
                )
        case CancellationScopeBlock(blocks=inner):
            if not inner:
                raise ValidationError("must not be empty", path=_where(block, "blocks"))
        case SubSequenceBlock() | SagaBlock():
            pass  # nothing of their own to check (nested blocks are checked on their own)
        case _:
            assert_never(block)


def _validate_step(step: StepBlock) -> None:
    if not step.handler.strip():
        raise ValidationError("must not be empty", path=_where(step, "handler"))
    retry = step.retry
    if retry is not None:
        if retry.max_attempts <= 0:
            raise ValidationError("must be positive", path=_where(step, "retry.max_attempts"))
        if retry.backoff_multiplier <= 0:
            raise ValidationError("must be positive", path=_where(step, "retry.backoff_multiplier"))
        if retry.initial_backoff_ms > retry.max_backoff_ms:
            raise ValidationError(
                "must not exceed retry.max_backoff", path=_where(step, "retry.initial_backoff")
            )
    delay = step.delay
    if delay is not None:
        if delay.timezone is not None:
            zone(delay.timezone, path=_where(step, "delay.timezone"))
        if delay.fire_at_local is not None:
            try:
                local = datetime.fromisoformat(delay.fire_at_local)
            except ValueError:
                local = None
            if local is None or local.tzinfo is not None:
                raise ValidationError(
                    "must be a local date-time without offset, e.g. 2026-03-08T09:30:00",
                    path=_where(step, "delay.fire_at_local"),
                )
        for holiday in delay.holidays:
            try:
                date.fromisoformat(holiday)
            except ValueError:
                raise ValidationError(
                    f"'{holiday}' is not a YYYY-MM-DD date", path=_where(step, "delay.holidays")
                ) from None
    if step.timeout_ms is not None and step.timeout_ms <= 0:
        raise ValidationError("must be positive", path=_where(step, "timeout"))
    window = step.send_window
    if window is not None:
        for name, hour in (("start_hour", window.start_hour), ("end_hour", window.end_hour)):
            if not 0 <= hour <= 23:
                raise ValidationError("must be 0-23", path=_where(step, f"send_window.{name}"))
        if window.start_hour == window.end_hour:
            raise ValidationError(
                "start_hour and end_hour must differ", path=_where(step, "send_window")
            )
        if any(not 0 <= d <= 6 for d in window.days):
            raise ValidationError(
                "days must be 0 (Monday) to 6 (Sunday)", path=_where(step, "send_window.days")
            )
    human = step.wait_for_input
    if human is not None:
        values = [c.value for c in human.choices]
        if not values or len(set(values)) != len(values):
            raise ValidationError(
                "choices must be non-empty with unique values",
                path=_where(step, "wait_for_input.choices"),
            )
