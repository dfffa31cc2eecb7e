"""The registry's messages hold decrypted secrets; once the kit's client module is loaded, printing
them (str, repr, f-strings, %-formatting, containers) never shows one, and reading works as usual."""

from __future__ import annotations

import logging

import pytest

from trackai_kit.tenant_config import pb, text_without_secrets

SECRET = "gw-" + "s3cr3t-value"
SIGNING = "sig-" + "s3cr3t-value"
TOKEN = "EAAG" + "token-value"


class _Both:
    """A webhook config and a Meta destination: the two answers that carry secrets."""

    def __init__(self) -> None:
        self.gateways = pb.WebhookConfig(
            view=pb.TenantView(tenant=pb.Tenant(id="t-1", slug="acme")),
            gateways=[
                pb.GatewayCredential(gateway="hotmart", secret=SECRET, signing_secret=SIGNING)
            ],
        )
        self.meta = pb.GetMetaDestinationResponse(
            destination=pb.MetaDestination(pixel_id="123", access_token=TOKEN)
        )

    def __str__(self) -> str:
        return f"{self.gateways} {self.meta}"

    def __repr__(self) -> str:
        return f"{self.gateways!r} {self.meta!r}"


def _config() -> _Both:
    return _Both()


@pytest.mark.parametrize(
    "render",
    [
        str,
        repr,
        lambda c: f"{c}",
        lambda c: "%s" % c,  # noqa: UP031 - the logging module's formatting
        lambda c: repr([c.gateways.gateways[0], c.meta.destination]),
        lambda c: str(pb.GetWebhookConfigResponse(config=c.gateways)),
        lambda c: text_without_secrets(c.gateways) + text_without_secrets(c.meta),
    ],
)
def test_printing_hides_every_secret(render: object) -> None:
    assert callable(render)
    text = render(_config())
    assert SECRET not in text and SIGNING not in text and TOKEN not in text
    assert "hotmart" in text and "[REDACTED]" in text


def test_fields_still_read_and_the_message_is_unchanged() -> None:
    both = _config()
    text_without_secrets(both.gateways)
    text_without_secrets(both.meta)
    assert both.gateways.gateways[0].secret == SECRET
    assert both.gateways.gateways[0].signing_secret == SIGNING
    assert both.meta.destination.access_token == TOKEN
    assert pb.WebhookConfig.FromString(both.gateways.SerializeToString()) == both.gateways


def test_a_log_record_with_the_config_as_argument(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        logging.getLogger("kit-tests").info("config %s", _config())
    assert TOKEN not in caplog.text and SECRET not in caplog.text
