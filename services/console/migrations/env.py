"""Alembic environment of the console schema (shared logic in trackai_kit.migrations)."""

from trackai_kit.migrations import run_env

run_env("console")
