"""Coarse user-agent traits (browser family, OS, device type) for the probabilistic comparison.

Deliberately small: the score only asks "same browser family on the same OS and device class?",
so a handful of ordered rules covers the traffic of Brazilian landing pages (Android Chrome, iOS
Safari, the Facebook/Instagram in-app browsers, desktop browsers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class UaTraits:
    browser_family: str | None
    os_family: str | None
    device_type: str | None

    @property
    def key(self) -> tuple[str | None, str | None, str | None]:
        return (self.browser_family, self.os_family, self.device_type)


# First match wins: in-app browsers embed Safari/Chrome tokens, Edge and Opera embed Chrome's.
_BROWSERS = (
    ("Instagram", re.compile(r"Instagram")),
    ("Facebook", re.compile(r"FBAN|FBAV|FB_IAB")),
    ("Samsung Internet", re.compile(r"SamsungBrowser")),
    ("Edge", re.compile(r"Edg(e|A|iOS)?/")),
    ("Opera", re.compile(r"OPR/|Opera")),
    ("Firefox", re.compile(r"Firefox/|FxiOS/")),
    ("Chrome", re.compile(r"Chrome/|CriOS/")),
    ("Safari", re.compile(r"Version/[\d.]+.*Safari/")),
)
_OSES = (
    ("iOS", re.compile(r"iPhone|iPad|iPod")),
    ("Android", re.compile(r"Android")),
    ("Windows", re.compile(r"Windows")),
    ("Chrome OS", re.compile(r"CrOS")),
    ("macOS", re.compile(r"Mac OS X|Macintosh")),
    ("Linux", re.compile(r"Linux")),
)
_TABLET = re.compile(r"iPad|Tablet")
_MOBILE = re.compile(r"Mobi|iPhone|iPod|Android")


def parse_user_agent(user_agent: str | None) -> UaTraits:
    """Traits of ``user_agent``; every trait is None when the string is empty."""
    if not user_agent:
        return UaTraits(None, None, None)
    browser = next((name for name, rx in _BROWSERS if rx.search(user_agent)), "Other")
    os_family = next((name for name, rx in _OSES if rx.search(user_agent)), "Other")
    if _TABLET.search(user_agent) or (os_family == "Android" and "Mobile" not in user_agent):
        device = "tablet"
    elif _MOBILE.search(user_agent):
        device = "mobile"
    else:
        device = "desktop"
    return UaTraits(browser, os_family, device)
