"""Fixtures shared by every test directory."""

# postgres_url (the session's PostgreSQL server) and postgres_schema_url (a fresh schema on it).
pytest_plugins = ["tests.pg_server"]
