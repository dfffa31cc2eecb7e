"""Matcher entrypoints."""
