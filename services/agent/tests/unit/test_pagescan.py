"""The HTML scan reads calls inside scripts only, with a real parser."""

from __future__ import annotations

from trackai_agent.domain.pagescan import scan_html


def test_pixel_in_prose_is_not_a_pixel() -> None:
    scan = scan_html("<html><body><p>fbq('init', '1234567890')</p></body></html>")
    assert scan.pixel_ids == ()


def test_duplicates_gtm_our_script_and_event_id() -> None:
    html = (
        "<html><head><script>fbq('init','111222333');fbq(\"init\", \"111222333\");"
        "fbq('track', 'Purchase', {value: 1}, {eventID: id});</script>"
        "<script src='https://www.googletagmanager.com/gtm.js?id=GTM-ABC1234'></script>"
        "<script async src='https://t.example/sdk/v1/track.js'></script></head></html>"
    )
    scan = scan_html(html)
    assert scan.duplicated_pixels == ("111222333",)
    assert scan.gtm_containers == ("GTM-ABC1234",)
    assert scan.our_script
    assert (scan.purchase_events, scan.purchase_with_event_id) == (1, 1)


def test_track_ais_thank_you_snippet_pixel_is_found_in_both_forms() -> None:
    for init in ("fbq('init', c.pixel);", "fbq('init', c.pixel, vid ? {external_id: vid} : {});"):
        html = (
            "<html><head><script>(function (c) {"
            f"{init}"
            '})({"pixel": "4455667788", "order": ["order_id"]});</script></head></html>'
        )
        assert scan_html(html).pixel_ids == ("4455667788",), init
