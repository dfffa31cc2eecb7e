"""Provisioner service_layer."""
