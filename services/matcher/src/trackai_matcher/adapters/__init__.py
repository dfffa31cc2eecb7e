"""Matcher adapters."""
