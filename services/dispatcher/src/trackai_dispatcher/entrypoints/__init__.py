"""Dispatcher entrypoints."""
