"""Matcher: links purchases to clicks and publishes ready Meta events on `capi-dispatch`."""
