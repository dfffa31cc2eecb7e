"""Ingestion: verified webhooks and browser hits in, `ingest-events` out."""
