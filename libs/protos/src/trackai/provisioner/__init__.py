"""Generated from proto/trackai/provisioner; regenerate with `make proto`, never edit."""
