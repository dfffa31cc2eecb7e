"""Console entrypoints."""
