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
