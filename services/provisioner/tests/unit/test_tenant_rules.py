"""Operator-facing validation rules of tenants, funnels and credentials."""

import uuid
from datetime import UTC, datetime

import pytest

from trackai_provisioner.domain import tenants as t


@pytest.mark.parametrize("slug", ["acme", "a", "loja-da-maria", "x1-2"])
def test_valid_slugs(slug: str) -> None:
    assert t.validate_slug(slug) == slug


@pytest.mark.parametrize("slug", ["", "-acme", "acme-", "Acme", "acme_shop", "a" * 41, "açaí"])
def test_invalid_slugs_name_the_rule(slug: str) -> None:
    with pytest.raises(t.ValidationError, match="lowercase letters"):
        t.validate_slug(slug)


def test_domains_are_normalised_and_deduplicated() -> None:
    assert t.validate_domains(["Shop.Example.com.", "shop.example.com"]) == ["shop.example.com"]
    with pytest.raises(t.ValidationError, match="host name"):
        t.validate_domains(["https://shop.example.com/path"])


def test_unknown_gateway_lists_supported_ones() -> None:
    assert t.validate_gateway(" Kiwify ") == "kiwify"
    with pytest.raises(t.ValidationError, match="supported: kiwify, perfectpay"):
        t.validate_gateway("paypal")


def test_pixel_and_test_event_code() -> None:
    assert t.validate_pixel_id("1234567890") == "1234567890"
    with pytest.raises(t.ValidationError, match="5-20 digits"):
        t.validate_pixel_id("abc")
    assert t.validate_test_event_code("") is None
    assert t.validate_test_event_code("TEST12345") == "TEST12345"
    with pytest.raises(t.ValidationError):
        t.validate_test_event_code("TEST 123")


def test_rate_limit_and_lookback_defaults() -> None:
    assert t.validate_rate_limit(0) is None
    assert t.validate_rate_limit(250) == 250
    with pytest.raises(t.ValidationError):
        t.validate_rate_limit(-1)
    assert t.validate_lookback_days(0) == 30
    with pytest.raises(t.ValidationError):
        t.validate_lookback_days(91)


def test_short_secret_tells_the_operator_to_copy_it_again() -> None:
    with pytest.raises(t.ValidationError, match="copy it again"):
        t.validate_secret("abc", "secret")


def test_pending_payment_event_is_one_of_the_matcher_events() -> None:
    assert t.validate_pending_payment_event(" AddPaymentInfo ") == "AddPaymentInfo"
    assert t.validate_pending_payment_event("InitiateCheckout") == "InitiateCheckout"
    assert t.validate_pending_payment_event("") is None
    with pytest.raises(t.ValidationError, match="pending_payment_event") as refused:
        t.validate_pending_payment_event("Purchase")
    assert refused.value.field == "pending_payment_event"


def test_update_mask_zero_values_reset_and_absent_fields_stay() -> None:
    changes = t.validated_changes(
        {"rate_limit_per_minute": 0, "allowed_domains": []}, t.TENANT_UPDATABLE
    )
    assert changes == {"rate_limit_per_minute": None, "allowed_domains": []}
    funnel = t.validated_changes(
        {"lookback_days": 0, "landing_url": "", "pending_payment_event": "AddPaymentInfo"},
        t.FUNNEL_UPDATABLE,
    )
    assert funnel == {
        "lookback_days": t.DEFAULT_LOOKBACK_DAYS,
        "landing_url": None,
        "pending_payment_event": "AddPaymentInfo",
    }
    with pytest.raises(t.ValidationError, match="name at least one field"):
        t.validated_changes({}, t.TENANT_UPDATABLE)
    with pytest.raises(t.ValidationError, match="cannot update slug; updatable fields: name"):
        t.validated_changes({"slug": "x"}, t.FUNNEL_UPDATABLE)
    with pytest.raises(t.ValidationError, match="name: must have"):
        t.validated_changes({"name": ""}, t.TENANT_UPDATABLE)  # a name cannot be reset


def _funnel(tenant_id: uuid.UUID, code: str | None) -> t.Funnel:
    return t.Funnel(uuid.uuid4(), tenant_id, "f", "F", 30, None, [], code)


def test_meta_destination_of_a_funnel_and_its_test_code() -> None:
    tenant = t.Tenant(uuid.uuid4(), "acme", "Acme", None, [], datetime.now(UTC))
    f1, f2 = _funnel(tenant.id, "F1"), _funnel(tenant.id, None)
    config = t.TenantConfig(
        tenant=tenant,
        gateways=[],
        meta=t.MetaDestination("1", "t-default", "D"),
        funnels=[(f1, t.MetaDestination("2", "t-f1", None)), (f2, None)],
    )
    found = t.destination_for(config, str(f1.id), "2")
    assert found is not None and (found.access_token, found.test_event_code) == ("t-f1", "F1")
    found = t.destination_for(config, str(f2.id), "1")
    assert found is not None and (found.access_token, found.test_event_code) == ("t-default", "D")
    found = t.destination_for(config, "", "2")
    assert found is not None and found.access_token == "t-f1"
    assert t.destination_for(config, str(f2.id), "3") is None


def test_view_of_a_config_holds_no_token() -> None:
    tenant = t.Tenant(uuid.uuid4(), "acme", "Acme", None, [], datetime.now(UTC))
    funnel = _funnel(tenant.id, None)
    config = t.TenantConfig(
        tenant=tenant,
        gateways=[t.GatewayCredential("kiwify", "gw-secret", None)],
        meta=t.MetaDestination("1", "t-default", "D"),
        funnels=[(funnel, t.MetaDestination("2", "t-f1", None))],
    )
    view = t.without_tokens(config)
    assert "t-default" not in repr(view) and "t-f1" not in repr(view)
    assert "gw-secret" not in repr(view)
    assert view.meta == t.MetaPixel("1", "D")
