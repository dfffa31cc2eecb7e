"""Generated from proto/trackai/agent/v1; regenerate with `make proto`, never edit."""
