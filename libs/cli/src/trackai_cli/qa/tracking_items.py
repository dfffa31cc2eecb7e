"""Checklist items 10-13, a sale's way through: the click collected with its fbc, the purchase
matched to that session, the browser and server events deduplicated, the dispatch to Meta."""

from __future__ import annotations

import json
import re
import secrets
import time

from trackai.dispatcher.v1 import dispatcher_service_pb2 as disp_pb
from trackai.matcher.v1 import events_pb2 as match_events
from trackai_cli.qa.harness import (
    FBC_RE,
    GATEWAY,
    Browser,
    Trail,
    expect,
    kiwify_sale,
    until,
)
from trackai_cli.qa.run import ChecklistRun
from trackai_kit.identity import event_id


class TrackingItems(ChecklistRun):
    """Items 10-13 (docs/qa-checklist.md)."""

    async def item10(self, t: Trail) -> None:
        assert self.landing is not None
        if self.s.browser:
            self.browser = self.browser or await Browser.open()
        if self.browser is None:
            return await self._collect_by_api(t)
        t.path = "Chromium"
        if self.result is None:
            # Non-destructive runs have no provisioned snippet: track.js is loaded directly.
            self.landing.page(
                f'<script src="{self.s.base_url}/sdk/v1/track.js" data-tenant="{self.tenant_id}"'
                f' data-gateway="{GATEWAY}" data-checkout-domains="pay.kiwify.com.br"></script>'
            )
        url = f"{self.landing.browser_url}curso?fbclid={self.fbclid}&utm_source=facebook"
        t.step(f"Chromium opens {url}")
        context = await self.browser.browser.new_context()
        page = await context.new_page()
        try:
            async with page.expect_response(lambda r: "/collect" in r.url) as hit:
                await page.goto(url, wait_until="load")
            collected = (await hit.value).status
            await page.wait_for_function("() => window.trackai && window.trackai.sessionId")
            self.session_id = str(await page.evaluate("window.trackai.sessionId"))
            href = str(await page.get_attribute("#buy", "href") or "")
            cookies = {c["name"]: c["value"] for c in await context.cookies()}
            self.browser_event_id = str(
                await page.evaluate(
                    f"window.trackai.eventId({json.dumps(self.order_id)}, 'Purchase', '{GATEWAY}')"
                )
            )
        finally:
            await context.close()
        self.fbc = cookies.get("_fbc", "")
        expect(
            200 <= collected < 300,
            "the page view collected (2xx)",
            f"collect answers {collected}",
        )
        expect(
            re.match(FBC_RE.replace("{fbclid}", re.escape(self.fbclid)), self.fbc),
            f"_fbc = fb.1.<13-digit ms>.{self.fbclid}",
            f"_fbc = {self.fbc!r}",
        )
        expect(f"sck={self.session_id}" in href, "the checkout link carries sck", href)
        t.saw(f"collected {collected}; _fbc {self.fbc}; session {self.session_id}")

    async def _collect_by_api(self, t: Trail) -> None:
        """No browser: the page view as track.js posts it (docs/tracking-script.md)."""
        self.session_id = f"taQa{self.run_tag}Session000"
        self.fbc = f"fb.1.{int(time.time() * 1000)}.{self.fbclid}"
        body = {
            "type": "page_view",
            "session_id": self.session_id,
            "visitor_id": secrets.token_hex(32),
            "event_id": secrets.token_hex(12),
            "event_time": int(time.time() * 1000),
            "page_url": f"https://{self.s.landing_host}/curso?fbclid={self.fbclid}",
            "fbclid": self.fbclid,
            "fbc": self.fbc,
        }
        url = f"{self.s.base_url}/api/v1/collect/{self.tenant_id}"
        t.step(f"POST {url} (the page view track.js sends, with the fbclid; no browser here)")
        answer = await self.http.post(
            url,
            content=json.dumps(body),
            headers={
                "Content-Type": "text/plain;charset=UTF-8",
                "Origin": f"https://{self.s.landing_host}",
            },
        )
        expect(
            200 <= answer.status_code < 300,
            "the page view collected (2xx)",
            f"{answer.status_code} {answer.text[:300]}",
        )
        t.saw(f"collected by API ({answer.status_code}); fbc {self.fbc}")

    async def item11(self, t: Trail) -> None:
        answer = await self.post_sale(t, kiwify_sale(self.order_id, self.session_id))
        expect(
            answer.status_code == 200 and answer.json().get("status") == "accepted",
            "200 accepted",
            f"{answer.status_code} {answer.text[:300]}",
        )
        t.step(f"matcher ListMatches tenant={self.tenant_id}: order {self.order_id}")
        match = await until(
            lambda: self.match_of(self.order_id),
            self.s.settle_s,
            "a match for the order",
            f"no match for order {self.order_id}",
        )
        expect(
            match.stage == match_events.MATCH_STAGE_DETERMINISTIC
            and match.session_id == self.session_id,
            f"deterministic match to session {self.session_id}",
            f"{match_events.MatchStage.Name(match.stage)} session {match.session_id!r}",
        )
        t.saw(f"order {self.order_id} matched (deterministic) to {match.session_id}")

    async def item12(self, t: Trail) -> None:
        match = await self.match_of(self.order_id)
        assert match is not None
        if self.browser_event_id:
            t.path = "Chromium + API"
            t.step(
                "Chromium: window.trackai.eventId(order, 'Purchase', 'kiwify') (thank-you pixel)"
            )
        else:
            # No browser here: the id the thank-you pixel computes, by its specification.
            t.step("event_id v1 of (tenant, kiwify, order, Purchase) (docs/schema/event_id.md)")
            self.browser_event_id = event_id(self.tenant_id, GATEWAY, self.order_id, "Purchase")
        expect(
            match.event_id == self.browser_event_id,
            f"the server event's id = the pixel's {self.browser_event_id}",
            f"server {match.event_id}",
        )
        t.step(f"Meta fake /_sandbox/events event_id={match.event_id}")
        events = await until(
            lambda: self.meta_events(match.event_id),
            self.s.settle_s,
            "the Purchase at Meta",
            f"event {match.event_id} not at Meta",
        )
        data = events[0].get("event", events[0])
        expect(
            data["user_data"].get("fbc") == self.fbc,
            f"the server event carries the click's fbc {self.fbc}",
            f"fbc {data['user_data'].get('fbc')!r}",
        )
        t.saw(f"pixel and server share event_id {match.event_id}; fbc {self.fbc}")

    async def item13(self, t: Trail) -> None:
        match = await self.match_of(self.order_id)
        assert match is not None
        await until(
            lambda: self.meta_events(match.event_id),
            self.s.settle_s,
            "the Purchase at Meta",
            f"event {match.event_id} not at Meta",
        )
        # A later sale: once it is at Meta, anything the first could still cause has happened.
        sentinel = f"qa-{self.run_tag}-sentinel"
        await self.post_sale(t, kiwify_sale(sentinel, None))
        later = await until(lambda: self.match_of(sentinel), self.s.settle_s, "a match", sentinel)
        await until(lambda: self.meta_events(later.event_id), self.s.settle_s, "at Meta", sentinel)
        t.step("Meta fake /_sandbox/event-counts for the sale's event_id")
        counts = (
            await self.sandbox_get(
                "meta", "/_sandbox/event-counts", pixel_id=self.s.pixel_id, event_id=match.event_id
            )
        )["data"]
        expect(
            [c["count"] for c in counts] == [1],
            "received by Meta exactly once",
            f"counts {counts}",
        )
        t.step(f"dispatcher ListAttempts + GetEventState event_id={match.event_id}")
        attempts = (
            await self.dispatcher.ListAttempts(
                disp_pb.ListAttemptsRequest(tenant_id=self.tenant_id, event_id=match.event_id),
                timeout=30,
            )
        ).attempts
        state = (
            await self.dispatcher.GetEventState(
                disp_pb.GetEventStateRequest(tenant_id=self.tenant_id, event_id=match.event_id),
                timeout=30,
            )
        ).event
        numbers = sorted(a.attempt_number for a in attempts)
        expect(
            attempts
            and numbers == list(range(1, len(numbers) + 1))
            and sum(a.outcome == disp_pb.ATTEMPT_OUTCOME_SUCCEEDED for a in attempts) == 1
            and state.state == disp_pb.EVENT_STATE_SENT
            and state.attempts == len(attempts),
            "SENT, one succeeded attempt, every attempt recorded (1..n)",
            f"{disp_pb.EventState.Name(state.state)} attempts={state.attempts}, recorded "
            f"{[(a.attempt_number, disp_pb.AttemptOutcome.Name(a.outcome)) for a in attempts]}",
        )
        expect(match.emq >= 6, "EMQ estimate ≥ 6", f"EMQ {match.emq:.1f}")
        t.saw(f"once at Meta; {len(attempts)} attempt(s) recorded; EMQ {match.emq:.1f}")
