"""The image runs in production unless the deployment says otherwise (issue 10, item 4)."""

from __future__ import annotations

import re
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"


def test_the_image_sets_trackai_env_to_production() -> None:
    final_stage = DOCKERFILE.read_text().rsplit("\nFROM ", 1)[1]
    assert re.search(r"^\s*TRACKAI_ENV=production\b", final_stage, re.MULTILINE)
