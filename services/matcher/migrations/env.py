"""Alembic environment of the matcher schema (shared logic in trackai_kit.migrations)."""

from trackai_kit.migrations import run_env

run_env("matcher")
