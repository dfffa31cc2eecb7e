"""Generated from proto/trackai/matcher; regenerate with `make proto`, never edit."""
