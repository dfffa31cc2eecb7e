"""Generated from proto/trackai/ingestion/v1; regenerate with `make proto`, never edit."""
