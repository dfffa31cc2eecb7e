"""Generated from proto/trackai/ingestion; regenerate with `make proto`, never edit."""
