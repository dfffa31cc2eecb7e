"""Alembic environment of the ingestion schema (shared logic in trackai_kit.migrations)."""

from trackai_kit.migrations import run_env

run_env("ingestion")
