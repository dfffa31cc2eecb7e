"""The image runs in production unless the deployment says otherwise (issue 10, item 4)."""

from __future__ import annotations

import re
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"


def test_the_image_sets_trackai_env_to_production() -> None:
    final_stage = DOCKERFILE.read_text().rsplit("\nFROM ", 1)[1]
    assert re.search(r"^\s*TRACKAI_ENV=production\b", final_stage, re.MULTILINE)


def test_the_agent_image_carries_debian_chromium_and_points_the_agent_at_it() -> None:
    """Without a browser the agent cannot see a pixel injected by JavaScript (issue 12)."""
    final_stage = DOCKERFILE.read_text().rsplit("\nFROM ", 1)[1]
    install = re.search(r'if \[ "\$SERVICE" = "agent" \]; then(.*?)fi', final_stage, re.DOTALL)
    assert install is not None and "apt-get install" in install.group(1)
    assert re.search(r"\bchromium\b", install.group(1))
    assert re.search(r"^\s*AGENT_CHROMIUM_PATH=/usr/bin/chromium\b", final_stage, re.MULTILINE)
