"""Generated from proto/trackai/common; regenerate with `make proto`, never edit."""
