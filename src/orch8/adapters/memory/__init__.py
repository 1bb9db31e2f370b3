"""An in-process storage adapter: the reference model for the contract suite and a dev mode."""

from orch8.adapters.memory.storage import MemoryStorage

__all__ = ["MemoryStorage"]
