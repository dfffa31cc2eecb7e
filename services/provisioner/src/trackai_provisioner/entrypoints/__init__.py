"""Provisioner entrypoints."""
