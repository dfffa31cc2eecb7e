"""Ingestion service layer."""
