"""The real clock and id source."""

from orch8.adapters.system.clock import SystemClock
from orch8.adapters.system.ids import UuidGenerator

__all__ = ["SystemClock", "UuidGenerator"]
