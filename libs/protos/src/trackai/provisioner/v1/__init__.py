"""Generated from proto/trackai/provisioner/v1; regenerate with `make proto`, never edit."""
