"""Generated from proto/trackai/console; regenerate with `make proto`, never edit."""
