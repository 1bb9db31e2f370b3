"""Reading the block DSL from JSON, with errors that name the block and field.

A hand-written reader rather than a generic cattrs structure: the wire format
has quirks (float durations are seconds, unknown fields are tolerated for
Orch8 compatibility) and users need "block 'send'.retry.max_attempts: must be
an integer", not a stack of class-validation groups.

`READERS` holds one reader per block type, checked complete at import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from orch8.codec.fields import (
    array,
    boolean,
    duration,
    integer,
    json_object,
    number,
    obj,
    req,
    string,
)
from orch8.domain.errors import ValidationError
from orch8.domain.sequence import (
    BLOCK_TYPES,
    AbSplitBlock,
    Block,
    CancellationScopeBlock,
    Choice,
    DelaySpec,
    ForEachBlock,
    HumanInput,
    LoopBlock,
    ParallelBlock,
    RaceBlock,
    RaceSemantics,
    RetryPolicy,
    Route,
    RouterBlock,
    SagaBlock,
    SagaStep,
    SendWindow,
    StepBlock,
    SubSequenceBlock,
    TryCatchBlock,
    Variant,
    every_block,
)
from orch8.domain.validation import MAX_NESTING_DEPTH


def read_blocks(value: object, path: str, depth: int = 1) -> tuple[Block, ...]:
    if not isinstance(value, list):
        raise ValidationError("must be an array of blocks", path=path)
    return tuple(read_block(item, f"{path}[{i}]", depth) for i, item in enumerate(value))


def read_block(value: object, path: str, depth: int = 1) -> Block:
    data = obj(value, path)
    block_id = data.get("id")
    if not isinstance(block_id, str) or not block_id:
        raise ValidationError("block id must be a non-empty string", path=f"{path}.id")
    where = f"block '{block_id}'"
    if depth > MAX_NESTING_DEPTH:
        raise ValidationError(f"nesting depth exceeds {MAX_NESTING_DEPTH}", path=f"{where}.id")
    kind = data.get("type")
    reader = _BY_NAME.get(kind) if isinstance(kind, str) else None
    if reader is None:
        known = ", ".join(sorted(_BY_NAME))
        raise ValidationError(
            f"unknown block type {kind!r} (expected one of {known})", path=f"{where}.type"
        )
    return reader(data, block_id, where, depth)


def _step(data: Mapping[str, Any], bid: str, where: str, depth: int) -> StepBlock:
    handler = string(data, "handler", where, required=True)
    assert handler is not None
    params = json_object(data, "params", where) or {}
    return StepBlock(
        id=bid,
        handler=handler,
        params=dict(params),
        delay=_delay(data.get("delay"), f"{where}.delay"),
        retry=_retry(data.get("retry"), f"{where}.retry"),
        timeout_ms=duration(data, "timeout", where),
        rate_limit_key=string(data, "rate_limit_key", where),
        send_window=_window(data.get("send_window"), f"{where}.send_window"),
        when=string(data, "when", where),
        wait_for_input=_human(data.get("wait_for_input"), f"{where}.wait_for_input"),
        cancellable=boolean(data, "cancellable", where, True),
        queue_name=string(data, "queue_name", where),
        context_access=json_object(data, "context_access", where),
    )


def _delay(value: object, path: str) -> DelaySpec | None:
    if value is None:
        return None
    data = obj(value, path)
    holidays = array(data, "holidays", path)
    if not all(isinstance(h, str) for h in holidays):
        raise ValidationError("must be an array of YYYY-MM-DD dates", path=f"{path}.holidays")
    return DelaySpec(
        duration_ms=duration(data, "duration", path) or 0,
        business_days_only=boolean(data, "business_days_only", path, False),
        holidays=tuple(holidays),
        jitter_ms=duration(data, "jitter", path) or 0,
        fire_at_local=string(data, "fire_at_local", path),
        timezone=string(data, "timezone", path),
    )


def _retry(value: object, path: str) -> RetryPolicy | None:
    if value is None:
        return None
    data = obj(value, path)
    max_attempts = integer(data, "max_attempts", path, required=True)
    assert max_attempts is not None
    initial = duration(data, "initial_backoff", path)
    maximum = duration(data, "max_backoff", path)
    multiplier = number(data, "backoff_multiplier", path)
    return RetryPolicy(
        max_attempts=max_attempts,
        initial_backoff_ms=1000 if initial is None else initial,
        max_backoff_ms=60_000 if maximum is None else maximum,
        backoff_multiplier=2.0 if multiplier is None else multiplier,
    )


def _window(value: object, path: str) -> SendWindow | None:
    if value is None:
        return None
    data = obj(value, path)
    start = integer(data, "start_hour", path, required=True)
    end = integer(data, "end_hour", path, required=True)
    days = array(data, "days", path)
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in days):
        raise ValidationError("must be an array of integers 0-6", path=f"{path}.days")
    assert start is not None and end is not None
    return SendWindow(start_hour=start, end_hour=end, days=tuple(days))


def _human(value: object, path: str) -> HumanInput | None:
    if value is None:
        return None
    data = obj(value, path)
    raw_choices = data.get("choices")
    choices: tuple[Choice, ...] | None = None
    if raw_choices is not None:
        items = array(data, "choices", path)
        parsed = []
        for i, item in enumerate(items):
            c = obj(item, f"{path}.choices[{i}]")
            label = string(c, "label", f"{path}.choices[{i}]", required=True)
            val = string(c, "value", f"{path}.choices[{i}]", required=True)
            assert label is not None and val is not None
            parsed.append(Choice(label, val))
        choices = tuple(parsed)
    defaults = HumanInput()
    return HumanInput(
        prompt=string(data, "prompt", path) or "",
        choices=defaults.choices if choices is None else choices,
        timeout_ms=duration(data, "timeout", path),
        store_as=string(data, "store_as", path),
        escalation_handler=string(data, "escalation_handler", path),
    )


def _branches(data: Mapping[str, Any], where: str, depth: int) -> tuple[tuple[Block, ...], ...]:
    raw = array(data, "branches", where, required=True)
    return tuple(read_blocks(b, f"{where}.branches[{i}]", depth + 1) for i, b in enumerate(raw))


def _parallel(data: Mapping[str, Any], bid: str, where: str, depth: int) -> ParallelBlock:
    return ParallelBlock(id=bid, branches=_branches(data, where, depth))


def _race(data: Mapping[str, Any], bid: str, where: str, depth: int) -> RaceBlock:
    semantics = string(data, "semantics", where) or RaceSemantics.FIRST_TO_RESOLVE.value
    try:
        sem = RaceSemantics(semantics)
    except ValueError:
        raise ValidationError(
            "must be first_to_resolve or first_to_succeed", path=f"{where}.semantics"
        ) from None
    return RaceBlock(id=bid, branches=_branches(data, where, depth), semantics=sem)


def _loop(data: Mapping[str, Any], bid: str, where: str, depth: int) -> LoopBlock:
    condition = string(data, "condition", where, required=True)
    assert condition is not None
    max_iter = integer(data, "max_iterations", where)
    return LoopBlock(
        id=bid,
        condition=condition,
        body=read_blocks(req(data, "body", where), f"{where}.body", depth + 1),
        max_iterations=1000 if max_iter is None else max_iter,
        break_on=string(data, "break_on", where),
        continue_on_error=boolean(data, "continue_on_error", where, False),
    )


def _for_each(data: Mapping[str, Any], bid: str, where: str, depth: int) -> ForEachBlock:
    collection = string(data, "collection", where, required=True)
    assert collection is not None
    max_iter = integer(data, "max_iterations", where)
    return ForEachBlock(
        id=bid,
        collection=collection,
        body=read_blocks(req(data, "body", where), f"{where}.body", depth + 1),
        item_var=string(data, "item_var", where) or "item",
        max_iterations=1000 if max_iter is None else max_iter,
    )


def _router(data: Mapping[str, Any], bid: str, where: str, depth: int) -> RouterBlock:
    routes = []
    for i, raw in enumerate(array(data, "routes", where)):
        rpath = f"{where}.routes[{i}]"
        r = obj(raw, rpath)
        cond = string(r, "condition", rpath, required=True)
        assert cond is not None
        routes.append(
            Route(cond, read_blocks(req(r, "blocks", rpath), f"{rpath}.blocks", depth + 1))
        )
    default = data.get("default")
    return RouterBlock(
        id=bid,
        routes=tuple(routes),
        default=None if default is None else read_blocks(default, f"{where}.default", depth + 1),
    )


def _try_catch(data: Mapping[str, Any], bid: str, where: str, depth: int) -> TryCatchBlock:
    fin = data.get("finally_block")
    return TryCatchBlock(
        id=bid,
        try_block=read_blocks(req(data, "try_block", where), f"{where}.try_block", depth + 1),
        catch_block=read_blocks(data.get("catch_block") or [], f"{where}.catch_block", depth + 1),
        finally_block=None
        if fin is None
        else read_blocks(fin, f"{where}.finally_block", depth + 1),
    )


def _sub_sequence(data: Mapping[str, Any], bid: str, where: str, depth: int) -> SubSequenceBlock:
    name = string(data, "sequence_name", where, required=True)
    assert name is not None
    if not name:
        raise ValidationError("must not be empty", path=f"{where}.sequence_name")
    return SubSequenceBlock(
        id=bid,
        sequence_name=name,
        version=integer(data, "version", where),
        input=dict(json_object(data, "input", where) or {}),
    )


def _ab_split(data: Mapping[str, Any], bid: str, where: str, depth: int) -> AbSplitBlock:
    variants = []
    for i, raw in enumerate(array(data, "variants", where, required=True)):
        vpath = f"{where}.variants[{i}]"
        v = obj(raw, vpath)
        name = string(v, "name", vpath, required=True)
        weight = integer(v, "weight", vpath, required=True)
        assert name is not None and weight is not None
        variants.append(
            Variant(
                name, weight, read_blocks(req(v, "blocks", vpath), f"{vpath}.blocks", depth + 1)
            )
        )
    return AbSplitBlock(id=bid, variants=tuple(variants))


def _scope(data: Mapping[str, Any], bid: str, where: str, depth: int) -> CancellationScopeBlock:
    return CancellationScopeBlock(
        id=bid, blocks=read_blocks(req(data, "blocks", where), f"{where}.blocks", depth + 1)
    )


def _saga(data: Mapping[str, Any], bid: str, where: str, depth: int) -> SagaBlock:
    steps = []
    for i, raw in enumerate(array(data, "steps", where)):
        spath = f"{where}.steps[{i}]"
        s = obj(raw, spath)
        sid = string(s, "id", spath, required=True)
        assert sid is not None
        comp = s.get("compensation")
        steps.append(
            SagaStep(
                id=sid,
                action=read_block(req(s, "action", spath), f"{spath}.action", depth + 1),
                compensation=None
                if comp is None
                else read_block(comp, f"{spath}.compensation", depth + 1),
            )
        )
    return SagaBlock(id=bid, steps=tuple(steps))


Reader = Callable[[Mapping[str, Any], str, str, int], Block]

READERS: dict[type[Any], Reader] = every_block(
    {
        StepBlock: _step,
        ParallelBlock: _parallel,
        RaceBlock: _race,
        LoopBlock: _loop,
        ForEachBlock: _for_each,
        RouterBlock: _router,
        TryCatchBlock: _try_catch,
        SubSequenceBlock: _sub_sequence,
        AbSplitBlock: _ab_split,
        CancellationScopeBlock: _scope,
        SagaBlock: _saga,
    },
    "block reader",
)
_BY_NAME: dict[str, Reader] = {BLOCK_TYPES[cls]: read for cls, read in READERS.items()}
