"""Generated Track AI contracts."""
