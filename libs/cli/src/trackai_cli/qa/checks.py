"""Each checklist item driven through the real services: the provisioner's, agent's, matcher's and
dispatcher's gRPC APIs as the operator, ingestion's public HTTP endpoints as a checkout gateway
and a browser would call them, Chromium (Playwright) where the runner has it, and the sandbox
fakes' inspection APIs where the target runs on them.

One module per group of items (``setup_items``, ``tracking_items``, ``resilience_items``) on the
run's shared state (``run``) and helpers (``harness``); the runner calls ``item<n>`` of
:class:`Checklist`.
"""

from __future__ import annotations

from trackai_cli.qa.resilience_items import ResilienceItems
from trackai_cli.qa.setup_items import SetupItems
from trackai_cli.qa.tracking_items import TrackingItems


class Checklist(SetupItems, TrackingItems, ResilienceItems):
    """Every item of one run, in the runner's order (``item1`` .. ``item15``)."""
