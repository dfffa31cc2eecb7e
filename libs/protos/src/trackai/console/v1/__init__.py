"""Generated from proto/trackai/console/v1; regenerate with `make proto`, never edit."""
