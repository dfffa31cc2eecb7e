"""Browser-hit rules: Meta's fbc, the client IP behind trusted proxies, CORS, payload validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from trackai_ingestion.adapters.messages import hit_event
from trackai_ingestion.domain.collect import (
    CollectTenant,
    InvalidHit,
    build_hit,
    client_ip,
    fbc_fbclid,
    origin_allowed,
    parse_networks,
    rate_key,
    request_origin,
    resolve_fbc,
    scrub_url,
)
from trackai_ingestion.domain.gateways.people import (
    client_ip as gateway_client_ip,
)
from trackai_kit import pii
from trackai_kit.addresses import parse_ip

NOW_MS = 1_767_225_600_123
RECEIVED = datetime.fromtimestamp(NOW_MS / 1000, UTC)
TENANT = CollectTenant(
    tenant_id="3f2504e0-4f89-11d3-9a0c-0305e82c3301",
    allowed_domains=("shop.example.com", "example.org"),
    funnels={"launch": "f0000000-0000-4000-8000-000000000001"},
)


# ── fbc ──────────────────────────────────────────────────────────────────────────────────────────


def test_new_fbclid_builds_fbc_in_milliseconds_with_case_preserved() -> None:
    assert resolve_fbc("AbC123-x_Y", None, NOW_MS) == f"fb.1.{NOW_MS}.AbC123-x_Y"


def test_existing_fbc_is_kept_for_the_same_fbclid_even_with_another_index_and_time() -> None:
    cookie = "fb.2.1700000000000.AbC123"
    assert resolve_fbc("AbC123", cookie, NOW_MS) == cookie


def test_a_different_fbclid_replaces_the_cookie() -> None:
    assert resolve_fbc("New456", "fb.1.1700000000000.AbC123", NOW_MS) == f"fb.1.{NOW_MS}.New456"


def test_fbclid_comparison_is_case_sensitive() -> None:
    assert resolve_fbc("abc123", "fb.1.1700000000000.AbC123", NOW_MS) == f"fb.1.{NOW_MS}.abc123"


def test_fifth_appendix_segment_is_passed_through_unchanged() -> None:
    cookie = "fb.1.1700000000000.AbC123.Bg"
    assert resolve_fbc("AbC123", cookie, NOW_MS) == cookie
    assert resolve_fbc(None, cookie, NOW_MS) == cookie
    assert fbc_fbclid(cookie) == "AbC123"


def test_without_fbclid_the_cookie_is_kept_or_nothing() -> None:
    assert resolve_fbc(None, "fb.1.1700000000000.AbC123", NOW_MS) == "fb.1.1700000000000.AbC123"
    assert resolve_fbc(None, None, NOW_MS) is None
    assert fbc_fbclid("not-an-fbc") is None


# ── client IP ────────────────────────────────────────────────────────────────────────────────────

LB = parse_networks(["10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.10"])
#: Public addresses (documentation ranges such as 203.0.113.0/24 are not public: never a visitor).
VISITOR = "177.67.82.9"
OTHER = "179.108.4.2"


def test_untrusted_peer_is_the_client_whatever_it_claims() -> None:
    assert client_ip(OTHER, ["1.2.3.4"], LB) == OTHER
    assert client_ip(OTHER, ["1.2.3.4"], ()) == OTHER


def test_trusted_peer_forwarded_for_is_walked_from_the_right() -> None:
    # "6.6.6.6" was written by the client itself; VISITOR is what our proxy saw.
    assert client_ip("10.1.2.3", [f"6.6.6.6, {VISITOR}"], LB) == VISITOR


def test_chain_of_trusted_proxies_is_skipped() -> None:
    header = [f"6.6.6.6, {VISITOR}, 10.9.9.9", "192.0.2.10"]  # header repeated by two proxies
    assert client_ip("10.1.2.3", header, LB) == VISITOR


def test_ports_brackets_and_ipv6_are_understood() -> None:
    assert client_ip("10.1.2.3", [f"{VISITOR}:51234"], LB) == VISITOR
    assert client_ip("10.1.2.3", ["[2804:14c:65a1::42]:443"], LB) == "2804:14c:65a1::42"
    assert client_ip("2001:db8:ffff::1", ["2804:14c:1::5"], LB) == "2804:14c:1::5"
    assert client_ip(f"::ffff:{OTHER}", [], LB) == OTHER


def test_garbage_hop_yields_no_ip_rather_than_a_proxy_address() -> None:
    assert client_ip("10.1.2.3", [f"{VISITOR}, unknown"], LB) is None


def test_all_hops_trusted_means_the_leftmost_is_the_client() -> None:
    assert client_ip("10.1.2.3", [VISITOR], parse_networks(["10.0.0.0/8", "177.67.0.0/16"])) == (
        VISITOR
    )


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",  # private (a load balancer or pod)
        "172.16.0.9",
        "192.168.1.20",
        "127.0.0.1",  # loopback
        "::1",
        "169.254.10.1",  # link-local
        "fe80::1",
        "100.64.3.4",  # shared address space (carrier-grade NAT)
        "240.0.0.1",  # reserved
        "203.0.113.9",  # documentation
        "2001:db8::42",
        "fd00::7",  # unique local
        "224.0.0.251",  # multicast
        "0.0.0.0",
        "::ffff:10.1.2.3",
    ],
)
def test_non_public_addresses_are_never_the_visitor(address: str) -> None:
    # As the TCP peer with no trusted proxy (a load balancer left unconfigured) ...
    assert client_ip(address, [], ()) is None
    # ... as the hop a trusted proxy reports ...
    assert client_ip("10.1.2.3", [address], LB) is None
    # ... and as the buyer's IP in a gateway's webhook.
    assert gateway_client_ip(address) is None


def test_a_private_hop_does_not_let_a_spoofed_entry_through() -> None:
    # Left of an untrusted (private) hop, entries are the client's own words: never believed.
    assert client_ip("10.1.2.3", [f"{VISITOR}, 192.168.1.20"], LB) is None


def test_gateway_ip_keeps_public_addresses() -> None:
    assert gateway_client_ip(VISITOR) == VISITOR
    assert gateway_client_ip(" 2804:14c:65a1::42 ") == "2804:14c:65a1::42"
    assert gateway_client_ip("not an ip") is None


@pytest.mark.parametrize(
    ("sender", "key"),
    [
        ("177.67.82.9", "177.67.82.9"),
        ("::ffff:177.67.82.9", "177.67.82.9"),  # IPv4-mapped: the same client
        ("2804:14c:65a1:4001:8d2f:1::9", "2804:14c:65a1:4001::/64"),
        ("10.1.2.3", None),  # an untrusted proxy's or internal address: not one client
        ("100.64.0.1", None),
        ("2001:db8::1", None),
    ],
)
def test_rate_key_is_a_public_ipv4_or_an_ipv6_64(sender: str, key: str | None) -> None:
    assert rate_key(parse_ip(sender)) == key


def test_bad_trusted_proxy_setting_is_refused_with_the_value() -> None:
    with pytest.raises(ValueError, match=r"10\.0\.0\.300"):
        parse_networks(["10.0.0.300/8"])


# ── CORS ─────────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://shop.example.com", True),
        ("https://SHOP.example.com:8443", True),
        ("http://shop.example.com", True),
        ("https://www.example.org", True),
        ("https://example.org", True),
        ("https://example.com", False),
        ("https://evil-shop.example.com.attacker.net", False),
        ("https://notexample.org", False),
        ("null", False),
        ("file://shop.example.com", False),
        ("", False),
        (None, False),
    ],
)
def test_origin_must_be_an_allowed_domain_or_a_subdomain(origin: str | None, allowed: bool) -> None:
    assert origin_allowed(origin, TENANT.allowed_domains) is allowed


def test_referer_stands_in_for_a_missing_origin() -> None:
    assert request_origin(None, "https://shop.example.com/p?x=1") == "https://shop.example.com"
    assert request_origin("null", None) is None
    assert request_origin("https://a.example.org", "https://b.example") == "https://a.example.org"


# ── payload ──────────────────────────────────────────────────────────────────────────────────────


def _payload(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "page_view",
        "session_id": "ta0123456789abcdefghij",
        "event_id": "ev0123456789abcdefghijkl",
        "event_time": NOW_MS - 2000,
        "page_url": "https://shop.example.com/lp?fbclid=AbC123&utm_source=facebook",
        "fbclid": "AbC123",
        "fbp": "fb.1.1700000000000.1234567890",
        "utm_source": "facebook",
        "funnel": "launch",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def _build(body: object) -> Any:
    return build_hit(
        body, tenant=TENANT, client_ip="203.0.113.9", user_agent="UA", received_at=RECEIVED
    )


def test_page_view_is_normalised() -> None:
    hit = _build(_payload())
    assert hit.kind == "page_view" and hit.event_name == "PageView"
    assert hit.fbc == f"fb.1.{NOW_MS}.AbC123"
    assert hit.utm == {"utm_source": "facebook"}
    assert hit.funnel_id == "f0000000-0000-4000-8000-000000000001"
    assert hit.event_time == RECEIVED - timedelta(seconds=2)
    assert hit.email_hash is None and hit.phone_hash is None


def test_the_visitor_id_travels_as_the_hits_external_id() -> None:
    visitor = "0123456789abcdef" * 4
    hit = _build(_payload(visitor_id=visitor))
    assert hit.visitor_id == visitor
    message = hit_event(hit, "m-1", RECEIVED)
    assert message.hit.user_data.external_id == visitor
    assert _build(_payload()).visitor_id is None  # an older script sends none


@pytest.mark.parametrize("visitor", ["ABCDEF" * 10 + "ABCD", "0" * 63, "z" * 64, "ta" + "0" * 20])
def test_a_malformed_visitor_id_is_refused(visitor: str) -> None:
    assert _fields(_payload(visitor_id=visitor)) == {"visitor_id"}


def test_a_wrong_browser_clock_is_replaced_by_the_receipt_time() -> None:
    assert _build(_payload(event_time=NOW_MS - 3_600_000)).event_time == RECEIVED


def test_lead_keeps_only_hashes() -> None:
    hit = _build(_payload(type="lead", email=" Ana@Example.COM ", phone="(11) 98765-4321"))
    assert hit.event_name == "Lead"
    assert hit.email_hash == pii.sha256_hex("ana@example.com")
    assert hit.phone_hash == pii.sha256_hex("5511987654321")
    assert "ana@example.com" not in repr(hit).lower() and "98765" not in repr(hit)


def test_lead_with_one_usable_identifier_is_accepted() -> None:
    hit = _build(_payload(type="lead", email="not-an-email", phone="+55 11 98765-4321"))
    assert hit.email_hash is None and hit.phone_hash is not None


def _fields(body: object) -> set[str]:
    with pytest.raises(InvalidHit) as caught:
        _build(body)
    message = str(caught.value)
    for secret in ("bad@", "12345"):
        assert secret not in message
    return {".".join(map(str, e.loc)) for e in caught.value.errors}


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"type": "purchase"}, {"type"}),
        ({"session_id": None}, {"session_id"}),
        ({"event_id": "short"}, {"event_id"}),
        ({"page_url": "javascript:alert(1)"}, {"page_url"}),
        ({"fbclid": "has.dot"}, {"fbclid"}),
        ({"fbc": "fb.1.x.AbC123"}, {"fbc"}),
        ({"fbp": "fbp-junk"}, {"fbp"}),
        ({"funnel": "nope"}, {"funnel"}),
        ({"utm_source": "x" * 501}, {"utm_source"}),
        ({"type": "lead"}, {"email"}),
        ({"type": "lead", "email": "bad@", "phone": "12345"}, {"email", "phone"}),
    ],
)
def test_invalid_fields_are_named_without_their_values(
    overrides: dict[str, Any], fields: set[str]
) -> None:
    body = _payload()
    body.update(overrides)
    assert _fields({k: v for k, v in body.items() if v is not None}) == fields


def test_non_object_body_is_refused() -> None:
    assert _fields([1, 2]) == {""}


# ── URLs ─────────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://lp.example.com/obrigado?email=Ana%40Example.com&whatsapp=%2B55+%2811%29+98765-4321&x=1",
            "https://lp.example.com/obrigado?email=%5BREDACTED%5D&whatsapp=%5BREDACTED%5D&x=1",
        ),
        (
            "https://lp.example.com/?nome=Ana&cpf=12345678909",
            "https://lp.example.com/?nome=%5BREDACTED%5D&cpf=%5BREDACTED%5D",
        ),
        ("https://lp.example.com/#nome=Ana", "https://lp.example.com/#nome=%5BREDACTED%5D"),
        ("https://lp.example.com/u/ana@example.com?a=1", "https://lp.example.com/u/[EMAIL]"),
    ],
)
def test_personal_data_in_urls_is_redacted(url: str, expected: str) -> None:
    assert scrub_url(url) == expected


def test_clean_urls_are_kept_byte_for_byte() -> None:
    url = "https://lp.example.com/a%20b?fbclid=IwAR2xYz_123-Q&utm_content=120208123456789012&x=a+b#top"
    assert scrub_url(url) == url


def test_hits_store_scrubbed_page_and_referrer() -> None:
    hit = _build(
        _payload(
            page_url="https://shop.example.com/ok?email=ana%40example.com",
            referrer="https://shop.example.com/form?phone=11987654321",
        )
    )
    assert "ana" not in hit.page_url and "98765" not in (hit.referrer or "")
