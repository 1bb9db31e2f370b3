"""How client commands print: aligned tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import click

CELL_WIDTH = 60


def emit_json(document: Any) -> None:
    """The one JSON document a `--json` command prints on stdout."""
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


def emit_json_line(document: Any) -> None:
    """One compact JSON document on a line of its own (streams: JSON Lines)."""
    click.echo(json.dumps(document, separators=(",", ":"), ensure_ascii=False))


def compact(value: Any, width: int = CELL_WIDTH) -> str:
    """A value on one line, cut to `width` characters (`…` marks a cut)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str | int | float):
        return str(value)
    return compact(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Left-aligned columns two spaces apart; the last column is not padded."""
    text = [list(headers)] + [[cell(value) for value in row] for row in rows]
    widths = [max(len(line[i]) for line in text) for i in range(len(headers))]
    return "\n".join(
        "  ".join(value.ljust(width) for value, width in zip(line, widths, strict=True)).rstrip()
        for line in text
    )


def fields(pairs: Iterable[tuple[str, Any]]) -> str:
    """`name  value` lines, the names aligned."""
    items = [(name, cell(value)) for name, value in pairs]
    width = max((len(name) for name, _ in items), default=0)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in items)


def tree_rows(nodes: Sequence[Mapping[str, Any]]) -> list[tuple[int, Mapping[str, Any]]]:
    """The execution tree depth-first, each node with its depth; siblings keep the
    server's order, and a node whose parent is missing is shown at the top."""
    ids = {node.get("id") for node in nodes}
    children: dict[Any, list[Mapping[str, Any]]] = {}
    for node in nodes:
        parent = node.get("parent_id")
        children.setdefault(parent if parent in ids else None, []).append(node)
    ordered: list[tuple[int, Mapping[str, Any]]] = []
    stack = [(0, node) for node in reversed(children.get(None, []))]
    seen: set[Any] = set()
    while stack:
        depth, node = stack.pop()
        if node.get("id") in seen:
            continue
        seen.add(node.get("id"))
        ordered.append((depth, node))
        stack.extend((depth + 1, child) for child in reversed(children.get(node.get("id"), [])))
    return ordered
