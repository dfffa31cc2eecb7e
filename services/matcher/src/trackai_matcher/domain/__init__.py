"""Matcher domain."""
