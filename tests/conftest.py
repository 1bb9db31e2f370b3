"""Fixtures and settings shared by every test directory."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# postgres_url (the session's PostgreSQL server) and postgres_schema_url (a fresh schema on it).
pytest_plugins = ["tests.pg_server"]

# Hypothesis profiles, registered here only; HYPOTHESIS_PROFILE picks one (default "dev").
# No deadline: the suite shares small machines, and a slow example is not a wrong one.
# A test sets its own `@settings(...)` only for what it needs differently (its number
# of examples, a health check its fixtures trip; a suppress_health_check list given
# there replaces the profile's).
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
# CI: the same examples every run, no example database, and a reproduction blob on failure.
settings.register_profile(
    "ci", parent=settings.get_profile("dev"), derandomize=True, database=None, print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
