"""Verdict texts carry the specifics a seller needs (dates, ids, where to click)."""

from __future__ import annotations

from datetime import UTC, datetime

from trackai_agent.domain.model import FetchedPage, Hop, PixelRead, TokenDebug
from trackai_agent.domain.verdicts import landing_verdict, meta_token_verdict

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
SCOPES = ("ads_management", "business_management")


def test_expiring_soon_is_a_warning_with_the_date() -> None:
    debug = TokenDebug(
        True, "1", "App", "USER", SCOPES, int(datetime(2026, 12, 9, 15, tzinfo=UTC).timestamp())
    )
    result = meta_token_verdict(
        debug, PixelRead(True, "Pixel"), pixel_id="9", expected_app_id="1", now=NOW
    )
    assert result.status == "warning"
    assert "09/12" in result.message


def test_expiry_date_is_in_brasilia_time() -> None:
    # 02:00 UTC on the 3rd is still the 2nd in Brasília (UTC-3).
    expired = int(datetime(2026, 12, 3, 2, 0, tzinfo=UTC).timestamp())
    debug = TokenDebug(False, "1", "App", "USER", SCOPES, expired, 190, 463, "Session has expired")
    result = meta_token_verdict(debug, None, pixel_id="9", expected_app_id="1", now=NOW)
    assert result.message == "O token do Meta expirou em 02/12."


def test_params_kept_through_redirects_pass() -> None:
    page = FetchedPage(
        "https://a.example/x?fbclid=p&utm_source=t&utm_medium=probe",
        200,
        (Hop("https://a.example/?fbclid=p", 301, "/x"), Hop("https://a.example/x", 200)),
        "",
        120.0,
    )
    result = landing_verdict(
        page,
        probe_url="https://a.example/?fbclid=p&utm_source=t&utm_medium=probe",
        our_script=True,
        now=NOW,
    )
    assert result.status == "ok"
