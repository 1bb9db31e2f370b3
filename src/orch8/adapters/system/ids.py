"""Time-ordered UUIDs (version 7 layout), so ids created later sort later."""

from __future__ import annotations

import os
import time
import uuid

from orch8.application.ports.clock import IdGenerator


class UuidGenerator(IdGenerator):
    def new_id(self) -> str:
        millis = time.time_ns() // 1_000_000
        rand = int.from_bytes(os.urandom(10), "big")
        value = (millis & ((1 << 48) - 1)) << 80 | rand & ((1 << 80) - 1)
        value &= ~(0xF << 76)
        value |= 0x7 << 76  # version 7
        value &= ~(0x3 << 62)
        value |= 0x2 << 62  # RFC 4122 variant
        return str(uuid.UUID(int=value))
