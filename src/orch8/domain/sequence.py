"""The sequence DSL: a tagged family of block definitions.

Blocks are immutable values. They carry no parsing or serialisation of their
own (that lives in `orch8.codec`), so the evaluator can treat a sequence as
plain data and tests can build one directly.

Code that acts on blocks by type must handle every type: a `match` ends in
`assert_never` (mypy proves it exhaustive), and a table keyed by block type
goes through `every_block`, which refuses at import a table that misses one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, TypeVar, assert_never, get_args

from attrs import field, frozen

JsonObject = Mapping[str, Any]
V = TypeVar("V")


@frozen
class DelaySpec:
    duration_ms: int = 0
    business_days_only: bool = False
    holidays: tuple[str, ...] = ()
    jitter_ms: int = 0
    fire_at_local: str | None = None
    timezone: str | None = None


@frozen
class RetryPolicy:
    """`max_attempts` counts every attempt, the first included."""

    max_attempts: int
    initial_backoff_ms: int = 1000
    max_backoff_ms: int = 60_000
    backoff_multiplier: float = 2.0


@frozen
class SendWindow:
    start_hour: int
    end_hour: int
    days: tuple[int, ...] = ()


@frozen
class Choice:
    label: str
    value: str


@frozen
class HumanInput:
    prompt: str = ""
    choices: tuple[Choice, ...] = (Choice("Yes", "yes"), Choice("No", "no"))
    timeout_ms: int | None = None
    store_as: str | None = None
    escalation_handler: str | None = None


@frozen
class StepBlock:
    id: str
    handler: str
    params: JsonObject = field(factory=dict)
    delay: DelaySpec | None = None
    retry: RetryPolicy | None = None
    timeout_ms: int | None = None
    rate_limit_key: str | None = None
    send_window: SendWindow | None = None
    when: str | None = None
    wait_for_input: HumanInput | None = None
    cancellable: bool = True
    queue_name: str | None = None
    context_access: JsonObject | None = None


@frozen
class ParallelBlock:
    id: str
    branches: tuple[tuple[Block, ...], ...]


class RaceSemantics(StrEnum):
    FIRST_TO_RESOLVE = "first_to_resolve"
    FIRST_TO_SUCCEED = "first_to_succeed"


@frozen
class RaceBlock:
    id: str
    branches: tuple[tuple[Block, ...], ...]
    semantics: RaceSemantics = RaceSemantics.FIRST_TO_RESOLVE


@frozen
class LoopBlock:
    id: str
    condition: str
    body: tuple[Block, ...]
    max_iterations: int = 1000
    break_on: str | None = None
    continue_on_error: bool = False


@frozen
class ForEachBlock:
    id: str
    collection: str
    body: tuple[Block, ...]
    item_var: str = "item"
    max_iterations: int = 1000


@frozen
class Route:
    condition: str
    blocks: tuple[Block, ...]


@frozen
class RouterBlock:
    id: str
    routes: tuple[Route, ...]
    default: tuple[Block, ...] | None = None


@frozen
class TryCatchBlock:
    id: str
    try_block: tuple[Block, ...]
    catch_block: tuple[Block, ...] = ()
    finally_block: tuple[Block, ...] | None = None


@frozen
class SubSequenceBlock:
    id: str
    sequence_name: str
    version: int | None = None
    input: JsonObject = field(factory=dict)


@frozen
class Variant:
    name: str
    weight: int
    blocks: tuple[Block, ...]


@frozen
class AbSplitBlock:
    id: str
    variants: tuple[Variant, ...]


@frozen
class CancellationScopeBlock:
    id: str
    blocks: tuple[Block, ...]


@frozen
class SagaStep:
    id: str
    action: Block
    compensation: Block | None = None


@frozen
class SagaBlock:
    id: str
    steps: tuple[SagaStep, ...]


Block = (
    StepBlock
    | ParallelBlock
    | RaceBlock
    | LoopBlock
    | ForEachBlock
    | RouterBlock
    | TryCatchBlock
    | SubSequenceBlock
    | AbSplitBlock
    | CancellationScopeBlock
    | SagaBlock
)

BLOCK_CLASSES: Final[tuple[type[Block], ...]] = get_args(Block)


def every_block(table: Mapping[type[Any], V], what: str) -> dict[type[Any], V]:
    """`table`, once it holds an entry for every block type and for nothing else.

    Each table keyed by block type (drivers, readers, writers, wire names) is built
    through this, so a block type added to `Block` but forgotten in one of them
    stops the process at import instead of failing the first instance that uses it.
    """
    missing = [cls.__name__ for cls in BLOCK_CLASSES if cls not in table]
    strays = [getattr(key, "__name__", repr(key)) for key in table if key not in BLOCK_CLASSES]
    if missing or strays:
        raise TypeError(f"the {what} table misses block types {missing} or has strays {strays}")
    return dict(table)


BLOCK_TYPES: Final[dict[type[Any], str]] = every_block(
    {
        StepBlock: "step",
        ParallelBlock: "parallel",
        RaceBlock: "race",
        LoopBlock: "loop",
        ForEachBlock: "for_each",
        RouterBlock: "router",
        TryCatchBlock: "try_catch",
        SubSequenceBlock: "sub_sequence",
        AbSplitBlock: "ab_split",
        CancellationScopeBlock: "cancellation_scope",
        SagaBlock: "saga",
    },
    "block type name",
)


def block_type(block: Block) -> str:
    return BLOCK_TYPES[type(block)]


def child_lists(block: Block) -> tuple[tuple[Block, ...], ...]:
    """Every list of blocks nested directly inside `block`, in branch order.

    The branch index of a child is the position of its list here, which is what
    the execution tree records as `branch_index`.
    """
    match block:
        case StepBlock() | SubSequenceBlock():
            return ()
        case ParallelBlock(branches=branches) | RaceBlock(branches=branches):
            return branches
        case LoopBlock(body=body) | ForEachBlock(body=body):
            return (body,)
        case RouterBlock(routes=routes, default=default):
            lists = tuple(route.blocks for route in routes)
            return (*lists, default) if default is not None else lists
        case TryCatchBlock(try_block=t, catch_block=c, finally_block=f):
            return (t, c, f) if f is not None else (t, c)
        case AbSplitBlock(variants=variants):
            return tuple(v.blocks for v in variants)
        case CancellationScopeBlock(blocks=blocks):
            return (blocks,)
        case SagaBlock(steps=steps):
            return tuple(
                (s.action,) if s.compensation is None else (s.action, s.compensation) for s in steps
            )
        case _:
            assert_never(block)


def expressions_of(block: Block) -> tuple[tuple[str, str], ...]:
    """The expressions a block holds itself (not its children's), as (field, text).

    Validation parses each at creation and the engine reads which outputs they
    name; both ask here, so a block type with an expression field is described once.
    """
    match block:
        case StepBlock(when=when):
            return () if when is None else (("when", when),)
        case LoopBlock(condition=condition, break_on=break_on):
            found = (("condition", condition),)
            return found if break_on is None else (*found, ("break_on", break_on))
        case ForEachBlock(collection=collection):
            return (("collection", collection),)
        case RouterBlock(routes=routes):
            return tuple((f"routes[{i}].condition", r.condition) for i, r in enumerate(routes))
        case (
            ParallelBlock()
            | RaceBlock()
            | TryCatchBlock()
            | SubSequenceBlock()
            | AbSplitBlock()
            | CancellationScopeBlock()
            | SagaBlock()
        ):
            return ()
        case _:
            assert_never(block)


def templates_of(block: Block) -> tuple[tuple[str, JsonObject], ...]:
    """The template-bearing objects a block holds itself, as (field, value)."""
    match block:
        case StepBlock(params=params):
            return (("params", params),)
        case SubSequenceBlock(input=values):
            return (("input", values),)
        case (
            ParallelBlock()
            | RaceBlock()
            | LoopBlock()
            | ForEachBlock()
            | RouterBlock()
            | TryCatchBlock()
            | AbSplitBlock()
            | CancellationScopeBlock()
            | SagaBlock()
        ):
            return ()
        case _:
            assert_never(block)


@frozen
class Sequence:
    id: str
    tenant_id: str
    namespace: str
    name: str
    version: int
    blocks: tuple[Block, ...]
    created_at: datetime
    deprecated: bool = False
    input_schema: JsonObject | None = None
    on_failure: tuple[Block, ...] | None = None
    on_cancel: tuple[Block, ...] | None = None


def walk(blocks: tuple[Block, ...]) -> list[tuple[Block, int]]:
    """Every block in `blocks` and below, depth-first, with its nesting depth (1 = top)."""
    out: list[tuple[Block, int]] = []
    stack: list[tuple[Block, int]] = [(b, 1) for b in reversed(blocks)]
    while stack:
        block, depth = stack.pop()
        out.append((block, depth))
        for lst in reversed(child_lists(block)):
            stack.extend((b, depth + 1) for b in reversed(lst))
    return out
