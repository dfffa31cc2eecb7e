"""Generated from proto/trackai/dispatcher; regenerate with `make proto`, never edit."""
