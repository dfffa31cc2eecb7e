"""Agent service layer."""
