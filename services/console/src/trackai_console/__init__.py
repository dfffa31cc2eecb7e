"""Console: the dashboard (setup wizard, live status, DLQ replay, EMQ)."""
