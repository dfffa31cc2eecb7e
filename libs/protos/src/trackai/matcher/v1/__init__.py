"""Generated from proto/trackai/matcher/v1; regenerate with `make proto`, never edit."""
