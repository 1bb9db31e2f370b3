"""Domain blocks back to their wire JSON (the same shape `blocks.read_blocks` accepts)."""

from __future__ import annotations

from typing import Any

from cattrs import Converter
from cattrs.gen import make_dict_unstructure_fn, override

from orch8.domain.sequence import (
    BLOCK_TYPES,
    Block,
    DelaySpec,
    HumanInput,
    RetryPolicy,
    StepBlock,
)

_converter = Converter(omit_if_default=True)

_RENAMES: dict[type[Any], dict[str, str]] = {
    DelaySpec: {"duration_ms": "duration", "jitter_ms": "jitter"},
    RetryPolicy: {"initial_backoff_ms": "initial_backoff", "max_backoff_ms": "max_backoff"},
    HumanInput: {"timeout_ms": "timeout"},
    StepBlock: {"timeout_ms": "timeout"},
}

for _cls, _names in _RENAMES.items():
    _converter.register_unstructure_hook(
        _cls,
        make_dict_unstructure_fn(
            _cls,
            _converter,
            _cattrs_omit_if_default=True,
            **{k: override(rename=v) for k, v in _names.items()},  # type: ignore[arg-type]
        ),
    )


def _with_tag(cls: type[Any]) -> None:
    inner = _converter.get_unstructure_hook(cls)

    def hook(block: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"type": BLOCK_TYPES[cls], **inner(block)}
        return out

    _converter.register_unstructure_hook(cls, hook)


for _cls in BLOCK_TYPES:
    _with_tag(_cls)


def block_to_json(block: Block) -> dict[str, Any]:
    result: dict[str, Any] = _converter.unstructure(block, type(block))
    return result


def blocks_to_json(blocks: tuple[Block, ...]) -> list[dict[str, Any]]:
    return [block_to_json(b) for b in blocks]
