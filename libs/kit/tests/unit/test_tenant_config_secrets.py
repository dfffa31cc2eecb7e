"""The registry's messages hold decrypted secrets; once the kit's client module is loaded, printing
them (str, repr, f-strings, %-formatting, containers) never shows one, and reading works as usual."""

from __future__ import annotations

import logging

import pytest

from trackai_kit.tenant_config import pb, text_without_secrets

SECRET = "gw-" + "s3cr3t-value"
SIGNING = "sig-" + "s3cr3t-value"
TOKEN = "EAAG" + "token-value"


def _config() -> pb.TenantConfig:
    return pb.TenantConfig(
        tenant=pb.Tenant(id="t-1", slug="acme"),
        gateways=[pb.GatewayCredential(gateway="hotmart", secret=SECRET, signing_secret=SIGNING)],
        meta=pb.MetaDestination(pixel_id="123", access_token=TOKEN),
        funnels=[pb.FunnelConfig(meta=pb.MetaDestination(pixel_id="9", access_token=TOKEN))],
    )


@pytest.mark.parametrize(
    "render",
    [
        str,
        repr,
        lambda c: f"{c}",
        lambda c: "%s" % c,  # noqa: UP031 - the logging module's formatting
        lambda c: repr([c.gateways[0], c.meta]),
        lambda c: str(pb.GetTenantConfigResponse(config=c)),
        text_without_secrets,
    ],
)
def test_printing_hides_every_secret(render: object) -> None:
    assert callable(render)
    text = render(_config())
    assert SECRET not in text and SIGNING not in text and TOKEN not in text
    assert "hotmart" in text and "[REDACTED]" in text


def test_fields_still_read_and_the_message_is_unchanged() -> None:
    config = _config()
    text_without_secrets(config)
    assert config.gateways[0].secret == SECRET
    assert config.gateways[0].signing_secret == SIGNING
    assert config.meta.access_token == TOKEN
    assert pb.TenantConfig.FromString(config.SerializeToString()) == config


def test_a_log_record_with_the_config_as_argument(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        logging.getLogger("kit-tests").info("config %s", _config())
    assert TOKEN not in caplog.text and SECRET not in caplog.text
