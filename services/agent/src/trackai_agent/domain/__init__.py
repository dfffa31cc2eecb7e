"""Agent domain."""
