"""What a landing page's HTML says about its tracking: Meta pixels initialised, GTM containers,
our script, and whether the Purchase event carries an ``eventID``.

The document is parsed with selectolax (a real HTML5 parser), and only the text of ``<script>``
elements is searched for calls, so a pixel id written in the page's prose is not a pixel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from selectolax.lexbor import LexborHTMLParser

_FBQ_INIT = re.compile(r"""fbq\(\s*['"]init['"]\s*,\s*['"]?(\d{5,20})['"]?""")
_FBQ_PURCHASE = re.compile(r"""fbq\(\s*['"]track['"]\s*,\s*['"]Purchase['"](?P<rest>[^;]*)""")
_GTM_ID = re.compile(r"\bGTM-[A-Z0-9]{4,10}\b")
# Track AI's thank-you snippet initialises the pixel from its config object
# (fbq('init', c.pixel, {external_id}); older snippets: fbq('init', c.pixel)).
_TRACKAI_PIXEL_CONFIG = re.compile(r'"pixel":\s*"(\d{5,20})"')
OUR_SCRIPT_PATH = "/sdk/v1/track.js"


@dataclass(frozen=True)
class PageScan:
    pixel_ids: tuple[str, ...]
    gtm_containers: tuple[str, ...]
    our_script: bool
    purchase_events: int
    purchase_with_event_id: int
    script_count: int

    @property
    def duplicated_pixels(self) -> tuple[str, ...]:
        return tuple(sorted({p for p in self.pixel_ids if self.pixel_ids.count(p) > 1}))

    def as_details(self) -> dict[str, object]:
        return {
            "pixel_ids": list(self.pixel_ids),
            "duplicated_pixels": list(self.duplicated_pixels),
            "gtm_containers": list(self.gtm_containers),
            "our_script": self.our_script,
            "purchase_events": self.purchase_events,
            "purchase_with_event_id": self.purchase_with_event_id,
        }


def scan_html(html: str) -> PageScan:
    """Parse ``html`` and report the tracking it sets up."""
    tree = LexborHTMLParser(html)
    inline: list[str] = []
    sources: list[str] = []
    for node in tree.css("script"):
        src = node.attributes.get("src")
        if src:
            sources.append(src)
        else:
            inline.append(node.text(deep=True) or "")
    iframes = [n.attributes.get("src") or "" for n in tree.css("noscript iframe, iframe")]
    code = "\n".join(inline)
    purchases = [m["rest"] for m in _FBQ_PURCHASE.finditer(code)]
    gtm = sorted(
        {*_GTM_ID.findall(code), *(g for s in [*sources, *iframes] for g in _GTM_ID.findall(s))}
    )
    configured = [
        pixel
        for script in inline
        if "fbq('init', c.pixel" in script
        for pixel in _TRACKAI_PIXEL_CONFIG.findall(script)
    ]
    return PageScan(
        pixel_ids=(*_FBQ_INIT.findall(code), *configured),
        gtm_containers=tuple(gtm),
        our_script=any(OUR_SCRIPT_PATH in s for s in sources) or OUR_SCRIPT_PATH in code,
        purchase_events=len(purchases),
        purchase_with_event_id=sum(1 for rest in purchases if "eventID" in rest),
        script_count=len(sources) + len(inline),
    )
