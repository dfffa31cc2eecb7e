"""Alembic environment of the provisioner schema (shared logic in trackai_kit.migrations)."""

from trackai_kit.migrations import run_env

run_env("provisioner")
