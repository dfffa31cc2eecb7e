"""Console service layer."""
