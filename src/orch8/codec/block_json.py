"""Domain blocks back to their wire JSON (the same shape `blocks.read_blocks` accepts).

`WRITERS` holds one writer per block type, checked complete at import: a block
without one would otherwise be written untagged by cattrs' generic hook.
"""

from __future__ import annotations

from collections.abc import Callable
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
    every_block,
)

_converter = Converter(omit_if_default=True)

_RENAMES: dict[type[Any], dict[str, str]] = {
    DelaySpec: {"duration_ms": "duration", "jitter_ms": "jitter"},
    RetryPolicy: {"initial_backoff_ms": "initial_backoff", "max_backoff_ms": "max_backoff"},
    HumanInput: {"timeout_ms": "timeout"},
    StepBlock: {"timeout_ms": "timeout"},
}

# Orch8's clients require every retry field and the delay duration, defaults or not.
_KEEP_DEFAULTS: dict[type[Any], tuple[str, ...]] = {
    DelaySpec: ("duration_ms",),
    RetryPolicy: ("initial_backoff_ms", "max_backoff_ms", "backoff_multiplier"),
}

for _cls, _names in _RENAMES.items():
    _keep = _KEEP_DEFAULTS.get(_cls, ())
    _converter.register_unstructure_hook(
        _cls,
        make_dict_unstructure_fn(
            _cls,
            _converter,
            _cattrs_omit_if_default=True,
            **{k: override(omit_if_default=False) for k in _keep if k not in _names},  # type: ignore[arg-type]
            **{
                k: override(rename=v, omit_if_default=False if k in _keep else None)
                for k, v in _names.items()
            },  # type: ignore[arg-type]
        ),
    )


Writer = Callable[[Any], dict[str, Any]]


def _tagged(cls: type[Any]) -> Writer:
    """The writer of `cls`: its fields (renamed as above) under its wire `type`."""
    inner = _converter.get_unstructure_hook(cls)
    name = BLOCK_TYPES[cls]

    def write(block: Any) -> dict[str, Any]:
        return {"type": name, **inner(block)}

    _converter.register_unstructure_hook(cls, write)  # for blocks nested in others
    return write


WRITERS: dict[type[Any], Writer] = every_block(
    {cls: _tagged(cls) for cls in BLOCK_TYPES}, "block writer"
)


def block_to_json(block: Block) -> dict[str, Any]:
    return WRITERS[type(block)](block)


def blocks_to_json(blocks: tuple[Block, ...]) -> list[dict[str, Any]]:
    return [block_to_json(b) for b in blocks]
