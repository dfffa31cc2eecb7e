"""Domain of the provisioner: tenants, funnels and credentials (no I/O)."""
