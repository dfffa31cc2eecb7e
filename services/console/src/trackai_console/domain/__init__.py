"""Console domain."""
