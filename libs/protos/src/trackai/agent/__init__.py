"""Generated from proto/trackai/agent; regenerate with `make proto`, never edit."""
