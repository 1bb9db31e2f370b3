"""WHERE clauses for an `InstanceFilter`, in either dialect's placeholder style.

A listing or bulk change states only the filter fields that are set, so the
planner sees a statement it can match to the tenant/state or sequence index;
the statement is joined from constant fragments only, and every value is a
bound parameter. The dialects number their parameters alike (`$n` in
PostgreSQL, `?n` in SQLite) and differ only in how a list of states is bound
and tested, which each passes in as `Placeholders`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from attrs import frozen

from orch8.application.ports.storage import InstanceFilter, Page
from orch8.domain.instance import InstanceState

# Each condition's "{}" is its parameter's placeholder.
_EQUALS = {
    "tenant_id": "tenant_id = {}",
    "namespace": "namespace = {}",
    "sequence_id": "sequence_id = {}",
}


@frozen
class Placeholders:
    """One dialect's way of binding parameters in the statements built here."""

    mark: str  # the n-th parameter is `{mark}{n}`
    in_states: str  # the condition that `state` is in a bound list, "{}" for its placeholder
    state_list: Callable[[list[str]], Any]  # how that list is bound


class Params:
    """The parameters of one statement, numbered in the order they are bound."""

    def __init__(self, style: Placeholders, values: Iterable[Any] = ()) -> None:
        self.style = style
        self.values = list(values)

    def bind(self, value: Any) -> str:
        """Add `value`; its placeholder."""
        self.values.append(value)
        return f"{self.style.mark}{len(self.values)}"


def conditions(flt: InstanceFilter, states: tuple[InstanceState, ...], params: Params) -> list[str]:
    """The filter's conditions, `states` included when there are any."""
    fields = {
        "tenant_id": flt.tenant_id,
        "namespace": flt.namespace,
        "sequence_id": flt.sequence_id,
    }
    where = [
        _EQUALS[key].format(params.bind(value))
        for key, value in fields.items()
        if value is not None
    ]
    if states:
        listed = params.style.state_list([s.value for s in states])
        where.append(params.style.in_states.format(params.bind(listed)))
    return where


def query_sql(
    head: str, order: str, flt: InstanceFilter, page: Page, style: Placeholders
) -> tuple[str, list[Any]]:
    """`head` (a SELECT without WHERE), the filter's conditions, `order`, then the page."""
    params = Params(style)
    where = conditions(flt, flt.states, params)
    sql = head + (" WHERE " + " AND ".join(where) if where else "") + order
    limit, offset = params.bind(max(page.limit, 0)), params.bind(max(page.offset, 0))
    return f"{sql} LIMIT {limit} OFFSET {offset}", params.values
