"""Debian's Chromium as the browser tests launch it (Playwright cannot download its own here).

The background-networking flags keep Chromium from reaching for Google's hosts, which this
machine's closed network refuses many at a time.
"""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
