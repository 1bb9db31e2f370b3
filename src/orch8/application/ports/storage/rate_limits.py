"""`RateLimitStore`: rate-limit definitions and the log of places they hand out."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from collections.abc import Sequence as Seq
from datetime import datetime
from typing import Protocol

from orch8.domain.rate_limits import Admission, RateLimit


class RateLimitStore(Protocol):
    """Per-tenant limits on keyed uses (a step's `rate_limit_key`) and the atomic
    admission check behind them: an exact sliding log (domain/rate_limits.py)."""

    async def upsert(self, limit: RateLimit) -> RateLimit:
        """Store the limit of (limit.tenant_id, limit.key), replacing any existing one;
        returns what is stored. A replaced limit keeps its created_at and its
        admission log: the new numbers apply at once to the admissions already
        made (lowering a limit never opens a burst)."""
        ...

    async def get(self, tenant_id: str, key: str) -> RateLimit | None: ...

    async def list(self, tenant_id: str | None) -> list[RateLimit]:
        """The limits of one tenant (None: of every tenant), by tenant_id, then key."""
        ...

    async def delete(self, tenant_id: str, key: str) -> bool:
        """Remove the limit and its admission log in one transaction; False when absent.
        A use of the key is then always admitted (until a limit is stored again,
        which starts with an empty log)."""
        ...

    async def acquire(
        self, tenant_id: str, key: str, now: datetime, held: datetime | None = None
    ) -> Admission | None:
        """The place of one use of `key` asking at `now` (`RateLimit.keep`, `RateLimit.reserve`).

        Atomically, across every process sharing the database (the uses of one
        key are serialised by a lock on its limit row): a `held` place that can
        still be used (`now` at most the limit's grace after it) is kept, and
        nothing is recorded; otherwise a new place is reserved and recorded in
        the log: at `now` when the window has room, else at the earliest
        instant after every place already given at which it will. The caller
        starts the use at `admission.at` (sleeping or deferring until then) and
        no later than `admission.deadline`; past it, the place is lost and the
        use asks again holding it: the lapsed place, never used, is removed
        from the log and a new one given. So in any half-open interval of
        `window_seconds`, at most `max_count` uses start, whatever the number
        of callers.

        Instants later than `now` already in the log (reservations, or another
        process's clock running ahead) only make the limit stricter.
        Admissions older than two windows behind `now` are pruned as new ones
        are recorded.

        With no limit stored for (tenant_id, key) every use may start now:
        None, and nothing is recorded.
        """
        ...

    async def acquire_many(
        self,
        tenant_id: str,
        key: str,
        now: Callable[[], datetime],
        helds: Seq[datetime | None],
    ) -> builtins.list[Admission] | None:
        """`acquire` for several uses of one key, in order, in one transaction: one
        place per entry of `helds` (each as `acquire` would give it, after the
        ones before it). None when the key has no limit. `now` is read once the
        key's lock is held, so the places are never stamped with an instant from
        before a wait for it."""
        ...
