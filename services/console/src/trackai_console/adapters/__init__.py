"""Console adapters."""
