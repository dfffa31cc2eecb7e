"""Provisioner adapters."""
