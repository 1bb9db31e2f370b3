"""Time-ordered UUIDs (version 7 layout), so ids created later sort later."""

from __future__ import annotations

import os
import time
import uuid

from orch8.application.ports.clock import IdGenerator

_VERSION_7 = 0x7 << 76
_VARIANT = 0x2 << 62
_RANDOM_A = ((1 << 12) - 1) << 64  # 12 random bits after the version
_RANDOM_B = (1 << 62) - 1  # 62 random bits after the variant


class UuidGenerator(IdGenerator):
    """Random bits are drawn in blocks of 256 ids: one system call instead of one per id
    (ids are made for every output row, on the hot path)."""

    def __init__(self) -> None:
        self._pool = b""
        self._offset = 0

    def _random(self) -> int:
        if self._offset >= len(self._pool):
            self._pool = os.urandom(10 * 256)
            self._offset = 0
        chunk = self._pool[self._offset : self._offset + 10]
        self._offset += 10
        return int.from_bytes(chunk, "big")

    def new_id(self) -> str:
        millis = time.time_ns() // 1_000_000
        rand = self._random()
        value = (
            (millis & ((1 << 48) - 1)) << 80
            | _VERSION_7
            | rand & (_RANDOM_A | _RANDOM_B)
            | _VARIANT
        )
        return str(uuid.UUID(int=value))
