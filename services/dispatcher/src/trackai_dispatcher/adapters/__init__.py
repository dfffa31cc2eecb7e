"""Dispatcher adapters."""
