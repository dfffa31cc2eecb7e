"""Agent entrypoints."""
