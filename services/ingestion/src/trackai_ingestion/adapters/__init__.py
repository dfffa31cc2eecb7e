"""Ingestion adapters."""
