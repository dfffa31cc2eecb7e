"""Operator-facing validation rules of tenants, funnels and credentials."""

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
