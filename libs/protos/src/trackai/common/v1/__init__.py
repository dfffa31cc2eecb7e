"""Generated from proto/trackai/common/v1; regenerate with `make proto`, never edit."""
