"""Dispatcher: delivers `capi-dispatch` events to Meta's Conversions API."""
