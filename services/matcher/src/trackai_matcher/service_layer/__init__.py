"""Matcher service layer."""
