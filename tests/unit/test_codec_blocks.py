"""Reading and writing the block DSL: round trips and error messages."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from orch8.codec.block_json import blocks_to_json
from orch8.codec.blocks import read_blocks
from orch8.domain.errors import ValidationError
from orch8.domain.validation import validate_blocks
from tests.strategies import any_blocks


@settings(max_examples=150)
@given(any_blocks())
def test_every_block_tree_round_trips_through_json(blocks) -> None:
    as_tuple = tuple(blocks)
    assert read_blocks(blocks_to_json(as_tuple), "blocks") == as_tuple


@settings(max_examples=100)
@given(any_blocks())
def test_generated_trees_validate(blocks) -> None:
    validate_blocks(tuple(blocks))


def error_of(raw: object) -> str:
    try:
        validate_blocks(read_blocks(raw, "blocks"))
    except ValidationError as exc:
        return str(exc)
    raise AssertionError(f"accepted: {raw!r}")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([], "blocks: must contain at least one block"),
        ({"type": "step"}, "blocks: must be an array of blocks"),
        (
            [{"type": "step", "handler": "noop"}],
            "blocks[0].id: block id must be a non-empty string",
        ),
        ([{"type": "nope", "id": "a"}], "block 'a'.type: unknown block type 'nope'"),
        ([{"type": "step", "id": "a"}], "block 'a'.handler: is required"),
        (
            [{"type": "step", "id": "a", "handler": "x", "delay": {"duration": -5}}],
            "block 'a'.delay.duration: must not be negative",
        ),
        (
            [{"type": "step", "id": "a", "handler": "x", "delay": {"duration": "1s"}}],
            "block 'a'.delay.duration: must be a duration in integer milliseconds",
        ),
        (
            [{"type": "step", "id": "a", "handler": "x", "timeout": -1}],
            "block 'a'.timeout: must not be negative",
        ),
        (
            [{"type": "step", "id": "a", "handler": "x", "retry": {"max_attempts": 0}}],
            "block 'a'.retry.max_attempts: must be positive",
        ),
        (
            [
                {"type": "step", "id": "a", "handler": "x"},
                {"type": "step", "id": "a", "handler": "y"},
            ],
            "block 'a'.id: duplicate block id 'a'",
        ),
        (
            [
                {
                    "type": "step",
                    "id": "a",
                    "handler": "x",
                    "send_window": {"start_hour": 25, "end_hour": 3},
                }
            ],
            "block 'a'.send_window.start_hour: must be 0-23",
        ),
        (
            [{"type": "parallel", "id": "p", "branches": []}],
            "block 'p'.branches: needs at least one branch",
        ),
        (
            [{"type": "loop", "id": "l", "condition": "x", "body": [], "max_iterations": 5}],
            "block 'l'.body: must not be empty",
        ),
        (
            [{"type": "race", "id": "r", "branches": [[]], "semantics": "fastest"}],
            "block 'r'.semantics: must be first_to_resolve or first_to_succeed",
        ),
    ],
)
def test_errors_name_the_block_and_field(raw: object, expected: str) -> None:
    assert expected in error_of(raw)


def nested(depth: int) -> list[dict[str, object]]:
    inner: list[dict[str, object]] = [{"type": "step", "id": "leaf", "handler": "noop"}]
    for level in range(depth - 1):
        inner = [{"type": "cancellation_scope", "id": f"c{level}", "blocks": inner}]
    return inner


def test_nesting_depth_limit_is_64() -> None:
    validate_blocks(read_blocks(nested(64), "blocks"))
    assert "nesting depth exceeds 64" in error_of(nested(65))


def test_float_durations_are_seconds() -> None:
    (step,) = read_blocks(
        [{"type": "step", "id": "a", "handler": "x", "delay": {"duration": 1.5}}], "b"
    )
    assert step.delay is not None
    assert step.delay.duration_ms == 1500


def test_unknown_fields_are_tolerated_for_compatibility() -> None:
    (step,) = read_blocks(
        [{"type": "step", "id": "a", "handler": "x", "cache_key": "k", "deadline": 5}], "b"
    )
    assert step.handler == "x"
