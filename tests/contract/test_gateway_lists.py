"""Every checkout platform ingestion verifies is offered everywhere a seller meets one: the
provisioner accepts its credential, the console's wizard and events filter list it, and the
setup agent and the console's banners say where its webhook URL and secret go. A gateway added to
ingestion alone would be unusable from the console (seen: four gateways were missing there)."""

from __future__ import annotations

from trackai_agent.domain.verdicts.webhook import CREDENTIALS, GATEWAY_PANELS
from trackai_console.domain.health import CREDENTIAL_FIXES
from trackai_console.domain.wizard import GATEWAY_NAMES
from trackai_ingestion.domain.gateways import ADAPTERS
from trackai_provisioner.domain.tenants import GATEWAYS


def test_every_verified_gateway_is_offered_by_the_provisioner_console_and_agent() -> None:
    verified = set(ADAPTERS)
    assert set(GATEWAYS) == verified
    assert set(GATEWAY_NAMES) == verified
    assert set(GATEWAY_PANELS) == verified


def test_every_gateway_credential_has_its_fix_in_the_console_and_the_agent() -> None:
    # Each gateway names its credential ``<gateway>_<key>`` (ingestion's AuthenticationFailed).
    for fixes in (CREDENTIAL_FIXES, CREDENTIALS):
        named = {key.split("_", 1)[0] for key in fixes if key != "x_signature"}
        assert named == set(ADAPTERS), sorted(set(ADAPTERS) ^ named)
