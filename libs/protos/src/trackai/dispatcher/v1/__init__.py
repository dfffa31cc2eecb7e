"""Generated from proto/trackai/dispatcher/v1; regenerate with `make proto`, never edit."""
