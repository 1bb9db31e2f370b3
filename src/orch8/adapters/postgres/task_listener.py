"""LISTEN orch8_tasks on a dedicated connection: tasks created by any process sharing
the database wake this process's long-polls.

Snapshot writes that insert tasks (and the reaper, when it hands tasks back)
send `NOTIFY orch8_tasks, '<handler_name>'`; PostgreSQL delivers it at commit
to every listening session. The listener holds one connection outside the
pool (a pooled connection would be handed to other work) and calls the
callbacks on the event loop. If the connection drops it is reopened with
backoff; notifications sent meanwhile are lost, which only delays a
long-poll until its next periodic re-check.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from orch8.adapters.postgres.new_tasks import CHANNEL

_log = logging.getLogger("orch8.storage")

MAX_BACKOFF_S = 5.0

Callback = Callable[[str], None]


class TaskListener:
    def __init__(self, url: str) -> None:
        self._url = url
        self._callbacks: list[Callback] = []
        self._conn: Any = None  # asyncpg.Connection, once listening
        self._reconnect: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def start(self, callback: Callback) -> None:
        """Call `callback(handler_name)` for every notification from now on."""
        if self._closed:
            raise RuntimeError("PostgreSQL storage is closed")
        self._callbacks.append(callback)
        async with self._lock:
            if self._conn is None:
                await self._connect()

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self._url)
        try:
            await conn.add_listener(CHANNEL, self._notified)
        except BaseException:
            await conn.close()
            raise
        conn.add_termination_listener(self._lost)
        self._conn = conn

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        for callback in list(self._callbacks):
            try:
                callback(str(payload))
            except Exception:  # a broken callback must not stop the others
                _log.exception("task notification callback failed")

    def _lost(self, _conn: Any) -> None:
        if self._closed or self._reconnect is not None:
            return
        _log.warning("task notification connection lost; reconnecting")
        self._conn = None
        self._reconnect = asyncio.get_running_loop().create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        delay = 0.1
        try:
            while not self._closed:
                try:
                    async with self._lock:
                        if not self._closed:
                            await self._connect()
                    return
                except Exception as exc:
                    _log.warning("task notifications unavailable (%s); retry in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, MAX_BACKOFF_S)
        finally:
            self._reconnect = None

    async def close(self) -> None:
        """Stop listening and close the connection; safe to call twice."""
        self._closed = True
        reconnect, self._reconnect = self._reconnect, None
        if reconnect is not None:
            reconnect.cancel()
            await asyncio.gather(reconnect, return_exceptions=True)
        async with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            await conn.close()
