"""PostgreSQL storage adapter (asyncpg pool, SKIP LOCKED claims, group-committed writes)."""

from orch8.adapters.postgres.storage import PostgresStorage

__all__ = ["PostgresStorage"]
