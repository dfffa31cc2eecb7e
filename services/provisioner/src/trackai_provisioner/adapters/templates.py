"""Loads the GTM container templates shipped in the package (``templates/gtm/*.json``)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def load_gtm_templates() -> dict[str, dict[str, Any]]:
    """``{"server": {...}, "web": {...}}``, keyed by file name."""
    folder = resources.files("trackai_provisioner") / "templates" / "gtm"
    return {
        entry.name.removesuffix(".json"): json.loads(entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".json")
    }
