"""What the agent strips before anything is stored or sent: the kit's rules (credentials, e-mails,
phones, CPFs) plus Meta access tokens pasted as bare text (``EAA...``), which have no key name
the kit's rules could see."""

from __future__ import annotations

import re
from typing import Any

from trackai_kit.redaction import REDACTED, redact, redact_text

_META_TOKEN = re.compile(r"\bEAA[A-Za-z0-9]{20,}\b")


def scrub_text(text: str) -> str:
    return redact_text(_META_TOKEN.sub(REDACTED, text))


def scrub(value: Any) -> Any:
    """A copy of ``value`` (JSON-like) without secrets or personal data."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in redact(value).items()}  # type: ignore[attr-defined]
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value
