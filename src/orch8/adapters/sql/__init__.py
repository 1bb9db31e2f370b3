"""What the SQLite and PostgreSQL adapters share, written once.

Row mapping, filter fragments, migration discovery, the preparation and
batching of snapshot writes, group commit and the storage's role properties
are the same logic in both dialects; only SQL text and how a value is stored
(microsecond integers and TEXT in SQLite, timestamptz and jsonb in PostgreSQL)
differ. The dialects pass those differences in, so this package imports no
driver and no other adapter.
"""
