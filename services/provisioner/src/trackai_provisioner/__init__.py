"""Track AI package."""
