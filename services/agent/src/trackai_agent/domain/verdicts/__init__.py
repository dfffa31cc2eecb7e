"""The six tools' verdicts, from what the adapters observed to a specific Portuguese message and
the concrete next step. Pure functions: every branch is unit-tested without I/O. One module per
tool (or pair of tools): ``meta``, ``webhook``, ``page`` (landing page and pixel), ``snippets``.
"""

from trackai_agent.domain.verdicts.meta import meta_token_verdict
from trackai_agent.domain.verdicts.page import landing_verdict, pixel_verdict
from trackai_agent.domain.verdicts.snippets import snippets_verdict, test_event_verdict
from trackai_agent.domain.verdicts.webhook import gateway_webhook_verdict, webhook_url

__all__ = [
    "gateway_webhook_verdict",
    "landing_verdict",
    "meta_token_verdict",
    "pixel_verdict",
    "snippets_verdict",
    "test_event_verdict",
    "webhook_url",
]
