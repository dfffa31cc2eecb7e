"""Ingestion entrypoints."""
