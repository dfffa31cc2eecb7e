"""Dispatcher service layer."""
