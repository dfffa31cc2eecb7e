"""Dispatcher domain."""
